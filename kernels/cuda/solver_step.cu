// The fused step of the noise-level samplers on the GPU (diffusion/solvers.h): the formula the CPU
// runs (kernels/solver_math.h) in float32 on float32 or bfloat16 data, noise from the same Philox
// addresses.
#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/graph_capture.h"
#include "kernels/cuda/philox_blocks.cuh"
#include "kernels/solver_math.h"

namespace ddpm {

namespace {
using cuda::kThreads;
using cuda::launch_1d;
using cuda::load_f;
using cuda::store_f;

template <class T>
const T* optional_in(const Tensor& t) {
  return t.defined() ? cuda::ptr<T>(t) : nullptr;
}

// One thread per Philox block of four elements; each thread reads its elements before it writes
// them, so x_next may alias x and d0_out may alias d1 or d2.
template <class T>
__global__ void solver_step_kernel(dm::SolverStep s, const T* x, const T* y, const T* out, const T* d1, const T* d2,
                                   int64_t total, T* x_next, T* d0_out, uint64_t seed, uint64_t stream,
                                   const uint64_t* stream_offset) {
  stream = replay_stream(stream, stream_offset);  // a CUDA graph's replay: engine/replay_counter.h
  const cuda::DrawBlocks blocks = cuda::draw_blocks(total, 0);
  DDPM_GRID_STRIDE(b, blocks.count) {
    cuda::draw_block<true>(seed, stream, 0, total, blocks.first + static_cast<uint64_t>(b), [&](int64_t i, float z) {
      const float o = out ? load_f(out, i) : 0.0f;
      float d0;
      const float next = dm::solver_element(s, load_f(x, i), load_f(y, i), out ? &o : nullptr,
                                            d1 ? load_f(d1, i) : 0.0f, d2 ? load_f(d2, i) : 0.0f, z, &d0);
      if (d0_out) store_f(d0_out, i, d0);
      store_f(x_next, i, next);
    });
  }
}
}  // namespace

void CudaBackend::solver_step(const solver_step_args& args) {
  DDPM_CHECK(args.model_out.defined() || args.c_d0 == 0,
             "solver_step: c_d0 is ", args.c_d0, " but no model output was given");
  DDPM_CHECK(args.d1.defined() || args.c_d1 == 0, "solver_step: c_d1 is ", args.c_d1, " but d1 is missing");
  DDPM_CHECK(args.d2.defined() || args.c_d2 == 0, "solver_step: c_d2 is ", args.c_d2, " but d2 is missing");
  cuda::dispatch_float("solver_step", args.x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands("solver_step", args.x.dtype(), args.x, args.model_in, args.model_out, args.d1, args.d2,
                         args.x_next, args.d0_out);
    const int64_t total = args.x.numel();
    if (total == 0) return;
    const T* x = cuda::ptr<T>(args.x);
    solver_step_kernel<T><<<launch_1d(cuda::draw_blocks(total, 0).count), kThreads, 0, cuda::stream()>>>(
        dm::solver_settings(args), x, args.model_in.defined() ? cuda::ptr<T>(args.model_in) : x,
        optional_in<T>(args.model_out), optional_in<T>(args.d1), optional_in<T>(args.d2), total,
        cuda::ptr<T>(args.x_next), args.d0_out.defined() ? cuda::ptr<T>(args.d0_out) : nullptr, args.seed,
        args.stream, cuda::replay_offset(DrawKind::Noise));
    DDPM_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace ddpm
