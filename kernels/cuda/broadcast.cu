// Broadcast geometry and the deterministic sum of a-shaped values into b (see broadcast.cuh).
#include <vector>

#include "engine/error.h"
#include "kernels/cuda/broadcast.cuh"
#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/scratch.h"

namespace ddpm::cuda {

BroadcastAxes BroadcastAxes::make(const char* op, const Shape& a, const Shape& b) {
  DDPM_CHECK(b.size() <= a.size(), op, ": b ", shape_str(b), " has more axes than a ", shape_str(a));
  struct Run {
    int64_t dim;
    bool kept;
  };
  std::vector<Run> runs;  // outermost first; neighbours of one kind merge
  const size_t offset = a.size() - b.size();
  for (size_t i = 0; i < a.size(); ++i) {
    const int64_t ad = a[i], bd = i >= offset ? b[i - offset] : 1;
    DDPM_CHECK(bd == ad || bd == 1, op, ": b ", shape_str(b), " does not broadcast into a ", shape_str(a));
    if (ad == 1) continue;  // a size-1 axis moves nothing
    const bool kept = bd != 1;
    if (!runs.empty() && runs.back().kept == kept)
      runs.back().dim *= ad;
    else
      runs.push_back({ad, kept});
  }
  DDPM_CHECK(runs.size() <= static_cast<size_t>(kMaxAxes), op, ": broadcasting ", shape_str(b), " into ",
             shape_str(a), " alternates between kept and broadcast axes more than ", kMaxAxes, " times");

  BroadcastAxes ax;
  ax.count = static_cast<int>(runs.size());
  int64_t a_stride = 1, b_stride = 1;
  for (int k = ax.count - 1; k >= 0; --k) {
    ax.dim[k] = runs[static_cast<size_t>(k)].dim;
    ax.kept[k] = runs[static_cast<size_t>(k)].kept;
    ax.a_stride[k] = a_stride;
    ax.b_stride[k] = ax.kept[k] ? b_stride : 0;
    a_stride *= ax.dim[k];
    if (ax.kept[k]) b_stride *= ax.dim[k];
  }
  ax.a_numel = numel(a);
  ax.b_numel = numel(b);
  // b's elements are a's innermost ones: no kept run before a broadcast one.
  ax.b_is_suffix = ax.b_numel > 0 && (ax.count == 0 || ax.b_numel == 1 ||
                                      (ax.kept[ax.count - 1] && ax.count <= 2));
  return ax;
}

namespace {
// Offset into a of `index` decomposed over the runs of one kind (kept: index is b's element;
// broadcast: index enumerates the a elements that meet one b element).
__device__ __forceinline__ int64_t a_offset(const BroadcastAxes& ax, int64_t index, bool kept_kind) {
  int64_t offset = 0;
  for (int k = ax.count - 1; k >= 0; --k) {
    if (ax.kept[k] != kept_kind) continue;
    offset += (index % ax.dim[k]) * ax.a_stride[k];
    index /= ax.dim[k];
  }
  return offset;
}

// Stage 1: thread (j, s) sums the a elements r = s, s + slices, ... of b's element j, into
// partial[s, j] (or straight into out when there is one slice). Neighbouring threads take
// neighbouring j when b follows a's innermost axis, neighbouring r otherwise: either way their
// loads are adjacent in memory.
template <class T>
__global__ void reduce_stage1(BroadcastAxes ax, int64_t slices, bool kept_inner, const T* g, const T* w,
                              float factor, double* partial, T* out, bool accumulate) {
  const int64_t nb = ax.b_numel, per_b = ax.a_numel / nb;
  DDPM_GRID_STRIDE(t, nb * slices) {
    const int64_t j = kept_inner ? t % nb : t / slices;
    const int64_t s = kept_inner ? t / nb : t % slices;
    const int64_t base = a_offset(ax, j, true);
    double total = 0;
    for (int64_t r = s; r < per_b; r += slices) {
      const int64_t i = base + a_offset(ax, r, false);
      float v = load_f(g, i) * factor;
      if (w) v *= load_f(w, i);
      total += v;
    }
    if (partial)
      partial[s * nb + j] = total;
    else
      put_f(out, j, static_cast<float>(total), accumulate);
  }
}

// Stage 2: one block per b element sums its slices in a fixed tree.
template <class T>
__global__ void reduce_stage2(const double* partial, int64_t nb, int64_t slices, T* out, bool accumulate) {
  __shared__ double scratch[32];
  for (int64_t j = blockIdx.x; j < nb; j += gridDim.x) {
    double total = 0;
    for (int64_t s = threadIdx.x; s < slices; s += blockDim.x) total += partial[s * nb + j];
    total = block_sum_d(total, scratch);
    if (threadIdx.x == 0) put_f(out, j, static_cast<float>(total), accumulate);
  }
}

// Slices per b element: enough threads to fill a GPU (~64K), at least 8 elements per thread.
// Depends on the shapes only, so the summation order is the same on every device.
int64_t slice_count(int64_t nb, int64_t per_b) {
  constexpr int64_t kTargetThreads = int64_t{1} << 16;
  int64_t slices = (kTargetThreads + nb - 1) / nb;
  const int64_t most = per_b / 8 > 1 ? per_b / 8 : 1;
  return slices < most ? slices : most;
}

template <class T>
void reduce_typed(const BroadcastAxes& ax, const T* g, const T* w, float factor, T* out, bool accumulate) {
  const int64_t nb = ax.b_numel;
  if (nb == 0) return;
  cudaStream_t s = stream();
  if (ax.a_numel == 0) {  // nothing meets b: its gradient is zero
    if (!accumulate) DDPM_CUDA_CHECK(cudaMemsetAsync(out, 0, static_cast<size_t>(nb) * sizeof(T), s));
    return;
  }
  const int64_t slices = slice_count(nb, ax.a_numel / nb);
  const bool kept_inner = ax.count > 0 && ax.kept[ax.count - 1];
  Scratch partial(slices > 1 ? static_cast<size_t>(nb * slices) * sizeof(double) : 0);
  reduce_stage1<T><<<launch_1d(nb * slices), kThreads, 0, s>>>(ax, slices, kept_inner, g, w, factor,
                                                               partial.as<double>(), out, accumulate);
  DDPM_CUDA_CHECK_LAUNCH();
  if (slices == 1) return;
  const auto blocks = static_cast<unsigned>(nb < 65536 ? nb : 65536);
  reduce_stage2<T><<<blocks, 128, 0, s>>>(partial.as<double>(), nb, slices, out, accumulate);
  DDPM_CUDA_CHECK_LAUNCH();
}
}  // namespace

void reduce_into_b(DType dtype, const BroadcastAxes& axes, const void* g, const void* a_values, float factor,
                   void* out, bool accumulate) {
  dispatch_float("reduce_into_b", dtype, [&](auto tag) {
    using T = decltype(tag);
    reduce_typed<T>(axes, static_cast<const T*>(g), static_cast<const T*>(a_values), factor, static_cast<T*>(out),
                    accumulate);
  });
}

}  // namespace ddpm::cuda
