// The reductions around the convolution GEMMs: the split-K finish (sum of float32 partials in a
// fixed order, then the GradSlot store), the bias gradient as a two-pass column sum, and the bias
// add of the cuDNN forward.
#include <algorithm>

#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/conv2d_internal.h"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/scratch.h"

namespace ddpm::cuda::conv {

namespace {

template <class T>
__global__ void sum_partials_kernel(const float* partials, int splits, int64_t count, T* out, bool accumulate) {
  DDPM_GRID_STRIDE(i, count) {
    float sum = 0.0f;
    for (int s = 0; s < splits; ++s) sum += partials[s * count + i];
    put_f<T>(out, i, sum, accumulate);
  }
}

constexpr int kColTile = 32, kRowLanes = 8;

// partials[part, c] = sum of g[r, c] over part's rows. Block (32, 8): lanes along columns (a warp
// reads one row's 32 columns), 8 row lanes strided over the part, combined in a fixed order.
template <class T>
__global__ void column_partials_kernel(const T* g, int64_t rows, int cols, int64_t rows_per_part, float* partials) {
  __shared__ float lanes[kRowLanes][kColTile + 1];
  const int c = blockIdx.x * kColTile + threadIdx.x;
  const int64_t r0 = blockIdx.y * rows_per_part;
  const int64_t r1 = min(rows, r0 + rows_per_part);
  float sum = 0.0f;
  if (c < cols)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kRowLanes) sum += to_f<T>(g[r * cols + c]);
  lanes[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    float total = 0.0f;
    for (int i = 0; i < kRowLanes; ++i) total += lanes[i][threadIdx.x];
    partials[blockIdx.y * static_cast<int64_t>(cols) + c] = total;
  }
}

template <class T>
__global__ void add_bias_rows_kernel(T* out, const T* bias, int64_t rows, int cols) {
  DDPM_GRID_STRIDE(i, rows * cols) { out[i] = from_f<T>(to_f<T>(out[i]) + to_f<T>(bias[i % cols])); }
}

}  // namespace

template <class T>
void sum_partials(const float* partials, int splits, int64_t count, T* out, bool accumulate) {
  if (count == 0) return;
  sum_partials_kernel<T><<<launch_1d(count), kThreads, 0, stream()>>>(partials, splits, count, out, accumulate);
  DDPM_CUDA_CHECK_LAUNCH();
}

template <class T>
void column_sums(const T* g, int64_t rows, int cols, T* out, bool accumulate) {
  if (cols == 0) return;
  // About four blocks per SM in all, each summing at least 64 rows.
  const int col_blocks = (cols + kColTile - 1) / kColTile;
  const int64_t max_parts = std::max<int64_t>(1, (rows + 63) / 64);
  const int64_t want = (4 * sm_count() + col_blocks - 1) / col_blocks;
  const int parts = static_cast<int>(std::clamp<int64_t>(want, 1, std::min<int64_t>(max_parts, 65535)));
  const int64_t rows_per_part = (rows + parts - 1) / parts;
  Scratch partials(static_cast<size_t>(parts) * cols * sizeof(float));
  column_partials_kernel<T><<<dim3(col_blocks, parts), dim3(kColTile, kRowLanes), 0, stream()>>>(
      g, rows, cols, rows_per_part, partials.as<float>());
  DDPM_CUDA_CHECK_LAUNCH();
  sum_partials<T>(partials.as<float>(), parts, cols, out, accumulate);
}

template <class T>
void add_bias_rows(T* out, const T* bias, int64_t rows, int cols) {
  if (rows == 0 || cols == 0) return;
  add_bias_rows_kernel<T><<<launch_1d(rows * cols), kThreads, 0, stream()>>>(out, bias, rows, cols);
  DDPM_CUDA_CHECK_LAUNCH();
}

template void sum_partials<float>(const float*, int, int64_t, float*, bool);
template void sum_partials<__nv_bfloat16>(const float*, int, int64_t, __nv_bfloat16*, bool);
template void column_sums<float>(const float*, int64_t, int, float*, bool);
template void column_sums<__nv_bfloat16>(const __nv_bfloat16*, int64_t, int, __nv_bfloat16*, bool);
template void add_bias_rows<float>(float*, const float*, int64_t, int);
template void add_bias_rows<__nv_bfloat16>(__nv_bfloat16*, const __nv_bfloat16*, int64_t, int);

}  // namespace ddpm::cuda::conv
