// linear_qkv on CUDA: out [3, M, N], out[g] = x [M, K] W_g [N, K]^T + b_g for g = q, k, v, as one
// strided-batched cuBLAS GEMM (x shared through a batch stride of 0) instead of three GEMMs and three
// bias passes. Conventions as in linear.cu (column-major cuBLAS, float32 accumulation, no TF32).
//
// The three weights are read in place when they lie at one fixed distance from each other (the
// float32 master weights in the flat parameter buffer do); otherwise one kernel packs them into
// scratch [3, N, K], and the same kernel writes the biases into out. Backward: dx is three GEMMs
// summing into one buffer (the [3, M, N] gradient is not one matrix with x's rows); dW is one batched
// GEMM into float32 scratch and db one reduction into scratch, and one kernel writes or adds both
// into the six gradient slots (each with its own accumulate flag).
#include <cuda_bf16.h>

#include "kernels/cuda/broadcast.cuh"
#include "kernels/cuda/check_libs.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/scratch.h"

namespace ddpm {

namespace {
using cuda::kThreads;
using cuda::launch_1d;
using cuda::ptr;

cudaDataType_t cuda_type(DType dtype) { return dtype == DType::BF16 ? CUDA_R_16BF : CUDA_R_32F; }

template <class P> struct Three {
  P p[3];
};

struct Dims {
  int64_t m, n, k;
};
Dims dims_of(const Tensor& x, const Tensor& weight) {
  int64_t m = 1;  // x's leading axes
  for (int i = 0; i + 1 < x.rank(); ++i) m *= x.dim(i);
  const Dims d{m, weight.dim(0), weight.dim(1)};
  constexpr int64_t kIntMax = 2147483647;
  DDPM_CHECK(3 * d.m * d.n <= kIntMax && d.n * d.k <= kIntMax && d.k <= kIntMax, "CUDA linear_qkv: ",
             shape_str(x.shape()), " x ", shape_str(weight.shape()), " exceeds cuBLAS's 32-bit dimensions");
  return d;
}

// Elements from weight[0] to weight[1] and to weight[2] when they are equal and the matrices do not
// overlap (a batch stride cuBLAS can read them with), else 0.
template <class T> int64_t uniform_stride(const Tensor (&w)[3], int64_t matrix) {
  const T* p0 = ptr<T>(w[0]);
  const int64_t s1 = ptr<T>(w[1]) - p0, s2 = ptr<T>(w[2]) - p0;
  return s1 >= matrix && s2 == 2 * s1 ? s1 : 0;
}

// packed [3, N, K] = the three weights (when packed is set); out [3, M, N] = the biases broadcast over
// the M rows (when biased). One pass over both ranges.
template <class T>
__global__ void qkv_prepare_kernel(Three<const T*> w, Three<const T*> b, int64_t nk, int64_t mn, int64_t n,
                                   T* packed, T* out) {
  const int64_t weights = packed ? 3 * nk : 0, total = weights + (b.p[0] ? 3 * mn : 0);
  DDPM_GRID_STRIDE(i, total) {
    if (i < weights) {
      const int g = static_cast<int>(i / nk);
      packed[i] = w.p[g][i - g * nk];
    } else {
      const int64_t j = i - weights;
      out[j] = b.p[static_cast<int>(j / mn)][j % n];
    }
  }
}

// The six gradient slots from dw [3, N, K] (float32) and db [3, N] (T): written or added per slot;
// a null destination is a slot nobody wants.
template <class T>
__global__ void qkv_scatter_grads_kernel(const float* dw, const T* db, int64_t nk, int64_t n, Three<T*> dw_out,
                                         Three<bool> dw_add, Three<T*> db_out, Three<bool> db_add) {
  const int64_t weights = dw ? 3 * nk : 0, total = weights + (db ? 3 * n : 0);
  DDPM_GRID_STRIDE(i, total) {
    if (i < weights) {
      const int g = static_cast<int>(i / nk);
      if (dw_out.p[g]) cuda::put_f(dw_out.p[g], i - g * nk, dw[i], dw_add.p[g]);
    } else {
      const int64_t j = i - weights;
      const int g = static_cast<int>(j / n);
      if (db_out.p[g]) cuda::put_f(db_out.p[g], j - g * n, cuda::to_f<T>(db[j]), db_add.p[g]);
    }
  }
}

// C_g (column-major [rows, cols], ld ldc) = op(A_g) op(B_g) + beta C_g for g < 3, one launch.
void gemm3(bool trans_a, bool trans_b, int64_t rows, int64_t cols, int64_t inner, const void* a, cudaDataType_t at,
           int64_t lda, long long sa, const void* b, cudaDataType_t bt, int64_t ldb, long long sb, float beta, void* c,
           cudaDataType_t ct, int64_t ldc, long long sc) {
  const float alpha = 1.0f;
  DDPM_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      cuda::cublas(), trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(rows),
      static_cast<int>(cols), static_cast<int>(inner), &alpha, a, at, static_cast<int>(lda), sa, b, bt,
      static_cast<int>(ldb), sb, &beta, c, ct, static_cast<int>(ldc), sc, 3, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}
}  // namespace

void CudaBackend::linear_qkv_forward(const linear_qkv_fwd& args) {
  cuda::dispatch_float("linear_qkv", args.x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const DType dt = args.x.dtype();
    cuda::check_operands("linear_qkv", dt, args.x, args.weight[0], args.weight[1], args.weight[2], args.bias[0],
                         args.bias[1], args.bias[2], args.out);
    const Dims d = dims_of(args.x, args.weight[0]);
    if (d.m == 0 || d.n == 0) return;
    cudaStream_t s = cuda::stream();
    const bool biased = args.bias[0].defined();
    const int64_t nk = d.n * d.k, mn = d.m * d.n;
    const int64_t in_place = d.k > 0 ? uniform_stride<T>(args.weight, nk) : 0;
    cuda::Scratch packed(in_place || d.k == 0 ? 0 : sizeof(T) * static_cast<size_t>(3 * nk));
    T* packed_ptr = in_place || d.k == 0 ? nullptr : packed.as<T>();
    if (packed_ptr || biased) {
      const Three<const T*> w{{ptr<T>(args.weight[0]), ptr<T>(args.weight[1]), ptr<T>(args.weight[2])}};
      const Three<const T*> b{{biased ? ptr<T>(args.bias[0]) : nullptr, biased ? ptr<T>(args.bias[1]) : nullptr,
                               biased ? ptr<T>(args.bias[2]) : nullptr}};
      const int64_t total = (packed_ptr ? 3 * nk : 0) + (biased ? 3 * mn : 0);
      qkv_prepare_kernel<T><<<launch_1d(total), kThreads, 0, s>>>(w, b, nk, mn, d.n, packed_ptr, ptr<T>(args.out));
      DDPM_CUDA_CHECK_LAUNCH();
    }
    if (d.k == 0) {  // an empty product: out is the biases, or zero
      if (!biased) DDPM_CUDA_CHECK(cudaMemsetAsync(args.out.raw(), 0, args.out.nbytes(), s));
      return;
    }
    // out_g^T [N, M] = W_g [N, K] x^T [K, M] (as in linear.cu), x shared (batch stride 0).
    const void* w0 = packed_ptr ? static_cast<const void*>(packed_ptr) : args.weight[0].raw();
    const long long w_stride = packed_ptr ? nk : in_place;
    const cudaDataType_t t = cuda_type(dt);
    gemm3(true, false, d.n, d.m, d.k, w0, t, d.k, w_stride, args.x.raw(), t, d.k, 0, biased ? 1.0f : 0.0f,
          args.out.raw(), t, d.n, mn);
  });
}

