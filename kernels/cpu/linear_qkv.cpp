// linear_qkv: out [3, M, N], out[g] = x [M, K] W_g [N, K]^T + b_g for g = q, k, v: three GEMMs over
// the one input (the CPU gains nothing from batching them; it is the reference for CUDA's batch).
#include "engine/cpu_threads.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/column_sums.h"

namespace ddpm {

void CpuBackend::linear_qkv_forward(const linear_qkv_fwd& args) {
  fit_threads_to_load();  // engine/cpu_threads.h: a narrower team when other processes hold cores
  cpu::dispatch_float(args.x.dtype(), "linear_qkv", [&](auto tag) {
    using T = decltype(tag);
    const int64_t n = args.weight[0].dim(0), k = args.weight[0].dim(1), m = args.x.numel() / k;
    for (int g = 0; g < 3; ++g) {
      T* out = args.out.data<T>() + g * m * n;
      T beta = T(0);
      if (args.bias[g].defined()) {
        cpu::broadcast_rows(args.bias[g].data<T>(), m, n, out);
        beta = T(1);
      }
      cpu::gemm(false, true, m, n, k, T(1), args.x.data<T>(), k, args.weight[g].data<T>(), k, beta, out, n);
    }
  });
}

void CpuBackend::linear_qkv_backward(const linear_qkv_bwd& args) {
  cpu::dispatch_float(args.x.dtype(), "linear_qkv", [&](auto tag) {
    using T = decltype(tag);
    const int64_t n = args.weight[0].dim(0), k = args.weight[0].dim(1), m = args.x.numel() / k;
    for (int g = 0; g < 3; ++g) {
      const T* grad = args.grad_out.data<T>() + g * m * n;  // [M, N] of projection g
      if (args.grad_x.wanted()) {  // dx [M, K] = sum_g grad_g [M, N] W_g [N, K]; the first writes
        const bool add = g > 0 || args.grad_x.accumulate;
        cpu::gemm(false, false, m, k, n, T(1), grad, n, args.weight[g].data<T>(), k, T(add ? 1 : 0),
                  args.grad_x.tensor.data<T>(), k);
      }
      const GradSlot& dw = args.grad_weight[g];
      if (dw.wanted())  // dW_g [N, K] = grad_g^T [N, M] x [M, K]
        cpu::gemm(true, false, n, k, m, T(1), grad, n, args.x.data<T>(), k, T(dw.accumulate ? 1 : 0),
                  dw.tensor.data<T>(), k);
      const GradSlot& db = args.grad_bias[g];
      if (db.wanted()) cpu::column_sums(grad, m, n, db.tensor.data<T>(), db.accumulate);
    }
  });
}

}  // namespace ddpm
