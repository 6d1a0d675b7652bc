// The fused step of the noise-level samplers on the CPU (diffusion/solvers.h); the formula is
// kernels/solver_math.h, shared with the CUDA kernel.
#include "kernels/cpu/cpu_backend.h"
#include "kernels/solver_math.h"

namespace ddpm {

void CpuBackend::solver_step(const solver_step_args& args) {
  DDPM_CHECK(args.model_out.defined() || args.c_d0 == 0,
             "solver_step: c_d0 is ", args.c_d0, " but no model output was given");
  DDPM_CHECK(args.d1.defined() || args.c_d1 == 0, "solver_step: c_d1 is ", args.c_d1, " but d1 is missing");
  DDPM_CHECK(args.d2.defined() || args.c_d2 == 0, "solver_step: c_d2 is ", args.c_d2, " but d2 is missing");
  cpu::dispatch_float(args.x.dtype(), "solver_step", [&](auto tag) {
    using T = decltype(tag);
    auto in = [](const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; };
    const T* x = args.x.data<T>();
    const T* y = args.model_in.defined() ? args.model_in.data<T>() : x;
    const T *out = in(args.model_out), *d1 = in(args.d1), *d2 = in(args.d2);
    T* x_next = args.x_next.data<T>();
    T* d0_out = args.d0_out.defined() ? args.d0_out.data<T>() : nullptr;
    const dm::SolverStep s = dm::solver_settings(args);
    cpu::for_each_draw(args.x.numel(), true, args.seed, args.stream, [&](int64_t i, float z) {
      T d0;
      const T next = dm::solver_element(s, x[i], y[i], out ? out + i : nullptr, d1 ? d1[i] : T(0), d2 ? d2[i] : T(0),
                                        static_cast<T>(z), &d0);
      if (d0_out) d0_out[i] = d0;
      x_next[i] = next;
    });
  });
}

}  // namespace ddpm
