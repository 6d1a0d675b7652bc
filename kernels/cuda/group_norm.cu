// group_norm on CUDA, same semantics as kernels/cpu/group_norm.cpp: x viewed as [N, S, C] (NHWC,
// S = spatial size), the C channels split into G groups of Cg contiguous channels; statistics per
// (sample, group) over M = S * Cg elements; out = y or silu(y), y = xhat * gamma + beta. float32
// or bfloat16 storage, float32 statistics and math.
//
// Tiling. A block owns one sample n, a window of P whole groups (W = P * Cg contiguous channels,
// at least a 32-byte sector per row) and a chunk of rows. Thread t owns one column vector of V
// channels (tc = t % cols) and the rows tr + R * i (tr = t / cols, i < elems / V), held in
// registers. When one chunk covers all S rows (every UNet shape) the forward reads x once and
// writes y once, and the backward reads x and dy once and writes dx once. Larger maps split the
// rows into chunks: a statistics pass, then an apply pass over the same tiles.
//
// Reductions are deterministic: per-thread sums, then per-column sums in a fixed order through
// shared memory (column_sum), then per-group sums over the group's channels; chunks merge in
// chunk order; parameter gradients are a second pass over per-(sample, chunk) channel sums.
//
// Forward statistics (corrected two-pass, per tile): hi = f32 mean; lo = sum(x - hi) / M;
// var = sum((x - hi)^2) / M - lo^2. x - hi is exact for x near the mean, so a large mean
// (1e3 +- 1) keeps full precision: y = ((x - hi) - lo) * rstd * gamma + beta. Chunks merge with
// Chan's formula around the first chunk's hi. The saved mean is hi + lo rounded to f32.
//
// Backward: xhat' = (x - mean) * rstd from the saved f32 mean is off from the exact xhat by a
// per-group constant shift = (mean_exact - mean) * rstd, which the pass measures as
// sum(x - mean) / M * rstd and removes: sum(dy * xhat) = sum(dy * xhat') - shift * sum(dy). With
// h = dy * gamma (dy = grad_out, times silu'(y) when fused; y recomputed from xhat'):
//   dx = rstd * (h - mean(h) - xhat * mean(h * xhat)),
//   dgamma[c] = sum over n, s of dy * xhat, dbeta[c] = sum of dy.
//
// Sample bias b [N, C] (optional; the UNet's time embedding): every load of x adds b[n, c] (valid
// rows only, so rows past the end still hold zeros), so both passes see x + b. Its gradient is
// sum_s dx per (n, c), from sums the backward already has: with xhat = (x - mean) rstd - shift,
//   db[n, c] = rstd (gamma[c] sum dy - S mean_h - mean_hx (rstd sum(x - mean) - S shift)),
// one thread per (n, c) over the chunk partials and the group table (one more small launch).
//
// Dropout (p > 0): the output is multiplied by the dropout op's mask (philox::uniform of the flat
// index, one draw per element here), and the backward masks dy the same way as it loads it.
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <type_traits>

#include "engine/philox.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/graph_capture.h"
#include "kernels/cuda/scratch.h"

