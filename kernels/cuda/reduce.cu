// sum (and mean, as sum with a factor), mse and sum_squares over the trailing axes: x viewed as
// [outer, inner]. Reductions accumulate in double, like the CPU, and in a fixed order that depends
// only on the shape: each row is cut into chunks, a block sums a chunk (stage 1) and a second
// kernel sums the chunks of a row (stage 2). No atomics, so results are reproducible.
#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/scratch.h"

namespace ddpm {

namespace {
using cuda::kThreads;
using cuda::launch_1d;
using cuda::load_f;
using cuda::ptr;
using cuda::put_f;

// ---- the summed terms ----
template <class T> struct SumTerm {
  const T* x;
  __device__ double operator()(int64_t i) const { return load_f(x, i); }
};
template <class T> struct SquaredDiffTerm {
  const T *a, *b;
  __device__ double operator()(int64_t i) const {
    const double d = static_cast<double>(load_f(a, i)) - load_f(b, i);
    return d * d;
  }
};
template <class T> struct SquareTerm {
  const T* x;
  __device__ double operator()(int64_t i) const {
    const double v = load_f(x, i);
    return v * v;
  }
};

__device__ __forceinline__ void store_d(double* p, int64_t i, double v) { p[i] = v; }
template <class T> __device__ __forceinline__ void store_d(T* p, int64_t i, double v) {
  cuda::store_f(p, i, static_cast<float>(v));
}

struct RowSplit {
  int64_t outer, inner, chunks, chunk_len;
};
RowSplit split_rows(const Tensor& x, int keep) {
  DDPM_CHECK(keep >= 0 && keep <= x.rank(), "CUDA reduction: keep = ", keep, " is outside [0, ", x.rank(), "] for ",
             x.describe());
  int64_t outer = 1;
  for (int i = 0; i < keep; ++i) outer *= x.dim(i);
  const int64_t inner = outer ? x.numel() / outer : 0;
  // Chunks of at least 8K elements, at most 1024 per row: enough blocks for a long row, few
  // partials for stage 2.
  int64_t chunks = (inner + 8191) / 8192;
  chunks = chunks < 1 ? 1 : (chunks > 1024 ? 1024 : chunks);
  return {outer, inner, chunks, (inner + chunks - 1) / chunks};
}

// Stage 1: block (c, o) sums chunk c of row o into partial[o, c], or, with one chunk per row,
// stores factor * sum straight into out[o].
template <class Term, class Out>
__global__ void rows_stage1(RowSplit s, Term term, double factor, double* partial, Out* out) {
  __shared__ double scratch[32];
  for (int64_t o = blockIdx.y; o < s.outer; o += gridDim.y)
    for (int64_t c = blockIdx.x; c < s.chunks; c += gridDim.x) {
      const int64_t begin = c * s.chunk_len;
      const int64_t end = begin + s.chunk_len < s.inner ? begin + s.chunk_len : s.inner;
      double total = 0;
      for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) total += term(o * s.inner + i);
      total = cuda::block_sum_d(total, scratch);
      if (threadIdx.x != 0) continue;
      if (partial)
        partial[o * s.chunks + c] = total;
      else
        store_d(out, o, factor * total);
    }
}

// Stage 2: block o sums the chunks of row o.
template <class Out>
__global__ void rows_stage2(RowSplit s, const double* partial, double factor, Out* out) {
  __shared__ double scratch[32];
  for (int64_t o = blockIdx.x; o < s.outer; o += gridDim.x) {
    double total = 0;
    for (int64_t c = threadIdx.x; c < s.chunks; c += blockDim.x) total += partial[o * s.chunks + c];
    total = cuda::block_sum_d(total, scratch);
    if (threadIdx.x == 0) store_d(out, o, factor * total);
  }
}

unsigned capped(int64_t n) { return static_cast<unsigned>(n < 65535 ? n : 65535); }

// out[o] = factor * sum over the row o of term (out is a device pointer).
template <class Term, class Out>
void reduce_rows(const RowSplit& s, Term term, double factor, Out* out) {
  if (s.outer == 0) return;
  cudaStream_t stream = cuda::stream();
  cuda::Scratch partial(s.chunks > 1 ? static_cast<size_t>(s.outer * s.chunks) * sizeof(double) : 0);
  rows_stage1<<<dim3(capped(s.chunks), capped(s.outer)), kThreads, 0, stream>>>(s, term, factor,
                                                                               partial.as<double>(), out);
  DDPM_CUDA_CHECK_LAUNCH();
  if (s.chunks == 1) return;
  rows_stage2<<<capped(s.outer), kThreads, 0, stream>>>(s, partial.as<double>(), factor, out);
  DDPM_CUDA_CHECK_LAUNCH();
}

// grad_x[o, i] (=|+=) factor * g[o]
template <class T>
__global__ void sum_backward_kernel(int64_t total, int64_t inner, const T* g, float factor, T* gx, bool accumulate) {
  DDPM_GRID_STRIDE(i, total) { put_f(gx, i, factor * load_f(g, i / inner), accumulate); }
}

// d = (2 / inner) (a - b) g[o]; grad_a (=|+=) d, grad_b (=|+=) -d
template <class T>
__global__ void mse_backward_kernel(int64_t total, int64_t inner, const T* a, const T* b, const T* g,
                                    float two_over_n, T* ga, bool acc_a, T* gb, bool acc_b) {
  DDPM_GRID_STRIDE(i, total) {
    const float d = two_over_n * (load_f(a, i) - load_f(b, i)) * load_f(g, i / inner);
    if (ga) put_f(ga, i, d, acc_a);
    if (gb) put_f(gb, i, -d, acc_b);
  }
}
}  // namespace

