// linear: out [M, N] = x [M, K] W[N, K]^T + b, M = product of x's leading axes.
#include "engine/cpu_threads.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/column_sums.h"

namespace ddpm {

void CpuBackend::linear_forward(const linear_fwd& args) {
  fit_threads_to_load();  // engine/cpu_threads.h: a narrower team when other processes hold cores
  cpu::dispatch_float(args.x.dtype(), "linear", [&](auto tag) {
    using T = decltype(tag);
    const int64_t n = args.weight.dim(0), k = args.weight.dim(1), m = args.x.numel() / k;
    T* out = args.out.data<T>();
    T beta = T(0);
    if (args.bias.defined()) {
      cpu::broadcast_rows(args.bias.data<T>(), m, n, out);
      beta = T(1);
    }
    cpu::gemm(false, true, m, n, k, T(1), args.x.data<T>(), k, args.weight.data<T>(), k, beta, out, n);
  });
}

void CpuBackend::linear_backward(const linear_bwd& args) {
  cpu::dispatch_float(args.x.dtype(), "linear", [&](auto tag) {
    using T = decltype(tag);
    const int64_t n = args.weight.dim(0), k = args.weight.dim(1), m = args.x.numel() / k;
    const T* g = args.grad_out.data<T>();
    if (args.grad_x.wanted())  // dx [M, K] = g [M, N] W [N, K]
      cpu::gemm(false, false, m, k, n, T(1), g, n, args.weight.data<T>(), k,
                T(args.grad_x.accumulate ? 1 : 0), args.grad_x.tensor.data<T>(), k);
    if (args.grad_weight.wanted())  // dW [N, K] = g^T [N, M] x [M, K]
      cpu::gemm(true, false, n, k, m, T(1), g, n, args.x.data<T>(), k,
                T(args.grad_weight.accumulate ? 1 : 0), args.grad_weight.tensor.data<T>(), k);
    if (args.grad_bias.wanted())
      cpu::column_sums(g, m, n, args.grad_bias.tensor.data<T>(), args.grad_bias.accumulate);
  });
}

}  // namespace ddpm