namespace ddpm {

namespace {
using cuda::from_f;
using cuda::ptr;
using cuda::to_f;

// Per pass: the most threads a block may have and the values each thread keeps in registers per
// tensor (the forward keeps x; the backward keeps x and dy, so it gets half the threads).
constexpr int kFwdThreads = 1024, kFwdElems = 16;
constexpr int kBwdThreads = 512, kBwdElems = 16;
constexpr int kMinRowBytes = 32;   // preferred: a window row covers a whole DRAM sector
constexpr int kMinThreads = 128;   // windows widen (more groups) until a block has this many

// ---- vector loads: V consecutive elements (V * sizeof(T) <= 16 bytes, aligned) as float ----
template <int Bytes> struct RawVec;
template <> struct RawVec<2> { using type = unsigned short; };
template <> struct RawVec<4> { using type = unsigned int; };
template <> struct RawVec<8> { using type = uint2; };
template <> struct RawVec<16> { using type = uint4; };

template <class T, int V>
__device__ __forceinline__ void load_vec(const T* p, float (&out)[V]) {
  using Raw = typename RawVec<sizeof(T) * V>::type;
  const Raw raw = *reinterpret_cast<const Raw*>(p);
  T v[V];
  memcpy(v, &raw, sizeof raw);
#pragma unroll
  for (int e = 0; e < V; ++e) out[e] = to_f<T>(v[e]);
}
template <class T, int V>
__device__ __forceinline__ void store_vec(T* p, const float (&in)[V]) {
  using Raw = typename RawVec<sizeof(T) * V>::type;
  T v[V];
#pragma unroll
  for (int e = 0; e < V; ++e) v[e] = from_f<T>(in[e]);
  Raw raw;
  memcpy(&raw, v, sizeof raw);
  *reinterpret_cast<Raw*>(p) = raw;
}
// GradSlot store of a vector: written, or added to what the slot holds.
template <class T, int V>
__device__ __forceinline__ void put_vec(T* p, float (&v)[V], bool accumulate) {
  if (accumulate) {
    float old[V];
    load_vec<T, V>(p, old);
#pragma unroll
    for (int e = 0; e < V; ++e) v[e] += old[e];
  }
  store_vec<T, V>(p, v);
}

// The dropout op's mask on one element of the output (flat index `index`): v * keep / (1 - p).
struct DeviceDropout {
  bool on = false;
  float threshold = 0.0f, keep_scale = 1.0f;
  uint64_t seed = 0, stream = 0, offset = 0;
  const uint64_t* stream_offset = nullptr;  // a CUDA graph's replay offset (engine/replay_counter.h)
  __device__ __forceinline__ float apply(float v, int64_t index) const {
    return philox::uniform(seed, replay_stream(stream, stream_offset), offset + static_cast<uint64_t>(index)) >= threshold
               ? v * keep_scale
               : 0.0f;
  }
};
DeviceDropout device_dropout(const DropoutMask& d) {
  if (d.p <= 0) return {};
  return {true, static_cast<float>(d.p), static_cast<float>(1.0 / (1.0 - d.p)), d.seed, d.stream, d.offset,
          cuda::replay_offset(DrawKind::Dropout)};
}

__device__ __forceinline__ float silu_f(float y) { return y / (1.0f + expf(-y)); }
__device__ __forceinline__ float silu_grad_f(float y) {  // s (1 + y (1 - s)), s = sigmoid(y)
  const float s = 1.0f / (1.0f + expf(-y));
  return s * (1.0f + y * (1.0f - s));
}

// ---- tiling ----
struct Tiling {
  int64_t s = 0;             // rows per sample (spatial size)
  int c = 0, groups = 0, cg = 0;
  int p = 0, w = 0;          // groups and channels per window
  int cols = 0, r = 0;       // column vectors per row; row lanes (cols * r threads own data)
  int rows = 0;              // rows per chunk = r * items
  int chunks = 0, windows = 0;
  int threads = 0;           // blockDim.x: cols * r rounded up to whole warps
  __host__ __device__ int64_t rows_in(int chunk) const {  // rows that exist in `chunk`
    const int64_t left = s - static_cast<int64_t>(chunk) * rows;
    return left < rows ? left : rows;
  }
  __host__ __device__ int64_t count() const { return s * cg; }  // elements per (sample, group)
};

// The widest vector (<= 16 bytes) that divides Cg and keeps every pointer aligned.
template <class T> int vector_width(int cg, std::initializer_list<const void*> pointers) {
  int v = 16 / static_cast<int>(sizeof(T));
  for (; v > 1; v /= 2) {
    bool ok = cg % v == 0;
    for (const void* p : pointers)
      if (p && reinterpret_cast<uintptr_t>(p) % (v * sizeof(T)) != 0) ok = false;
    if (ok) break;
  }
  return v;
}

// Windows: the fewest groups whose rows fill a sector, unless fewer groups let one chunk cover
// all S rows (one pass instead of three; neighbouring windows share the sector through L2); then
// wider while the block is small (small S).
Tiling make_tiling(const Tensor& x, int groups, int v, int elem_bytes, int max_threads, int elems) {
  Tiling t;
  const int64_t n = x.dim(0);
  t.c = static_cast<int>(x.dim(-1));
  t.s = x.numel() / (n * t.c);
  t.groups = groups;
  t.cg = t.c / groups;
  const int items = elems / v;
  DDPM_CHECK(t.cg / v <= max_threads, "CUDA group_norm: groups of ", t.cg, " channels are wider than ",
             max_threads * v, " (x ", shape_str(x.shape()), ", ", groups, " groups)");
  const int64_t rows_needed = (t.s + items - 1) / items;  // row lanes for a single chunk
  auto fits = [&](int p) { return p * t.cg / v <= max_threads; };
  auto single = [&](int p) { return rows_needed * (p * t.cg / v) <= max_threads; };
  auto next_divisor = [&](int p) {  // the smallest divisor of groups above p (0: none)
    for (int q = p + 1; q <= groups; ++q)
      if (groups % q == 0) return q;
    return 0;
  };
  int preferred = 1;
  while (preferred * t.cg * elem_bytes < kMinRowBytes && next_divisor(preferred) && fits(next_divisor(preferred)))
    preferred = next_divisor(preferred);
  int p = preferred;
  if (!single(p)) {
    for (int q = preferred - 1; q >= 1; --q)
      if (groups % q == 0 && single(q)) {
        p = q;
        break;
      }
  }
  auto set_window = [&](int q) {
    t.p = q;
    t.w = q * t.cg;
    t.cols = t.w / v;
    const int lanes = max_threads / t.cols;
    t.r = static_cast<int>(rows_needed < lanes ? rows_needed : lanes);
  };
  set_window(p);
  while (t.cols * t.r < kMinThreads && next_divisor(t.p) && fits(next_divisor(t.p))) set_window(next_divisor(t.p));
  t.rows = t.r * items;
  t.chunks = static_cast<int>((t.s + t.rows - 1) / t.rows);
  t.windows = groups / t.p;
  t.threads = (t.cols * t.r + 31) / 32 * 32;
  return t;
}

// Where this thread sits in its block's tile.
struct Place {
  int n, window, chunk, tc, tr;
  bool active;       // owns a column (threads past cols * r only help reduce)
  int c0, gl, group;  // first channel (absolute), group within the window, absolute group
  int64_t row0, rows_here;
};

__device__ __forceinline__ Place place(const Tiling& t, int v) {
  Place q;
  q.chunk = blockIdx.x;
  q.window = blockIdx.y;
  q.n = blockIdx.z;
  q.tc = threadIdx.x % t.cols;
  q.tr = threadIdx.x / t.cols;
  q.active = q.tr < t.r;
  q.c0 = q.window * t.w + q.tc * v;
  q.gl = q.tc * v / t.cg;
  q.group = q.window * t.p + q.gl;
  q.row0 = static_cast<int64_t>(q.chunk) * t.rows;
  const int64_t left = t.s - q.row0;
  q.rows_here = left < t.rows ? left : t.rows;
  return q;
}

__device__ __forceinline__ bool valid_row(const Tiling& t, const Place& q, int i) {
  return q.active && q.tr + static_cast<int64_t>(i) * t.r < q.rows_here;
}

// Element offset of item i's vector in a [N, S, C] tensor.
__device__ __forceinline__ int64_t offset(const Tiling& t, const Place& q, int i) {
  return (static_cast<int64_t>(q.n) * t.s + q.row0 + q.tr + static_cast<int64_t>(i) * t.r) * t.c + q.c0;
}

template <class T, int V, int I>
__device__ __forceinline__ void load_tile(const T* base, const Tiling& t, const Place& q, float (&v)[I][V]) {
#pragma unroll
  for (int i = 0; i < I; ++i) {
    if (valid_row(t, q, i)) {
      load_vec<T, V>(base + offset(t, q, i), v[i]);
    } else {
#pragma unroll
      for (int e = 0; e < V; ++e) v[i][e] = 0.0f;
    }
  }
}

// x's tile plus the sample bias b [N, C] (when given) on the rows that exist.
template <class T, int V, int I>
__device__ __forceinline__ void load_x_tile(const T* x, const T* bias, const Tiling& t, const Place& q,
                                            float (&v)[I][V]) {
  load_tile<T, V, I>(x, t, q, v);
  if (!bias || !q.active) return;
  float b[V];
#pragma unroll
  for (int e = 0; e < V; ++e) b[e] = to_f<T>(bias[static_cast<int64_t>(q.n) * t.c + q.c0 + e]);
#pragma unroll
  for (int i = 0; i < I; ++i) {
    if (!valid_row(t, q, i)) continue;
#pragma unroll
    for (int e = 0; e < V; ++e) v[i][e] += b[e];
  }
}

// out[c] (shared, c < W) = sum over the block's row lanes of `mine` from the threads of column
// c / V. Threads stage their V values in `scratch` (V * blockDim floats); warp k then sums the
// columns k, k + warps, ... in a fixed order. Synchronizes before and after.
template <int V>
__device__ void column_sum(const float (&mine)[V], const Tiling& t, float* scratch, float* out) {
  const int tid = threadIdx.x, nthreads = blockDim.x;
  __syncthreads();  // scratch and out may still be read from a previous call
#pragma unroll
  for (int e = 0; e < V; ++e) scratch[e * nthreads + tid] = mine[e];
  __syncthreads();
  const int lane = tid & 31, warps = nthreads >> 5;
  for (int c = tid >> 5; c < t.w; c += warps) {
    const float* src = scratch + (c % V) * nthreads + c / V;
    float sum = 0.0f;
    for (int tr = lane; tr < t.r; tr += 32) sum += src[tr * t.cols];
    sum = cuda::warp_sum(sum);
    if (lane == 0) out[c] = sum;
  }
  __syncthreads();
}

// sum of col[] over the channels of window group gl, optionally weighted by gamma.
template <class T>
__device__ __forceinline__ float group_sum(const float* col, int gl, const Tiling& t, const T* gamma = nullptr,
                                           int window = 0) {
  float sum = 0.0f;
  for (int j = 0; j < t.cg; ++j) {
    const int c = gl * t.cg + j;
    sum += gamma ? to_f<T>(gamma[window * t.w + c]) * col[c] : col[c];
  }
  return sum;
}

// ---- forward ----
enum class FwdPhase : int { kSingle, kPartial, kApply };

template <class T> struct FwdArgs {
  const T *x, *gamma, *beta;
  T* out;
  float *mean, *rstd;
  float* partials;  // [N, G, chunks, 3]: (hi, lo, m2) per chunk (multi-chunk only)
  float eps;
  bool silu;
  const T* sample_bias;  // [N, C] or null
  DeviceDropout drop;
};

// Merges the chunk statistics of one (n, g) in chunk order (Chan et al., around chunk 0's hi).
// Returns (hi, lo, rstd).
__device__ float3 merge_chunks(const float* part, const Tiling& t, float eps) {
  const float ref = part[0];
  const float m = static_cast<float>(t.count());
  float sum_nd = 0.0f;
  for (int k = 0; k < t.chunks; ++k)
    sum_nd += static_cast<float>(t.rows_in(k) * t.cg) * ((part[3 * k] - ref) + part[3 * k + 1]);
  const float lo = sum_nd / m;
  float m2 = 0.0f;
  for (int k = 0; k < t.chunks; ++k) {
    const float dev = (part[3 * k] - ref) + part[3 * k + 1] - lo;
    m2 += part[3 * k + 2] + static_cast<float>(t.rows_in(k) * t.cg) * dev * dev;
  }
  return make_float3(ref, lo, 1.0f / sqrtf(m2 / m + eps));
}

template <class T, int V>
__global__ void __launch_bounds__(kFwdThreads)
    group_norm_forward_kernel(FwdArgs<T> a, Tiling t, FwdPhase phase) {
  constexpr int I = kFwdElems / V;
  extern __shared__ float smem[];
  float* scratch = smem;                     // [V * blockDim]
  float* col = scratch + V * blockDim.x;     // [2 W]
  float* stats = col + 2 * t.w;              // [P][3]: hi, lo, rstd
  const Place q = place(t, V);
  const int tid = threadIdx.x;

  float x[I][V];
  load_x_tile<T, V, I>(a.x, a.sample_bias, t, q, x);

  if (phase != FwdPhase::kApply) {
    const float count = static_cast<float>(q.rows_here * t.cg);  // per group, this chunk
    float sum[V] = {};
#pragma unroll
    for (int i = 0; i < I; ++i)
#pragma unroll
      for (int e = 0; e < V; ++e) sum[e] += x[i][e];  // rows past the end hold zeros
    column_sum<V>(sum, t, scratch, col);
    if (tid < t.p) stats[3 * tid] = group_sum<T>(col, tid, t) / count;
    __syncthreads();
    const float hi = stats[3 * q.gl];
    float sd[V] = {}, sdd[V] = {};
#pragma unroll
    for (int i = 0; i < I; ++i) {
      if (!valid_row(t, q, i)) continue;
#pragma unroll
      for (int e = 0; e < V; ++e) {
        const float d = x[i][e] - hi;
        sd[e] += d;
        sdd[e] += d * d;
      }
    }
    column_sum<V>(sd, t, scratch, col);
    column_sum<V>(sdd, t, scratch, col + t.w);
    if (tid < t.p) {
      const int group = q.window * t.p + tid;
      const float lo = group_sum<T>(col, tid, t) / count;
      const float m2 = fmaxf(group_sum<T>(col + t.w, tid, t) - count * lo * lo, 0.0f);
      const float h = stats[3 * tid];
      if (phase == FwdPhase::kPartial) {
        float* part = a.partials + ((static_cast<int64_t>(q.n) * t.groups + group) * t.chunks + q.chunk) * 3;
        part[0] = h;
        part[1] = lo;
        part[2] = m2;
      } else {
        const float rstd = 1.0f / sqrtf(m2 / count + a.eps);
        stats[3 * tid + 1] = lo;
        stats[3 * tid + 2] = rstd;
        a.mean[q.n * t.groups + group] = h + lo;
        a.rstd[q.n * t.groups + group] = rstd;
      }
    }
    if (phase == FwdPhase::kPartial) return;  // block-uniform
  } else if (tid < t.p) {
    const int group = q.window * t.p + tid;
    const float3 st =
        merge_chunks(a.partials + (static_cast<int64_t>(q.n) * t.groups + group) * t.chunks * 3, t, a.eps);
    stats[3 * tid] = st.x;
    stats[3 * tid + 1] = st.y;
    stats[3 * tid + 2] = st.z;
    if (q.chunk == 0) {
      a.mean[q.n * t.groups + group] = st.x + st.y;
      a.rstd[q.n * t.groups + group] = st.z;
    }
  }
  __syncthreads();

  const float hi = stats[3 * q.gl], lo = stats[3 * q.gl + 1], rstd = stats[3 * q.gl + 2];
  if (!q.active) return;
  float scale[V], shift[V];
#pragma unroll
  for (int e = 0; e < V; ++e) {
    scale[e] = rstd * to_f<T>(a.gamma[q.c0 + e]);
    shift[e] = to_f<T>(a.beta[q.c0 + e]);
  }
#pragma unroll
  for (int i = 0; i < I; ++i) {
    if (!valid_row(t, q, i)) continue;
    float y[V];
#pragma unroll
    for (int e = 0; e < V; ++e) {
      y[e] = ((x[i][e] - hi) - lo) * scale[e] + shift[e];
      if (a.silu) y[e] = silu_f(y[e]);
      if (a.drop.on) y[e] = a.drop.apply(y[e], offset(t, q, i) + e);
    }
    store_vec<T, V>(a.out + offset(t, q, i), y);
  }
}

// ---- backward ----
template <class T> struct BwdArgs {
  const T *grad_out, *x, *gamma, *beta;
  const float *mean, *rstd;
  T* grad_x;            // null when not wanted
  bool accumulate_x;
  bool silu;
  float* partials;      // [N, chunks, 3, C]: per-channel sums of dy, dy * xhat', x - mean
  float* table;         // [N, G, 3]: shift, mean(h), mean(h * xhat)
  const T* sample_bias;  // [N, C] or null
  DeviceDropout drop;
};

// Reads x and grad_out; g becomes dy (grad_out, times silu'(y) when fused). Per-thread sums of the
// three channel quantities go to sums[3][V].
template <class T, int V, int I>
__device__ __forceinline__ void load_dy(const BwdArgs<T>& a, const Tiling& t, const Place& q, float (&x)[I][V],
                                        float (&g)[I][V], float mean, float rstd) {
  load_x_tile<T, V, I>(a.x, a.sample_bias, t, q, x);
  load_tile<T, V, I>(a.grad_out, t, q, g);
  if (a.drop.on && q.active) {  // the gradient at the normalized output: grad_out times the mask
#pragma unroll
    for (int i = 0; i < I; ++i) {
      if (!valid_row(t, q, i)) continue;
#pragma unroll
      for (int e = 0; e < V; ++e) g[i][e] = a.drop.apply(g[i][e], offset(t, q, i) + e);
    }
  }
  if (!a.silu || !q.active) return;
  float gm[V], bt[V];
#pragma unroll
  for (int e = 0; e < V; ++e) {
    gm[e] = to_f<T>(a.gamma[q.c0 + e]);
    bt[e] = to_f<T>(a.beta[q.c0 + e]);
  }
#pragma unroll
  for (int i = 0; i < I; ++i)
#pragma unroll
    for (int e = 0; e < V; ++e) g[i][e] *= silu_grad_f((x[i][e] - mean) * rstd * gm[e] + bt[e]);
}

// dx = rstd * (dy * gamma - mean_h - xhat * mean_hx), xhat = (x - mean) * rstd - shift.
template <class T, int V, int I>
__device__ __forceinline__ void write_dx(const BwdArgs<T>& a, const Tiling& t, const Place& q, const float (&x)[I][V],
                                         const float (&g)[I][V], float mean, float rstd, float shift, float mean_h,
                                         float mean_hx) {
  if (!q.active) return;
  float gm[V];
#pragma unroll
  for (int e = 0; e < V; ++e) gm[e] = to_f<T>(a.gamma[q.c0 + e]);
#pragma unroll
  for (int i = 0; i < I; ++i) {
    if (!valid_row(t, q, i)) continue;
    float dx[V];
#pragma unroll
    for (int e = 0; e < V; ++e) {
      const float xhat = (x[i][e] - mean) * rstd - shift;
      dx[e] = rstd * (g[i][e] * gm[e] - mean_h - xhat * mean_hx);
    }
    put_vec<T, V>(a.grad_x + offset(t, q, i), dx, a.accumulate_x);
  }
}

// Group finalization from the group's sums of gamma * dy, gamma * dy * xhat' and x - mean.
struct GroupGrad {
  float shift, mean_h, mean_hx;
};
__device__ __forceinline__ GroupGrad finalize_group(float sum_gdy, float sum_gdy_xhat, float sum_dev, float rstd,
                                                    float count) {
  GroupGrad r;
  r.shift = sum_dev / count * rstd;
  r.mean_h = sum_gdy / count;
  r.mean_hx = (sum_gdy_xhat - r.shift * sum_gdy) / count;
  return r;
}

// Pass 1: per-(sample, chunk) channel sums; with one chunk, also the group statistics and dx.
template <class T, int V>
__global__ void __launch_bounds__(kBwdThreads) group_norm_backward_sums_kernel(BwdArgs<T> a, Tiling t) {
  constexpr int I = kBwdElems / V;
  extern __shared__ float smem[];
  float* scratch = smem;                  // [V * blockDim]
  float* col = scratch + V * blockDim.x;  // [3 W]: dy, dy * xhat', x - mean per channel
  float* stats = col + 3 * t.w;           // [P][3]: shift, mean_h, mean_hx
  const Place q = place(t, V);
  const int tid = threadIdx.x;
  const int stat = q.n * t.groups + q.group;
  const float mean = a.mean[stat], rstd = a.rstd[stat];

  float x[I][V], g[I][V];
  load_dy<T, V, I>(a, t, q, x, g, mean, rstd);

  float sum_dy[V] = {}, sum_dyx[V] = {}, sum_dev[V] = {};
#pragma unroll
  for (int i = 0; i < I; ++i) {
    if (!valid_row(t, q, i)) continue;
#pragma unroll
    for (int e = 0; e < V; ++e) {
      const float dev = x[i][e] - mean;
      sum_dy[e] += g[i][e];
      sum_dyx[e] += g[i][e] * dev * rstd;
      sum_dev[e] += dev;
    }
  }
  column_sum<V>(sum_dy, t, scratch, col);
  column_sum<V>(sum_dyx, t, scratch, col + t.w);
  column_sum<V>(sum_dev, t, scratch, col + 2 * t.w);
  float* part = a.partials + (static_cast<int64_t>(q.n) * t.chunks + q.chunk) * 3 * t.c + q.window * t.w;
  for (int c = tid; c < t.w; c += blockDim.x)
    for (int k = 0; k < 3; ++k) part[k * t.c + c] = col[k * t.w + c];
  if (t.chunks > 1) return;  // block-uniform: group_norm_backward_finalize_kernel takes over

  if (tid < t.p) {
    const int group = q.window * t.p + tid;
    const float count = static_cast<float>(t.count());
    const GroupGrad gg = finalize_group(group_sum(col, tid, t, a.gamma, q.window),
                                        group_sum(col + t.w, tid, t, a.gamma, q.window),
                                        group_sum<T>(col + 2 * t.w, tid, t), a.rstd[q.n * t.groups + group], count);
    float* row = a.table + (static_cast<int64_t>(q.n) * t.groups + group) * 3;
    row[0] = stats[3 * tid] = gg.shift;
    row[1] = stats[3 * tid + 1] = gg.mean_h;
    row[2] = stats[3 * tid + 2] = gg.mean_hx;
  }
  if (!a.grad_x) return;  // block-uniform
  __syncthreads();
  write_dx<T, V, I>(a, t, q, x, g, mean, rstd, stats[3 * q.gl], stats[3 * q.gl + 1], stats[3 * q.gl + 2]);
}

// Multi-chunk pass 2: one thread per (n, g) sums its channels over the chunks into the table.
template <class T>
__global__ void group_norm_backward_finalize_kernel(BwdArgs<T> a, Tiling t, int n) {
  const int index = blockIdx.x * blockDim.x + threadIdx.x;
  if (index >= n * t.groups) return;
  const int sample = index / t.groups, group = index % t.groups;
  float sum_gdy = 0.0f, sum_gdyx = 0.0f, sum_dev = 0.0f;
  for (int k = 0; k < t.chunks; ++k) {
    const float* part = a.partials + (static_cast<int64_t>(sample) * t.chunks + k) * 3 * t.c;
    for (int j = 0; j < t.cg; ++j) {
      const int c = group * t.cg + j;
      const float gm = to_f<T>(a.gamma[c]);
      sum_gdy += gm * part[c];
      sum_gdyx += gm * part[t.c + c];
      sum_dev += part[2 * t.c + c];
    }
  }
  const GroupGrad gg = finalize_group(sum_gdy, sum_gdyx, sum_dev, a.rstd[index], static_cast<float>(t.count()));
  a.table[3 * index] = gg.shift;
  a.table[3 * index + 1] = gg.mean_h;
  a.table[3 * index + 2] = gg.mean_hx;
}

// Multi-chunk pass 3: dx from the table.
template <class T, int V>
__global__ void __launch_bounds__(kBwdThreads) group_norm_backward_dx_kernel(BwdArgs<T> a, Tiling t) {
  constexpr int I = kBwdElems / V;
  const Place q = place(t, V);
  const int stat = q.n * t.groups + q.group;
  const float mean = a.mean[stat], rstd = a.rstd[stat];
  float x[I][V], g[I][V];
  load_dy<T, V, I>(a, t, q, x, g, mean, rstd);
  const float* row = a.table + 3 * static_cast<int64_t>(stat);
  write_dx<T, V, I>(a, t, q, x, g, mean, rstd, row[0], row[1], row[2]);
}

// dgamma[c] = sum over (n, chunk) of (sum dy * xhat' - shift[n, g(c)] * sum dy), dbeta[c] = sum of
// sum dy: 32 channels per block, 8 row lanes summed in a fixed order.
constexpr int kParamLanes = 8;
template <class T>
__global__ void group_norm_param_grads_kernel(const float* partials, const float* table, Tiling t, int n,
                                              T* grad_gamma, bool accumulate_gamma, T* grad_beta,
                                              bool accumulate_beta) {
  __shared__ float sums[2][kParamLanes][32];
  const int c = blockIdx.x * 32 + threadIdx.x;
  float dgamma = 0.0f, dbeta = 0.0f;
  if (c < t.c) {
    for (int row = threadIdx.y; row < n * t.chunks; row += kParamLanes) {
      const float* part = partials + static_cast<int64_t>(row) * 3 * t.c;
      const float shift = table[(static_cast<int64_t>(row / t.chunks) * t.groups + c / t.cg) * 3];
      dbeta += part[c];
      dgamma += part[t.c + c] - shift * part[c];
    }
  }
  sums[0][threadIdx.y][threadIdx.x] = dgamma;
  sums[1][threadIdx.y][threadIdx.x] = dbeta;
  __syncthreads();
  if (threadIdx.y != 0 || c >= t.c) return;
  for (int lane = 1; lane < kParamLanes; ++lane) {
    dgamma += sums[0][lane][threadIdx.x];
    dbeta += sums[1][lane][threadIdx.x];
  }
  if (grad_gamma) cuda::put_f(grad_gamma, c, dgamma, accumulate_gamma);
  if (grad_beta) cuda::put_f(grad_beta, c, dbeta, accumulate_beta);
}

// db [N, C] for the sample bias (see the top of the file): one thread per (n, c) over the chunks.
template <class T>
__global__ void group_norm_sample_bias_grad_kernel(BwdArgs<T> a, Tiling t, int n, T* grad_bias, bool accumulate) {
  const int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (index >= static_cast<int64_t>(n) * t.c) return;
  const int sample = static_cast<int>(index / t.c), c = static_cast<int>(index % t.c);
  float sum_dy = 0.0f, sum_dev = 0.0f;
  for (int k = 0; k < t.chunks; ++k) {
    const float* part = a.partials + (static_cast<int64_t>(sample) * t.chunks + k) * 3 * t.c;
    sum_dy += part[c];
    sum_dev += part[2 * t.c + c];
  }
  const int stat = sample * t.groups + c / t.cg;
  const float rstd = a.rstd[stat], s = static_cast<float>(t.s);
  const float* row = a.table + 3 * static_cast<int64_t>(stat);  // shift, mean_h, mean_hx
  const float sum_xhat = rstd * sum_dev - s * row[0];
  const float db = rstd * (to_f<T>(a.gamma[c]) * sum_dy - s * row[1] - row[2] * sum_xhat);
  cuda::put_f(grad_bias, index, db, accumulate);
}

// ---- host side ----
template <class T, class Fn> void with_vector_width(int v, Fn&& fn) {
  switch (v) {
    case 8:
      if constexpr (sizeof(T) * 8 <= 16) {
        fn(std::integral_constant<int, 8>{});
        return;
      }
      break;
    case 4: fn(std::integral_constant<int, 4>{}); return;
    case 2: fn(std::integral_constant<int, 2>{}); return;
    case 1: fn(std::integral_constant<int, 1>{}); return;
  }
  detail::fail("CUDA group_norm: no kernel for vector width ", v);
}

size_t shared_bytes(const Tiling& t, int v, int per_channel) {
  const size_t floats = static_cast<size_t>(v) * t.threads + static_cast<size_t>(per_channel) * t.w + 3 * t.p;
  const size_t bytes = floats * sizeof(float);
  DDPM_CHECK(bytes <= 48 * 1024, "CUDA group_norm: windows of ", t.w, " channels need ", bytes,
             " bytes of shared memory (at most 49152)");
  return bytes;
}

dim3 tile_grid(const Tiling& t, int64_t n) {
  DDPM_CHECK(n <= 65535 && t.windows <= 65535, "CUDA group_norm: batch ", n, " or ", t.windows,
             " windows exceed the grid limit of 65535");
  return dim3(static_cast<unsigned>(t.chunks), static_cast<unsigned>(t.windows), static_cast<unsigned>(n));
}

void check_statistics(const Tensor& t, const char* what) {
  DDPM_CHECK(t.device() == Device::CUDA && t.dtype() == DType::F32, "CUDA group_norm: ", what,
             " must be float32 on cuda, got ", t.describe());
}

}  // namespace

void CudaBackend::group_norm_forward(const group_norm_fwd& args) {
  cuda::dispatch_float("group_norm", args.x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands("group_norm", args.x.dtype(), args.x, args.gamma, args.beta, args.out, args.sample_bias);
    check_statistics(args.mean, "mean");
    check_statistics(args.rstd, "rstd");
    const int64_t n = args.x.dim(0);
    if (args.x.numel() == 0) return;
    const int v = vector_width<T>(static_cast<int>(args.x.dim(-1)) / args.groups, {args.x.raw(), args.out.raw()});
    with_vector_width<T>(v, [&](auto width) {
      constexpr int V = decltype(width)::value;
      const Tiling t = make_tiling(args.x, args.groups, V, sizeof(T), kFwdThreads, kFwdElems);
      const size_t smem = shared_bytes(t, V, 2);
      FwdArgs<T> a{ptr<T>(args.x), ptr<T>(args.gamma), ptr<T>(args.beta), ptr<T>(args.out),
                   ptr<float>(args.mean), ptr<float>(args.rstd), nullptr, static_cast<float>(args.eps),
                   args.fuse_silu, args.sample_bias.defined() ? ptr<T>(args.sample_bias) : nullptr,
                   device_dropout(args.dropout)};
      const dim3 grid = tile_grid(t, n);
      if (t.chunks == 1) {
        group_norm_forward_kernel<T, V><<<grid, t.threads, smem, cuda::stream()>>>(a, t, FwdPhase::kSingle);
        DDPM_CUDA_CHECK_LAUNCH();
        return;
      }
      cuda::Scratch partials(static_cast<size_t>(n) * t.groups * t.chunks * 3 * sizeof(float));
      a.partials = partials.as<float>();
      group_norm_forward_kernel<T, V><<<grid, t.threads, smem, cuda::stream()>>>(a, t, FwdPhase::kPartial);
      DDPM_CUDA_CHECK_LAUNCH();
      group_norm_forward_kernel<T, V><<<grid, t.threads, smem, cuda::stream()>>>(a, t, FwdPhase::kApply);
      DDPM_CUDA_CHECK_LAUNCH();
    });
  });
}