void CudaBackend::sum_forward(const sum_fwd& args) {
  cuda::dispatch_float("sum", args.x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands("sum", args.x.dtype(), args.out);
    reduce_rows(split_rows(args.x, args.keep), SumTerm<T>{ptr<T>(args.x)}, args.factor, ptr<T>(args.out));
  });
}

void CudaBackend::sum_backward(const sum_bwd& args) {
  if (!args.grad_x.wanted()) return;
  cuda::dispatch_float("sum", args.grad_out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Tensor& gx = args.grad_x.tensor;
    cuda::check_operands("sum", args.grad_out.dtype(), gx);
    const RowSplit s = split_rows(gx, args.keep);
    const int64_t total = gx.numel();
    if (total == 0) return;
    sum_backward_kernel<T><<<launch_1d(total), kThreads, 0, cuda::stream()>>>(
        total, s.inner, ptr<T>(args.grad_out), static_cast<float>(args.factor), ptr<T>(gx), args.grad_x.accumulate);
    DDPM_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::mse_forward(const mse_fwd& args) {
  cuda::dispatch_float("mse", args.a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands("mse", args.a.dtype(), args.b, args.out);
    const RowSplit s = split_rows(args.a, args.keep);
    reduce_rows(s, SquaredDiffTerm<T>{ptr<T>(args.a), ptr<T>(args.b)},
                s.inner ? 1.0 / static_cast<double>(s.inner) : 0.0, ptr<T>(args.out));
  });
}

void CudaBackend::mse_backward(const mse_bwd& args) {
  if (!args.grad_a.wanted() && !args.grad_b.wanted()) return;
  cuda::dispatch_float("mse", args.a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands("mse", args.a.dtype(), args.b, args.grad_out, args.grad_a.tensor, args.grad_b.tensor);
    const RowSplit s = split_rows(args.a, args.keep);
    const int64_t total = args.a.numel();
    if (total == 0) return;
    T* ga = args.grad_a.wanted() ? ptr<T>(args.grad_a.tensor) : nullptr;
    T* gb = args.grad_b.wanted() ? ptr<T>(args.grad_b.tensor) : nullptr;
    mse_backward_kernel<T><<<launch_1d(total), kThreads, 0, cuda::stream()>>>(
        total, s.inner, ptr<T>(args.a), ptr<T>(args.b), ptr<T>(args.grad_out),
        static_cast<float>(2.0 / static_cast<double>(s.inner)), ga, args.grad_a.accumulate, gb, args.grad_b.accumulate);
    DDPM_CUDA_CHECK_LAUNCH();
  });
}

// The global gradient norm's reduction: the result crosses to the host, so this call waits.
void CudaBackend::sum_squares(const sum_squares_args& args) {
  DDPM_CHECK(args.result != nullptr || args.out.defined(), "CUDA sum_squares: no result pointer or tensor given");
  cuda::dispatch_float("sum_squares", args.x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands("sum_squares", args.x.dtype(), args.x);
    const RowSplit s = split_rows(args.x, 0);
    if (args.out.defined()) {  // into a device tensor: no read-back, so it can be captured
      DDPM_CHECK(args.out.device() == Device::CUDA && args.out.dtype() == DType::F64 && args.out.numel() == 1,
                 "CUDA sum_squares: out must be a float64 cuda tensor of 1 value, got ", args.out.describe());
      if (s.inner == 0)
        DDPM_CUDA_CHECK(cudaMemsetAsync(ptr<double>(args.out), 0, sizeof(double), cuda::stream()));
      else
        reduce_rows(s, SquareTerm<T>{ptr<T>(args.x)}, 1.0, ptr<double>(args.out));
      return;
    }
    if (s.inner == 0) {
      *args.result = 0.0;
      return;
    }
    cuda::Scratch result(sizeof(double));
    reduce_rows(s, SquareTerm<T>{ptr<T>(args.x)}, 1.0, result.as<double>());
    DDPM_CUDA_CHECK(
        cudaMemcpyAsync(args.result, result.as<double>(), sizeof(double), cudaMemcpyDeviceToHost, cuda::stream()));
    DDPM_CUDA_CHECK(cudaStreamSynchronize(cuda::stream()));
  });
}

}  // namespace ddpm
