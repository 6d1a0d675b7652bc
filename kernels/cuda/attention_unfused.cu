// The unfused attention path (see attention_unfused.h). Row-major [T, d] head blocks with leading
// dimension C are column-major [d, T] matrices to cuBLAS, and a row-major [T, T] matrix M (leading
// dimension T) is the column-major M^T; every GEMM below is written in those terms:
//   S^T  [T, T] = K_h^T-op(Kc) Qc:  gemm(T, N, m=T, n=T, k=d, A=K_h, B=Q_h)
//   O^T  [d, T] = Vc Pc:            gemm(N, N, m=d, n=T, k=T, A=V_h, B=P)
//   dV^T [d, T] = dOc Pc^T:         gemm(N, T, m=d, n=T, k=T, A=dO_h, B=P)
//   dP^T [T, T] = Vc^T dOc:         gemm(T, N, m=T, n=T, k=d, A=V_h, B=dO_h)
//   dQ^T [d, T] = Kc dSc:           gemm(N, N, m=d, n=T, k=T, A=K_h, B=dS)
//   dK^T [d, T] = Qc dSc^T:         gemm(N, T, m=d, n=T, k=T, A=Q_h, B=dS)
// batched over the N samples (stride T C for heads, T T for the square matrices), one call per head.
#include "kernels/cuda/attention_unfused.h"

#include <cmath>
#include <type_traits>

#include "kernels/cuda/check_libs.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/scratch.h"

namespace ddpm::cuda {

namespace {
constexpr int kWarpsPerBlock = 8;

__device__ __forceinline__ float warp_max(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// p [rows, t] = softmax of each row of s (float32), one warp per row.
template <class T>
__global__ void softmax_rows_kernel(const float* s, T* p, int64_t rows, int t) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (row >= rows) return;  // whole warps
  const int lane = threadIdx.x % 32;
  const float* x = s + row * t;
  float mx = -INFINITY;
  for (int j = lane; j < t; j += 32) mx = fmaxf(mx, x[j]);
  mx = warp_max(mx);
  float sum = 0.0f;
  for (int j = lane; j < t; j += 32) sum += expf(x[j] - mx);
  const float inv = 1.0f / warp_sum(sum);
  for (int j = lane; j < t; j += 32) p[row * t + j] = from_f<T>(expf(x[j] - mx) * inv);
}

// ds [N T, t] = p (dp - D_i) * scale, D_i = rowsum(dO * O) over head h's d channels of row i.
template <class T>
__global__ void softmax_grad_kernel(const T* p, const float* dp, const T* out, const T* grad_out, T* ds,
                                    int64_t rows, int t, int c, int d, int head, float scale) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (row >= rows) return;
  const int lane = threadIdx.x % 32;
  const int64_t at = row * c + static_cast<int64_t>(head) * d;  // row = sample * T + i
  float dot = 0.0f;
  for (int k = lane; k < d; k += 32) dot += to_f<T>(grad_out[at + k]) * to_f<T>(out[at + k]);
  dot = warp_sum(dot);
  for (int j = lane; j < t; j += 32) {
    const int64_t e = row * t + j;
    ds[e] = from_f<T>(to_f<T>(p[e]) * (dp[e] - dot) * scale);
  }
}

unsigned row_blocks(int64_t rows) { return static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock); }

template <class T> constexpr cudaDataType_t cuda_type() {
  return std::is_same_v<T, float> ? CUDA_R_32F : CUDA_R_16BF;
}

// One strided-batched GEMM over the N samples: C = alpha op(A) op(B) + beta C.
struct Gemm {
  int batch;
  void operator()(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha, const void* a,
                  cudaDataType_t at, int lda, long long sa, const void* b, cudaDataType_t bt, int ldb, long long sb,
                  float beta, void* c, cudaDataType_t ct, int ldc, long long sc) const {
    DDPM_CUBLAS_CHECK(cublasGemmStridedBatchedEx(cublas(), ta, tb, m, n, k, &alpha, a, at, lda, sa, b, bt, ldb, sb,
                                                 &beta, c, ct, ldc, sc, batch, CUBLAS_COMPUTE_32F,
                                                 CUBLAS_GEMM_DEFAULT));
  }
};

struct Dims {
  int n, t, c, heads, d;
  float scale;
  long long head_stride() const { return static_cast<long long>(t) * c; }
  long long square() const { return static_cast<long long>(t) * t; }
};

Dims dims_of(const Tensor& q, int heads) {
  Dims m;
  m.n = static_cast<int>(q.dim(0));
  m.t = static_cast<int>(q.dim(1));
  m.c = static_cast<int>(q.dim(2));
  m.heads = heads;
  m.d = m.c / heads;
  m.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(m.d)));
  return m;
}