void CudaBackend::linear_qkv_backward(const linear_qkv_bwd& args) {
  cuda::dispatch_float("linear_qkv", args.x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const DType dt = args.x.dtype();
    cuda::check_operands("linear_qkv", dt, args.grad_out, args.x, args.weight[0], args.weight[1], args.weight[2],
                         args.grad_x.tensor);
    for (int g = 0; g < 3; ++g)
      cuda::check_operands("linear_qkv", dt, args.grad_weight[g].tensor, args.grad_bias[g].tensor);
    const Dims d = dims_of(args.x, args.weight[0]);
    const int64_t nk = d.n * d.k, mn = d.m * d.n;
    cudaStream_t s = cuda::stream();
    const cudaDataType_t t = cuda_type(dt);
    auto zero_unless_accumulating = [&](const GradSlot& slot) {
      if (slot.wanted() && !slot.accumulate)
        DDPM_CUDA_CHECK(cudaMemsetAsync(slot.tensor.raw(), 0, slot.tensor.nbytes(), s));
    };
    // dx [M, K] = sum_g grad_g [M, N] W_g [N, K]; the first product writes unless the slot accumulates.
    if (args.grad_x.wanted() && d.m > 0 && d.k > 0) {
      if (d.n == 0) {
        zero_unless_accumulating(args.grad_x);
      } else {
        for (int g = 0; g < 3; ++g) {
          const float beta = g > 0 || args.grad_x.accumulate ? 1.0f : 0.0f;
          const float alpha = 1.0f;
          const char* grad = static_cast<const char*>(args.grad_out.raw()) + g * mn * static_cast<int64_t>(sizeof(T));
          DDPM_CUBLAS_CHECK(cublasGemmEx(cuda::cublas(), CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(d.k),
                                         static_cast<int>(d.m), static_cast<int>(d.n), &alpha, args.weight[g].raw(), t,
                                         static_cast<int>(d.k), grad, t, static_cast<int>(d.n), &beta,
                                         args.grad_x.tensor.raw(), t, static_cast<int>(d.k), CUBLAS_COMPUTE_32F,
                                         CUBLAS_GEMM_DEFAULT));
        }
      }
    }
    bool want_w = false, want_b = false;
    for (int g = 0; g < 3; ++g) {
      want_w = want_w || args.grad_weight[g].wanted();
      want_b = want_b || args.grad_bias[g].wanted();
    }
    want_w = want_w && nk > 0;
    want_b = want_b && d.n > 0;
    if (!want_w && !want_b) return;
    if (d.m == 0) {  // empty sums
      for (int g = 0; g < 3; ++g) {
        zero_unless_accumulating(args.grad_weight[g]);
        zero_unless_accumulating(args.grad_bias[g]);
      }
      return;
    }
    cuda::Scratch dw(want_w ? sizeof(float) * static_cast<size_t>(3 * nk) : 0);
    cuda::Scratch db(want_b ? sizeof(T) * static_cast<size_t>(3 * d.n) : 0);
    if (want_w)  // dW_g^T [K, N] = x^T [K, M] grad_g [M, N], written as float32 [3, N, K]
      gemm3(false, true, d.k, d.n, d.m, args.x.raw(), t, d.k, 0, args.grad_out.raw(), t, d.n, mn, 0.0f,
            dw.as<float>(), CUDA_R_32F, d.k, nk);
    if (want_b) {  // db [3, N] = sums of grad [3, M, N] over the M rows
      const auto axes = cuda::BroadcastAxes::make("linear_qkv", {3, d.m, d.n}, {3, 1, d.n});
      cuda::reduce_into_b(dt, axes, args.grad_out.raw(), nullptr, 1.0f, db.as<T>(), false);
    }
    Three<T*> dw_out{}, db_out{};
    Three<bool> dw_add{}, db_add{};
    for (int g = 0; g < 3; ++g) {
      const GradSlot &w = args.grad_weight[g], &b = args.grad_bias[g];
      dw_out.p[g] = w.wanted() ? ptr<T>(w.tensor) : nullptr;
      dw_add.p[g] = w.accumulate;
      db_out.p[g] = b.wanted() ? ptr<T>(b.tensor) : nullptr;
      db_add.p[g] = b.accumulate;
    }
    const int64_t total = (want_w ? 3 * nk : 0) + (want_b ? 3 * d.n : 0);
    qkv_scatter_grads_kernel<T><<<launch_1d(total), kThreads, 0, s>>>(want_w ? dw.as<float>() : nullptr,
                                                                       want_b ? db.as<T>() : nullptr, nk, d.n, dw_out,
                                                                       dw_add, db_out, db_add);
    DDPM_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace ddpm
