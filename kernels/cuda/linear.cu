// linear: out [M, N] = x [M, K] W [N, K]^T + b, M = product of x's leading axes, through
// cublasGemmEx. All tensors of one call share a dtype (the ops layer checks it): float32, or
// bfloat16 for x, W, b and out alike, with float32 accumulation (CUBLAS_COMPUTE_32F; tensor cores
// for bfloat16; no TF32 for float32, so float32 results match the CPU closely).
//
// cuBLAS is column-major: a row-major [R, C] matrix is a column-major [C, R] one, so each product
// below is written for the transposes. The GradSlot rule maps to beta = accumulate ? 1 : 0
// (cuBLAS does not read C when beta is 0).
#include <cuda_bf16.h>

#include "kernels/cuda/broadcast.cuh"
#include "kernels/cuda/check_libs.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/device_utils.cuh"

namespace ddpm {

namespace {
using cuda::kThreads;
using cuda::launch_1d;
using cuda::ptr;

cudaDataType_t cuda_type(DType dtype) { return dtype == DType::BF16 ? CUDA_R_16BF : CUDA_R_32F; }

// C [m, n] (column-major, ld c_ld) = op(A) op(B) + beta C, float32 accumulation.
void gemm(DType dtype, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const void* a, int64_t lda,
          const void* b, int64_t ldb, float beta, void* c, int64_t ldc) {
  const float alpha = 1.0f;
  const cudaDataType_t t = cuda_type(dtype);
  DDPM_CUBLAS_CHECK(cublasGemmEx(cuda::cublas(), trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                 static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), &alpha, a, t,
                                 static_cast<int>(lda), b, t, static_cast<int>(ldb), &beta, c, t,
                                 static_cast<int>(ldc), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

// Every row of out [rows, cols] = bias [cols]
template <class T>
__global__ void broadcast_rows_kernel(int64_t rows, int64_t cols, const T* bias, T* out) {
  DDPM_GRID_STRIDE(i, rows * cols) { out[i] = bias[i % cols]; }
}

struct Dims {
  int64_t m, n, k;
};
Dims dims_of(const Tensor& x, const Tensor& weight) {
  int64_t m = 1;  // x's leading axes (not numel / K, which K = 0 would break)
  for (int i = 0; i + 1 < x.rank(); ++i) m *= x.dim(i);
  const Dims d{m, weight.dim(0), weight.dim(1)};
  constexpr int64_t kIntMax = 2147483647;
  DDPM_CHECK(d.m <= kIntMax && d.n <= kIntMax && d.k <= kIntMax, "CUDA linear: ", shape_str(x.shape()), " x ",
             shape_str(weight.shape()), " exceeds cuBLAS's 32-bit dimensions");
  return d;
}
}  // namespace

void CudaBackend::linear_forward(const linear_fwd& args) {
  cuda::dispatch_float("linear", args.x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands("linear", args.x.dtype(), args.weight, args.bias, args.out);
    const Dims d = dims_of(args.x, args.weight);
    if (d.m == 0 || d.n == 0) return;
    cudaStream_t s = cuda::stream();
    float beta = 0.0f;
    if (args.bias.defined()) {  // out = bias, then out += x W^T
      broadcast_rows_kernel<T><<<launch_1d(d.m * d.n), kThreads, 0, s>>>(d.m, d.n, ptr<T>(args.bias), ptr<T>(args.out));
      DDPM_CUDA_CHECK_LAUNCH();
      beta = 1.0f;
    }
    if (d.k == 0) {  // an empty product: out is the bias, or zero
      if (!args.bias.defined()) DDPM_CUDA_CHECK(cudaMemsetAsync(args.out.raw(), 0, args.out.nbytes(), s));
      return;
    }
    // out^T [N, M] = W [N, K] x^T [K, M]; W row-major is W^T column-major (ld K), x likewise.
    gemm(args.x.dtype(), true, false, d.n, d.m, d.k, args.weight.raw(), d.k, args.x.raw(), d.k, beta, args.out.raw(), d.n);
  });
}

void CudaBackend::linear_backward(const linear_bwd& args) {
  cuda::dispatch_float("linear", args.x.dtype(), [&](auto) {
    const DType dt = args.x.dtype();
    cuda::check_operands("linear", dt, args.grad_out, args.weight, args.grad_x.tensor, args.grad_weight.tensor,
                         args.grad_bias.tensor);
    const Dims d = dims_of(args.x, args.weight);
    cudaStream_t s = cuda::stream();
    // An empty sum writes zero (or adds nothing); cuBLAS is not asked to multiply empty matrices.
    auto zero_unless_accumulating = [&](const GradSlot& slot) {
      if (slot.wanted() && !slot.accumulate)
        DDPM_CUDA_CHECK(cudaMemsetAsync(slot.tensor.raw(), 0, slot.tensor.nbytes(), s));
    };
    if (args.grad_x.wanted() && d.m > 0 && d.k > 0) {
      // dx [M, K] = g [M, N] W [N, K]  ->  dx^T [K, M] = W^T [K, N] g^T [N, M]
      if (d.n == 0)
        zero_unless_accumulating(args.grad_x);
      else
        gemm(dt, false, false, d.k, d.m, d.n, args.weight.raw(), d.k, args.grad_out.raw(), d.n,
             args.grad_x.accumulate ? 1.0f : 0.0f, args.grad_x.tensor.raw(), d.k);
    }
    if (args.grad_weight.wanted() && d.n > 0 && d.k > 0) {
      // dW [N, K] = g^T [N, M] x [M, K]  ->  dW^T [K, N] = x^T [K, M] g [M, N]
      if (d.m == 0)
        zero_unless_accumulating(args.grad_weight);
      else
        gemm(dt, false, true, d.k, d.n, d.m, args.x.raw(), d.k, args.grad_out.raw(), d.n,
             args.grad_weight.accumulate ? 1.0f : 0.0f, args.grad_weight.tensor.raw(), d.k);
    }
    if (args.grad_bias.wanted() && d.n > 0) {
      // db [N] = column sums of g [M, N]: b = [N] broadcast into [M, N].
      const auto axes = cuda::BroadcastAxes::make("linear", {d.m, d.n}, {d.n});
      cuda::reduce_into_b(dt, axes, args.grad_out.raw(), nullptr, 1.0f, args.grad_bias.tensor.raw(),
                          args.grad_bias.accumulate);
    }
  });
}

}  // namespace ddpm