// s (float32) = Q_h K_h^T * scale, then p (T) = softmax rows of s.
template <class T>
void probabilities(const Gemm& gemm, const Dims& m, const T* q, const T* k, float* s, T* p) {
  const cudaDataType_t ty = cuda_type<T>();
  gemm(CUBLAS_OP_T, CUBLAS_OP_N, m.t, m.t, m.d, m.scale, k, ty, m.c, m.head_stride(), q, ty, m.c, m.head_stride(),
       0.0f, s, CUDA_R_32F, m.t, m.square());
  const int64_t rows = static_cast<int64_t>(m.n) * m.t;
  softmax_rows_kernel<T><<<row_blocks(rows), 32 * kWarpsPerBlock, 0, stream()>>>(s, p, rows, m.t);
  DDPM_CUDA_CHECK_LAUNCH();
}

}  // namespace

void attention_unfused_forward(const attention_fwd& args) {
  dispatch_float("attention (unfused)", args.q.dtype(), [&](auto tag) {
    using T = decltype(tag);
    check_operands("attention (unfused)", args.q.dtype(), args.q, args.k, args.v, args.out);
    const Dims m = dims_of(args.q, args.heads);
    if (args.q.numel() == 0) return;
    const size_t square = static_cast<size_t>(m.n) * m.square();
    Scratch s(square * sizeof(float)), p(square * sizeof(T));
    const Gemm gemm{m.n};
    const cudaDataType_t ty = cuda_type<T>();
    for (int h = 0; h < m.heads; ++h) {
      const int64_t off = static_cast<int64_t>(h) * m.d;
      probabilities<T>(gemm, m, ptr<T>(args.q) + off, ptr<T>(args.k) + off, s.as<float>(), p.as<T>());
      gemm(CUBLAS_OP_N, CUBLAS_OP_N, m.d, m.t, m.t, 1.0f, ptr<T>(args.v) + off, ty, m.c, m.head_stride(), p.as<T>(),
           ty, m.t, m.square(), 0.0f, ptr<T>(args.out) + off, ty, m.c, m.head_stride());
    }
  });
}

void attention_unfused_backward(const attention_bwd& args) {
  const bool want_q = args.grad_q.wanted(), want_k = args.grad_k.wanted(), want_v = args.grad_v.wanted();
  if (!want_q && !want_k && !want_v) return;
  dispatch_float("attention (unfused)", args.q.dtype(), [&](auto tag) {
    using T = decltype(tag);
    check_operands("attention (unfused)", args.q.dtype(), args.grad_out, args.q, args.k, args.v, args.out,
                   args.grad_q.tensor, args.grad_k.tensor, args.grad_v.tensor);
    const Dims m = dims_of(args.q, args.heads);
    if (args.q.numel() == 0) return;
    const size_t square = static_cast<size_t>(m.n) * m.square();
    Scratch s(square * sizeof(float)), p(square * sizeof(T)), dp(square * sizeof(float)), ds(square * sizeof(T));
    const Gemm gemm{m.n};
    const cudaDataType_t ty = cuda_type<T>();
    const long long hs = m.head_stride(), sq = m.square();
    auto beta = [](const GradSlot& slot) { return slot.accumulate ? 1.0f : 0.0f; };
    for (int h = 0; h < m.heads; ++h) {
      const int64_t off = static_cast<int64_t>(h) * m.d;
      const T* q = ptr<T>(args.q) + off;
      const T* k = ptr<T>(args.k) + off;
      const T* v = ptr<T>(args.v) + off;
      const T* g = ptr<T>(args.grad_out) + off;
      probabilities<T>(gemm, m, q, k, s.as<float>(), p.as<T>());
      if (want_v)
        gemm(CUBLAS_OP_N, CUBLAS_OP_T, m.d, m.t, m.t, 1.0f, g, ty, m.c, hs, p.as<T>(), ty, m.t, sq,
             beta(args.grad_v), ptr<T>(args.grad_v.tensor) + off, ty, m.c, hs);
      if (!want_q && !want_k) continue;
      gemm(CUBLAS_OP_T, CUBLAS_OP_N, m.t, m.t, m.d, 1.0f, v, ty, m.c, hs, g, ty, m.c, hs, 0.0f, dp.as<float>(),
           CUDA_R_32F, m.t, sq);
      const int64_t rows = static_cast<int64_t>(m.n) * m.t;
      softmax_grad_kernel<T><<<row_blocks(rows), 32 * kWarpsPerBlock, 0, stream()>>>(
          p.as<T>(), dp.as<float>(), ptr<T>(args.out), ptr<T>(args.grad_out), ds.as<T>(), rows, m.t, m.c, m.d, h,
          m.scale);
      DDPM_CUDA_CHECK_LAUNCH();
      if (want_q)
        gemm(CUBLAS_OP_N, CUBLAS_OP_N, m.d, m.t, m.t, 1.0f, k, ty, m.c, hs, ds.as<T>(), ty, m.t, sq,
             beta(args.grad_q), ptr<T>(args.grad_q.tensor) + off, ty, m.c, hs);
      if (want_k)
        gemm(CUBLAS_OP_N, CUBLAS_OP_T, m.d, m.t, m.t, 1.0f, q, ty, m.c, hs, ds.as<T>(), ty, m.t, sq,
             beta(args.grad_k), ptr<T>(args.grad_k.tensor) + off, ty, m.c, hs);
    }
  });
}

}  // namespace ddpm::cuda
