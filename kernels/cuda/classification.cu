// global_avg_pool and softmax_cross_entropy on the GPU (float32 or bfloat16 storage, float32
// math). Pooling: one thread per output (sample, channel) walks the pixels, so adjacent threads
// read adjacent channels (coalesced) and the sum has a fixed order. The loss: one warp per row of
// logits (max, then sum of exp(x - max), by warp shuffles); its backward, one thread per logit.
#include <cmath>

#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/device_utils.cuh"

namespace ddpm {

namespace {
using cuda::kThreads;
using cuda::launch_1d;
using cuda::load_f;
using cuda::ptr;
using cuda::put_f;
using cuda::store_f;

// out [N, C] = mean over p of x [N, P, C]
template <class T>
__global__ void pool_forward_kernel(int64_t total, int64_t p, int64_t c, float inv_p, const T* x, T* out) {
  DDPM_GRID_STRIDE(i, total) {  // i = n * C + ch
    const T* src = x + (i / c) * p * c + i % c;
    float sum = 0.0f;
    for (int64_t q = 0; q < p; ++q) sum += load_f(src, q * c);
    store_f(out, i, sum * inv_p);
  }
}

// grad_x [N, P, C] = grad_out [N, C] / P at every pixel
template <class T>
__global__ void pool_backward_kernel(int64_t total, int64_t p, int64_t c, float inv_p, const T* g, T* gx,
                                     bool accumulate) {
  DDPM_GRID_STRIDE(i, total) { put_f(gx, i, inv_p * load_f(g, (i / (p * c)) * c + i % c), accumulate); }
}

__device__ __forceinline__ float warp_max(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// The class index a label holds, or -1 when it is not an integer in [0, k).
__device__ __forceinline__ int64_t class_of(float label, int64_t k) {
  if (!(label >= 0.0f) || !(label < static_cast<float>(k)) || label != floorf(label)) return -1;
  return static_cast<int64_t>(label);
}

constexpr int kWarpsPerBlock = kThreads / 32;

// One warp per row: lse[n] = max + log sum exp(x - max); out[n] = lse[n] - x[n, label].
template <class T>
__global__ void cross_entropy_forward_kernel(int64_t n, int64_t k, const T* x, const float* labels, T* out,
                                             float* lse) {
  const int lane = threadIdx.x & 31;
  for (int64_t row = blockIdx.x * static_cast<int64_t>(kWarpsPerBlock) + (threadIdx.x >> 5); row < n;
       row += static_cast<int64_t>(gridDim.x) * kWarpsPerBlock) {
    const T* r = x + row * k;
    float top = -INFINITY;
    for (int64_t j = lane; j < k; j += 32) top = fmaxf(top, load_f(r, j));
    top = warp_max(top);
    float total = 0.0f;
    for (int64_t j = lane; j < k; j += 32) total += expf(load_f(r, j) - top);
    total = cuda::warp_sum(total);
    if (lane != 0) continue;
    const float log_sum = top + logf(total);
    lse[row] = log_sum;
    const int64_t y = class_of(labels[row], k);
    store_f(out, row, y < 0 ? NAN : log_sum - load_f(r, y));
  }
}

// grad_logits[n, j] = grad_out[n] (exp(x[n, j] - lse[n]) - [j == label[n]])
template <class T>
__global__ void cross_entropy_backward_kernel(int64_t total, int64_t k, const T* x, const float* labels,
                                              const float* lse, const T* g, T* gx, bool accumulate) {
  DDPM_GRID_STRIDE(i, total) {
    const int64_t row = i / k, j = i % k, y = class_of(labels[row], k);
    const float softmax = expf(load_f(x, i) - lse[row]);
    const float d = y < 0 ? NAN : softmax - (j == y ? 1.0f : 0.0f);
    put_f(gx, i, load_f(g, row) * d, accumulate);
  }
}

void check_labels(const char* op, const Tensor& labels, const Tensor& lse) {
  DDPM_CHECK(labels.device() == Device::CUDA && labels.dtype() == DType::F32 && lse.device() == Device::CUDA &&
                 lse.dtype() == DType::F32,
             "CUDA ", op, ": labels and lse must be float32 on cuda, got ", labels.describe(), " and ", lse.describe());
}
}  // namespace

void CudaBackend::global_avg_pool_forward(const global_avg_pool_fwd& args) {
  cuda::dispatch_float("global_avg_pool", args.x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands("global_avg_pool", args.x.dtype(), args.x, args.out);
    const int64_t p = args.x.dim(1) * args.x.dim(2), c = args.x.dim(3), total = args.out.numel();
    if (total == 0) return;
    pool_forward_kernel<T><<<launch_1d(total), kThreads, 0, cuda::stream()>>>(
        total, p, c, static_cast<float>(1.0 / static_cast<double>(p)), ptr<T>(args.x), ptr<T>(args.out));
    DDPM_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::global_avg_pool_backward(const global_avg_pool_bwd& args) {
  if (!args.grad_x.wanted()) return;
  cuda::dispatch_float("global_avg_pool", args.grad_out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Tensor& gx = args.grad_x.tensor;
    cuda::check_operands("global_avg_pool", args.grad_out.dtype(), args.grad_out, gx);
    const int64_t p = gx.dim(1) * gx.dim(2), c = gx.dim(3), total = gx.numel();
    if (total == 0) return;
    pool_backward_kernel<T><<<launch_1d(total), kThreads, 0, cuda::stream()>>>(
        total, p, c, static_cast<float>(1.0 / static_cast<double>(p)), ptr<T>(args.grad_out), ptr<T>(gx),
        args.grad_x.accumulate);
    DDPM_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::softmax_cross_entropy_forward(const softmax_cross_entropy_fwd& args) {
  cuda::dispatch_float("softmax_cross_entropy", args.logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands("softmax_cross_entropy", args.logits.dtype(), args.logits, args.out);
    check_labels("softmax_cross_entropy", args.labels, args.lse);
    const int64_t n = args.logits.dim(0), k = args.logits.dim(1);
    if (n == 0) return;
    const int64_t blocks = (n + kWarpsPerBlock - 1) / kWarpsPerBlock;
    cross_entropy_forward_kernel<T><<<static_cast<unsigned>(blocks < 65535 ? blocks : 65535), kThreads, 0,
                                      cuda::stream()>>>(n, k, ptr<T>(args.logits), ptr<float>(args.labels),
                                                        ptr<T>(args.out), ptr<float>(args.lse));
    DDPM_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::softmax_cross_entropy_backward(const softmax_cross_entropy_bwd& args) {
  if (!args.grad_logits.wanted()) return;
  cuda::dispatch_float("softmax_cross_entropy", args.logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Tensor& gx = args.grad_logits.tensor;
    cuda::check_operands("softmax_cross_entropy", args.logits.dtype(), args.logits, args.grad_out, gx);
    check_labels("softmax_cross_entropy", args.labels, args.lse);
    const int64_t k = args.logits.dim(1), total = args.logits.numel();
    if (total == 0) return;
    cross_entropy_backward_kernel<T><<<launch_1d(total), kThreads, 0, cuda::stream()>>>(
        total, k, ptr<T>(args.logits), ptr<float>(args.labels), ptr<float>(args.lse), ptr<T>(args.grad_out),
        ptr<T>(gx), args.grad_logits.accumulate);
    DDPM_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace ddpm
