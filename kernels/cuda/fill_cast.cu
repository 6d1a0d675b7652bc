// fill, fill_random (Philox, the same draws as the CPU) and cast between float32, bfloat16 and
// float64 (float64 tensors may live on CUDA to be cast, not computed with).
#include <cuda_bf16.h>

#include "engine/philox.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/graph_capture.h"

namespace ddpm {

namespace {
using cuda::kThreads;
using cuda::launch_1d;
using cuda::ptr;
using cuda::store_f;

template <class T>
__global__ void fill_kernel(int64_t n, float value, T* out) {
  DDPM_GRID_STRIDE(i, n) { store_f(out, i, value); }
}

// out[i] = shift + width * r(i), formed in double by one fma and rounded once to float32 (then to
// bfloat16), exactly as the CPU does (r(i) itself is bit-identical: engine/philox.h). In a CUDA
// graph the stream advances with each replay (engine/replay_counter.h; null offset: as given).
template <class T>
__global__ void fill_random_kernel(int64_t n, bool normal, double shift, double width, uint64_t seed, uint64_t stream,
                                   const uint64_t* stream_offset, T* out) {
  stream = replay_stream(stream, stream_offset);
  DDPM_GRID_STRIDE(i, n) {
    const auto index = static_cast<uint64_t>(i);
    const float r = normal ? philox::normal(seed, stream, index) : philox::uniform(seed, stream, index);
    store_f(out, i, static_cast<float>(__fma_rn(width, static_cast<double>(r), shift)));
  }
}

// Casts go through double like the CPU's: float64 -> bfloat16 rounds to float32 first.
template <class T> __device__ __forceinline__ double load_d(const T* p, int64_t i) { return cuda::load_f(p, i); }
template <> __device__ __forceinline__ double load_d<double>(const double* p, int64_t i) { return p[i]; }
template <class T> __device__ __forceinline__ void store_d(T* p, int64_t i, double v) {
  store_f(p, i, static_cast<float>(v));
}
template <> __device__ __forceinline__ void store_d<double>(double* p, int64_t i, double v) { p[i] = v; }

template <class In, class Out>
__global__ void cast_kernel(int64_t n, const In* in, Out* out) {
  DDPM_GRID_STRIDE(i, n) { store_d(out, i, load_d(in, i)); }
}

template <class Fn> void dispatch_any(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::F32: fn(float{}); return;
    case DType::F64: fn(double{}); return;
    case DType::BF16: fn(__nv_bfloat16{}); return;
  }
}
}  // namespace

void CudaBackend::fill(const fill_args& args) {
  cuda::dispatch_float("fill", args.out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands("fill", args.out.dtype(), args.out);
    const int64_t n = args.out.numel();
    if (n == 0) return;
    fill_kernel<T><<<launch_1d(n), kThreads, 0, cuda::stream()>>>(n, static_cast<float>(args.value), ptr<T>(args.out));
    DDPM_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::fill_random(const fill_random_args& args) {
  cuda::dispatch_float("fill_random", args.out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands("fill_random", args.out.dtype(), args.out);
    const int64_t n = args.out.numel();
    if (n == 0) return;
    const bool normal = args.distribution == Distribution::Normal;
    // normal: a + b z (mean, stddev); uniform: a + (b - a) u (low, high)
    const double width = normal ? args.b : args.b - args.a;
    fill_random_kernel<T><<<launch_1d(n), kThreads, 0, cuda::stream()>>>(n, normal, args.a, width, args.seed,
                                                                         args.stream, cuda::replay_offset(DrawKind::Noise),
                                                                         ptr<T>(args.out));
    DDPM_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::cast(const cast_args& args) {
  DDPM_CHECK(args.in.numel() == args.out.numel() && args.in.device() == Device::CUDA &&
                 args.out.device() == Device::CUDA,
             "CUDA cast: ", args.in.describe(), " into ", args.out.describe(),
             " (needs the same element count, both on cuda)");
  const int64_t n = args.in.numel();
  if (n == 0) return;
  if (args.in.dtype() == args.out.dtype()) {
    DDPM_CUDA_CHECK(cudaMemcpyAsync(args.out.raw(), args.in.raw(), args.in.nbytes(), cudaMemcpyDeviceToDevice,
                                    cuda::stream()));
    return;
  }
  dispatch_any(args.in.dtype(), [&](auto in_tag) {
    dispatch_any(args.out.dtype(), [&](auto out_tag) {
      using In = decltype(in_tag);
      using Out = decltype(out_tag);
      cast_kernel<In, Out><<<launch_1d(n), kThreads, 0, cuda::stream()>>>(n, ptr<In>(args.in), ptr<Out>(args.out));
      DDPM_CUDA_CHECK_LAUNCH();
    });
  });
}

}  // namespace ddpm