void CudaBackend::group_norm_backward(const group_norm_bwd& args) {
  if (!args.grad_x.wanted() && !args.grad_gamma.wanted() && !args.grad_beta.wanted() &&
      !args.grad_sample_bias.wanted())
    return;
  cuda::dispatch_float("group_norm", args.x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands("group_norm", args.x.dtype(), args.grad_out, args.x, args.gamma, args.beta,
                         args.grad_x.tensor, args.grad_gamma.tensor, args.grad_beta.tensor, args.sample_bias,
                         args.grad_sample_bias.tensor);
    check_statistics(args.mean, "mean");
    check_statistics(args.rstd, "rstd");
    const int64_t n = args.x.dim(0);
    if (args.x.numel() == 0) return;
    T* grad_x = args.grad_x.wanted() ? ptr<T>(args.grad_x.tensor) : nullptr;
    const int v = vector_width<T>(static_cast<int>(args.x.dim(-1)) / args.groups,
                                  {args.x.raw(), args.grad_out.raw(), grad_x});
    with_vector_width<T>(v, [&](auto width) {
      constexpr int V = decltype(width)::value;
      const Tiling t = make_tiling(args.x, args.groups, V, sizeof(T), kBwdThreads, kBwdElems);
      const size_t smem = shared_bytes(t, V, 3);
      const size_t partial_floats = static_cast<size_t>(n) * t.chunks * 3 * t.c;
      const size_t table_floats = static_cast<size_t>(n) * t.groups * 3;
      cuda::Scratch scratch((partial_floats + table_floats) * sizeof(float));
      BwdArgs<T> a{ptr<T>(args.grad_out), ptr<T>(args.x), ptr<T>(args.gamma), ptr<T>(args.beta),
                   ptr<float>(args.mean), ptr<float>(args.rstd), grad_x, args.grad_x.accumulate, args.fuse_silu,
                   scratch.as<float>(), scratch.as<float>() + partial_floats,
                   args.sample_bias.defined() ? ptr<T>(args.sample_bias) : nullptr, device_dropout(args.dropout)};
      const dim3 grid = tile_grid(t, n);
      group_norm_backward_sums_kernel<T, V><<<grid, t.threads, smem, cuda::stream()>>>(a, t);
      DDPM_CUDA_CHECK_LAUNCH();
      if (t.chunks > 1) {
        const int pairs = static_cast<int>(n) * t.groups;
        group_norm_backward_finalize_kernel<T><<<(pairs + 255) / 256, 256, 0, cuda::stream()>>>(a, t, static_cast<int>(n));
        DDPM_CUDA_CHECK_LAUNCH();
        if (grad_x) {
          group_norm_backward_dx_kernel<T, V><<<grid, t.threads, 0, cuda::stream()>>>(a, t);
          DDPM_CUDA_CHECK_LAUNCH();
        }
      }
      if (args.grad_gamma.wanted() || args.grad_beta.wanted()) {
        T* dgamma = args.grad_gamma.wanted() ? ptr<T>(args.grad_gamma.tensor) : nullptr;
        T* dbeta = args.grad_beta.wanted() ? ptr<T>(args.grad_beta.tensor) : nullptr;
        group_norm_param_grads_kernel<T><<<(t.c + 31) / 32, dim3(32, kParamLanes), 0, cuda::stream()>>>(
            a.partials, a.table, t, static_cast<int>(n), dgamma, args.grad_gamma.accumulate, dbeta,
            args.grad_beta.accumulate);
        DDPM_CUDA_CHECK_LAUNCH();
      }
      if (args.grad_sample_bias.wanted()) {
        const int64_t count = n * t.c;
        group_norm_sample_bias_grad_kernel<T><<<static_cast<unsigned>((count + 255) / 256), 256, 0, cuda::stream()>>>(
            a, t, static_cast<int>(n), ptr<T>(args.grad_sample_bias.tensor), args.grad_sample_bias.accumulate);
        DDPM_CUDA_CHECK_LAUNCH();
      }
    });
  });
}

}  // namespace ddpm
