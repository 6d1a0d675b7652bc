// relu: out = max(x, 0); its gradient passes where x > 0.
#include "kernels/cpu/cpu_backend.h"

namespace ddpm {

using cpu::kParallelGrain;

void CpuBackend::relu_forward(const relu_fwd& args) {
  cpu::dispatch_float(args.x.dtype(), "relu", [&](auto tag) {
    using T = decltype(tag);
    const T* x = args.x.data<T>();
    T* out = args.out.data<T>();
    const int64_t n = args.x.numel();
#pragma omp parallel for if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) out[i] = x[i] > T(0) ? x[i] : T(0);
  });
}

void CpuBackend::relu_backward(const relu_bwd& args) {
  if (!args.grad_x.wanted()) return;
  cpu::dispatch_float(args.x.dtype(), "relu", [&](auto tag) {
    using T = decltype(tag);
    const T* x = args.x.data<T>();
    const T* g = args.grad_out.data<T>();
    T* gx = args.grad_x.tensor.data<T>();
    const bool acc = args.grad_x.accumulate;
    const int64_t n = args.x.numel();
#pragma omp parallel for if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) cpu::put(gx, i, x[i] > T(0) ? g[i] : T(0), acc);
  });
}

}  // namespace ddpm
