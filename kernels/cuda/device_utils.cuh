// Device helpers shared by the CUDA kernel files: typed loads/stores that compute in float32
// whatever the storage type (float or bfloat16), grid sizing, warp/block sums, the GradSlot store
// and the dtype dispatch used by every op entry point.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "engine/dtype.h"
#include "engine/error.h"
#include "engine/tensor.h"

namespace ddpm::cuda {

// ---- float32 views of float / bfloat16 storage ----
template <class T> __device__ __forceinline__ float to_f(T v);
template <> __device__ __forceinline__ float to_f<float>(float v) { return v; }
template <> __device__ __forceinline__ float to_f<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

template <class T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
// Round to nearest even, like float_to_bf16_bits on the host.
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

template <class T> __device__ __forceinline__ float load_f(const T* p, int64_t i) { return to_f<T>(p[i]); }
template <class T> __device__ __forceinline__ void store_f(T* p, int64_t i, float v) { p[i] = from_f<T>(v); }

// GradSlot store: dst[i] = v, or dst[i] += v when accumulating (the sum is formed in float32 and
// rounded once). A non-accumulating slot is never read.
template <class T> __device__ __forceinline__ void put_f(T* dst, int64_t i, float v, bool accumulate) {
  if (accumulate) v += to_f<T>(dst[i]);
  dst[i] = from_f<T>(v);
}

// ---- launch geometry ----
constexpr int kThreads = 256;
// Blocks for a grid-stride loop over n elements: enough to fill the device, capped so that a
// huge n does not overflow gridDim.x (the loop covers the rest).
inline unsigned launch_1d(int64_t n, int threads = kThreads) {
  int64_t blocks = (n + threads - 1) / threads;
  if (blocks < 1) blocks = 1;
  const int64_t cap = int64_t{1} << 20;
  return static_cast<unsigned>(blocks < cap ? blocks : cap);
}

#define DDPM_GRID_STRIDE(i, n)                                                                    \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n);          \
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)

// ---- reductions in float32 ----
__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024). Every thread gets the result.
// `scratch` holds 32 floats of shared memory; the call synchronizes, so scratch may be reused
// after it returns only once all threads have read the result (a second call re-syncs first).
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int warps = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous block_sum
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : 0.0f;
  return warp_sum(v);
}

// Same, in double (for sums whose result is handed back as a host double).
__device__ __forceinline__ double warp_sum_d(double v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}
__device__ __forceinline__ double block_sum_d(double v, double* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int warps = (blockDim.x + 31) >> 5;
  v = warp_sum_d(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : 0.0;
  return warp_sum_d(v);
}

// ---- dtype dispatch for op entry points ----
// Calls fn(T{}) with T = float or __nv_bfloat16; other dtypes (float64 is CPU-only for ops) throw
// an error naming the op.
template <class Fn> void dispatch_float(const char* op, DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::F32: fn(float{}); return;
    case DType::BF16: fn(__nv_bfloat16{}); return;
    case DType::F64: break;
  }
  detail::fail("CUDA ", op, ": dtype ", dtype_name(dtype),
               " is not supported on CUDA (float32 or bfloat16; float64 is CPU-only)");
}

template <class T> T* ptr(const Tensor& t) { return static_cast<T*>(t.raw()); }

// Every defined operand must be a CUDA tensor of `dtype`: kernels reinterpret raw memory, so a
// mismatch the ops layer let through would be silent garbage. Undefined tensors (unwanted slots,
// absent biases) are skipped.
inline void check_operand(const char* op, DType dtype, const Tensor& t) {
  if (!t.defined()) return;
  DDPM_CHECK(t.device() == Device::CUDA && t.dtype() == dtype, "CUDA ", op, ": expected ",
             dtype_name(dtype), " tensors on cuda, got ", t.describe());
}
template <class... Tensors> void check_operands(const char* op, DType dtype, const Tensors&... tensors) {
  (check_operand(op, dtype, tensors), ...);
}

}  // namespace ddpm::cuda
