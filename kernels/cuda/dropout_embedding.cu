// dropout (mask drawn from Philox in the kernel, identical to the CPU's, and redrawn in the
// backward) and the sinusoidal timestep embedding.
#include <cmath>

#include "engine/philox.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/graph_capture.h"
#include "kernels/cuda/philox_blocks.cuh"

namespace ddpm {

namespace {
using cuda::kThreads;
using cuda::launch_1d;
using cuda::load_f;
using cuda::ptr;
using cuda::put_f;

// out[i] = in[i] * keep(i) / (1 - p), keep(i) = uniform(seed, stream, offset + i) >= float(p): both
// the forward (in = x) and the backward (in = grad_out).
template <class T>
__global__ void masked_scale_kernel(int64_t n, const T* in, T* out, float threshold, float keep_scale, uint64_t seed,
                                    uint64_t stream, const uint64_t* stream_offset, uint64_t offset, bool accumulate) {
  stream = replay_stream(stream, stream_offset);  // a CUDA graph's replay: engine/replay_counter.h
  const cuda::DrawBlocks blocks = cuda::draw_blocks(n, offset);
  DDPM_GRID_STRIDE(b, blocks.count) {
    cuda::draw_block<false>(seed, stream, offset, n, blocks.first + static_cast<uint64_t>(b), [&](int64_t i, float u) {
      put_f(out, i, u >= threshold ? load_f(in, i) * keep_scale : 0.0f, accumulate);
    });
  }
}

template <class T>
void masked_scale(const char* op, const Tensor& in, const Tensor& out, double p, uint64_t seed, uint64_t stream,
                  uint64_t offset, bool accumulate) {
  cuda::check_operands(op, in.dtype(), out);
  const int64_t n = in.numel();
  if (n == 0) return;
  masked_scale_kernel<T><<<launch_1d(cuda::draw_blocks(n, offset).count), kThreads, 0, cuda::stream()>>>(
      n, ptr<T>(in), ptr<T>(out), static_cast<float>(p), static_cast<float>(1.0 / (1.0 - p)), seed, stream,
      cuda::replay_offset(DrawKind::Dropout), offset, accumulate);
  DDPM_CUDA_CHECK_LAUNCH();
}

// f_i = 10000^(-i / (half - 1)), computed in double like the CPU. The embedding itself is also
// computed in double: t reaches 1000, where a float32 argument t f_i would already be off by
// 6e-5, and the op is tiny ([N, dim]).
__device__ __forceinline__ double frequency(int i, int half) {
  return exp(-9.2103403719761827 * i / (half - 1));  // ln(10000)
}

// out [N, dim] = [sin(t f_i) for i < half, cos(t f_i) for i < half]
template <class T>
__global__ void embedding_forward_kernel(int64_t n, int dim, const T* t, T* out) {
  const int half = dim / 2;
  DDPM_GRID_STRIDE(e, n * half) {
    const int64_t b = e / half;
    const int i = static_cast<int>(e % half);
    const double arg = static_cast<double>(load_f(t, b)) * frequency(i, half);
    cuda::store_f(out, b * dim + i, static_cast<float>(sin(arg)));
    cuda::store_f(out, b * dim + half + i, static_cast<float>(cos(arg)));
  }
}

// grad_t[b] = sum_i f_i (g[b, i] cos(t f_i) - g[b, half + i] sin(t f_i)): one block per sample.
template <class T>
__global__ void embedding_backward_kernel(int64_t n, int dim, const T* t, const T* g, T* gt, bool accumulate) {
  __shared__ double scratch[32];
  const int half = dim / 2;
  for (int64_t b = blockIdx.x; b < n; b += gridDim.x) {
    const double tb = load_f(t, b);
    double total = 0;
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
      const double f = frequency(i, half), arg = tb * f;
      total += f * (load_f(g, b * dim + i) * cos(arg) - load_f(g, b * dim + half + i) * sin(arg));
    }
    total = cuda::block_sum_d(total, scratch);
    if (threadIdx.x == 0) put_f(gt, b, static_cast<float>(total), accumulate);
  }
}
}  // namespace

void CudaBackend::dropout_forward(const dropout_fwd& args) {
  cuda::dispatch_float("dropout", args.x.dtype(), [&](auto tag) {
    masked_scale<decltype(tag)>("dropout", args.x, args.out, args.p, args.seed, args.stream, args.offset, false);
  });
}

void CudaBackend::dropout_backward(const dropout_bwd& args) {
  if (!args.grad_x.wanted()) return;
  cuda::dispatch_float("dropout", args.grad_out.dtype(), [&](auto tag) {
    masked_scale<decltype(tag)>("dropout", args.grad_out, args.grad_x.tensor, args.p, args.seed, args.stream,
                                args.offset, args.grad_x.accumulate);
  });
}

void CudaBackend::timestep_embedding_forward(const timestep_embedding_fwd& args) {
  cuda::dispatch_float("timestep_embedding", args.t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands("timestep_embedding", args.t.dtype(), args.out);
    DDPM_CHECK(args.dim >= 4 && args.dim % 2 == 0, "CUDA timestep_embedding: dim must be even and at least 4, got ",
               args.dim);
    const int64_t n = args.t.dim(0), work = n * (args.dim / 2);
    if (work == 0) return;
    embedding_forward_kernel<T><<<launch_1d(work), kThreads, 0, cuda::stream()>>>(n, args.dim, ptr<T>(args.t),
                                                                                  ptr<T>(args.out));
    DDPM_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::timestep_embedding_backward(const timestep_embedding_bwd& args) {
  if (!args.grad_t.wanted()) return;
  cuda::dispatch_float("timestep_embedding", args.t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands("timestep_embedding", args.t.dtype(), args.grad_out, args.grad_t.tensor);
    DDPM_CHECK(args.dim >= 4 && args.dim % 2 == 0, "CUDA timestep_embedding: dim must be even and at least 4, got ",
               args.dim);
    const int64_t n = args.t.dim(0);
    if (n == 0) return;
    const auto blocks = static_cast<unsigned>(n < 65536 ? n : 65536);
    embedding_backward_kernel<T><<<blocks, 128, 0, cuda::stream()>>>(n, args.dim, ptr<T>(args.t), ptr<T>(args.grad_out),
                                                                     ptr<T>(args.grad_t.tensor), args.grad_t.accumulate);
    DDPM_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace ddpm
