// attention on CUDA: q, k, v, out [N, T, C]; head h owns channels [h d, (h + 1) d), d = C / heads;
// out = softmax(q k^T / sqrt(d)) v per (sample, head), as kernels/cpu/attention.cpp. float32 or
// bfloat16 storage, float32 math.
//
// Fused, flash-attention style: the [T, T] scores never reach global memory.
//   Forward: a block owns a tile of query rows of one (sample, head); it walks the keys in
//     shared-memory tiles of K and V, keeping for each row the running max m, the running sum l
//     and the unnormalized output o (online softmax: a new max rescales l and o by 2^(m - m')).
//     Scores are in log2 units (q is pre-scaled by log2(e) / sqrt(d)) so exp is exp2.
//   Backward (nothing is saved by the forward but `out`; the backward recomputes):
//     1. stats: the forward's loop without V gives lse = m + log2(l) per row, and D = rowsum(dO * O);
//     2. dQ: a block owns query rows and walks key tiles: P = 2^(s - lse), dP = dO v_j,
//        dS = P (dP - D), dQ += dS k_j / sqrt(d);
//     3. dK, dV: a block owns key rows and walks query tiles: dV += P^T dO, dK += dS^T q / sqrt(d).
//   Each gradient has one owner, so there are no atomics and results are deterministic.
//
// Threads: a row (query or key) is shared by kLanes consecutive threads, each holding kCols of the
// padded head size D (32, 64, 128 or 256; d <= D, columns past d are zeros): thread lane l owns the
// 4-column chunks l, l + kLanes, ..., so the lanes of a row read one contiguous run of shared
// memory and the rows of a warp read the same addresses (broadcast, no bank conflicts). Dot
// products finish with a shuffle sum over the row's lanes.
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernels/cuda/attention_tc.h"
#include "kernels/cuda/attention_unfused.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/scratch.h"

namespace ddpm {

namespace {
using cuda::ptr;
using cuda::to_f;

constexpr int kThreads = 256;
constexpr float kLog2e = 1.4426950408889634f;

template <int D> struct FwdShape {
  static constexpr int kCols = D == 32 ? 16 : 32;   // head columns per thread
  static constexpr int kLanes = D / kCols;          // threads per query row
  static constexpr int kRows = kThreads / kLanes;   // query rows per block
  static constexpr int kKeys = D == 256 ? 16 : 32;  // keys per shared tile (K and V: <= 32 KiB)
};
template <int D> struct BwdShape {
  static constexpr int kCols = 16;
  static constexpr int kLanes = D / kCols;
  static constexpr int kRows = kThreads / kLanes;   // rows a block owns (queries for dQ, keys for dK/dV)
  static constexpr int kTile = D == 256 ? 16 : 32;  // rows of the other side per shared tile
};

struct Dims {
  int t = 0, c = 0, d = 0;
  float scale = 1.0f;  // 1 / sqrt(d)
  bool vec = false;    // 4-element loads are aligned: d % 4 == 0, C % 4 == 0, aligned pointers
  // Element offset of row i of (sample, head).
  __device__ int64_t at(int sample, int head, int i) const {
    return (static_cast<int64_t>(sample) * t + i) * c + static_cast<int64_t>(head) * d;
  }
};

template <class T> struct Args {
  const T *q, *k, *v, *out, *grad_out;
  T *out_w, *grad_q, *grad_k, *grad_v;  // null when not produced
  bool acc_q, acc_k, acc_v;
  float *lse, *dsum;  // [N, heads, T]: log2-domain logsumexp and rowsum(dO * O)
};

// ---- float4 views of 4 consecutive head columns ----
__device__ __forceinline__ float4 raw4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ float4 raw4(const __nv_bfloat16* p) {
  const uint2 u = *reinterpret_cast<const uint2*>(p);
  const float2 a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&u.x));
  const float2 b = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&u.y));
  return make_float4(a.x, a.y, b.x, b.y);
}
// Columns col..col+3 of a row (zero past d).
template <class T> __device__ __forceinline__ float4 load4(const T* row, int col, const Dims& m) {
  if (m.vec) return col < m.d ? raw4(row + col) : make_float4(0.f, 0.f, 0.f, 0.f);
  float v[4];
#pragma unroll
  for (int e = 0; e < 4; ++e) v[e] = col + e < m.d ? to_f<T>(row[col + e]) : 0.0f;
  return make_float4(v[0], v[1], v[2], v[3]);
}
// GradSlot store of columns col..col+3 (those below d).
template <class T> __device__ __forceinline__ void put4(T* row, int col, const Dims& m, float4 v, bool accumulate) {
  const float w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int e = 0; e < 4; ++e)
    if (col + e < m.d) cuda::put_f(row, col + e, w[e], accumulate);
}

__device__ __forceinline__ float dot4(float4 a, float4 b) { return a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w; }
__device__ __forceinline__ void axpy4(float4& y, float a, float4 x) {
  y.x += a * x.x;
  y.y += a * x.y;
  y.z += a * x.z;
  y.w += a * x.w;
}
__device__ __forceinline__ float4 scale4(float4 v, float a) { return make_float4(v.x * a, v.y * a, v.z * a, v.w * a); }

// Sum over the kLanes consecutive threads of a row (every thread of the warp takes part).
template <int kLanes> __device__ __forceinline__ float lane_sum(float v) {
#pragma unroll
  for (int offset = kLanes / 2; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Rows [r0, r0 + R) of one head's [T, d] block (src points at row 0) into shared [R][D] floats,
// zero past T and d.
template <class T, int D, int R>
__device__ __forceinline__ void load_tile(float* dst, const T* src, int r0, const Dims& m) {
  constexpr int kChunks = R * D / 4;
  for (int ci = threadIdx.x; ci < kChunks; ci += kThreads) {
    const int r = ci / (D / 4), col = 4 * (ci % (D / 4));
    float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
    if (r0 + r < m.t) v = load4(src + static_cast<int64_t>(r0 + r) * m.c, col, m);
    *reinterpret_cast<float4*>(dst + r * D + col) = v;
  }
}

// This thread's chunks of a row: columns 4 (lane + kLanes c4) .. +3.
template <int kLanes> __device__ __forceinline__ int chunk_col(int lane, int c4) { return 4 * (lane + kLanes * c4); }

// ---- forward (and the backward's statistics pass when kStats) ----
template <class T, int D, bool kStats>
__global__ void __launch_bounds__(kThreads) attention_forward_kernel(Args<T> a, Dims m) {
  using S = FwdShape<D>;
  constexpr int C4 = S::kCols / 4;
  __shared__ __align__(16) float ks[S::kKeys * D];
  __shared__ __align__(16) float vs[kStats ? 4 : S::kKeys * D];
  const int lane = threadIdx.x % S::kLanes;
  const int i = blockIdx.x * S::kRows + threadIdx.x / S::kLanes;  // query row
  const int sample = blockIdx.z, head = blockIdx.y;
  const bool live = i < m.t;
  const int64_t head0 = m.at(sample, head, 0);
  const int64_t row_at = head0 + static_cast<int64_t>(live ? i : 0) * m.c;

  float4 q[C4], o[C4];
  const float q_scale = m.scale * kLog2e;
#pragma unroll
  for (int c4 = 0; c4 < C4; ++c4) {
    q[c4] = live ? scale4(load4(a.q + row_at, chunk_col<S::kLanes>(lane, c4), m), q_scale)
                 : make_float4(0.f, 0.f, 0.f, 0.f);
    o[c4] = make_float4(0.f, 0.f, 0.f, 0.f);
  }
  float run_max = -INFINITY, run_sum = 0.0f;

  for (int j0 = 0; j0 < m.t; j0 += S::kKeys) {
    __syncthreads();  // the previous tile is no longer read
    load_tile<T, D, S::kKeys>(ks, a.k + head0, j0, m);
    if constexpr (!kStats) load_tile<T, D, S::kKeys>(vs, a.v + head0, j0, m);
    __syncthreads();

    float s[S::kKeys];
#pragma unroll
    for (int j = 0; j < S::kKeys; ++j) {
      float partial = 0.0f;
#pragma unroll
      for (int c4 = 0; c4 < C4; ++c4) partial += dot4(q[c4], raw4(ks + j * D + chunk_col<S::kLanes>(lane, c4)));
      s[j] = partial;
    }
    float tile_max = -INFINITY;
#pragma unroll
    for (int j = 0; j < S::kKeys; ++j) {
      s[j] = j0 + j < m.t ? lane_sum<S::kLanes>(s[j]) : -INFINITY;
      tile_max = fmaxf(tile_max, s[j]);
    }
    const float new_max = fmaxf(run_max, tile_max);  // finite: key j0 exists
    const float alpha = exp2f(run_max - new_max);    // 0 on the first tile
    run_sum *= alpha;
    if constexpr (!kStats) {
#pragma unroll
      for (int c4 = 0; c4 < C4; ++c4) o[c4] = scale4(o[c4], alpha);
    }
#pragma unroll
    for (int j = 0; j < S::kKeys; ++j) {
      const float p = exp2f(s[j] - new_max);
      run_sum += p;
      if constexpr (!kStats) {
#pragma unroll
        for (int c4 = 0; c4 < C4; ++c4) axpy4(o[c4], p, raw4(vs + j * D + chunk_col<S::kLanes>(lane, c4)));
      }
    }
    run_max = new_max;
  }

  if constexpr (kStats) {
    float dot = 0.0f;
    if (live) {
#pragma unroll
      for (int c4 = 0; c4 < C4; ++c4) {
        const int col = chunk_col<S::kLanes>(lane, c4);
        dot += dot4(load4(a.grad_out + row_at, col, m), load4(a.out + row_at, col, m));
      }
    }
    dot = lane_sum<S::kLanes>(dot);
    if (live && lane == 0) {
      const int64_t r = (static_cast<int64_t>(sample) * gridDim.y + head) * m.t + i;
      a.lse[r] = run_max + log2f(run_sum);
      a.dsum[r] = dot;
    }
  } else {
    if (!live) return;
    const float inv = 1.0f / run_sum;
#pragma unroll
    for (int c4 = 0; c4 < C4; ++c4)
      put4(a.out_w + row_at, chunk_col<S::kLanes>(lane, c4), m, scale4(o[c4], inv), false);
  }
}

// ---- backward: dQ ----
template <class T, int D>
__global__ void __launch_bounds__(kThreads) attention_dq_kernel(Args<T> a, Dims m) {
  using S = BwdShape<D>;
  constexpr int C4 = S::kCols / 4;
  __shared__ __align__(16) float ks[S::kTile * D];
  __shared__ __align__(16) float vs[S::kTile * D];
  const int lane = threadIdx.x % S::kLanes;
  const int i = blockIdx.x * S::kRows + threadIdx.x / S::kLanes;  // query row
  const int sample = blockIdx.z, head = blockIdx.y;
  const bool live = i < m.t;
  const int64_t head0 = m.at(sample, head, 0);
  const int64_t row_at = head0 + static_cast<int64_t>(live ? i : 0) * m.c;
  const int64_t stat = (static_cast<int64_t>(sample) * gridDim.y + head) * m.t + (live ? i : 0);

  float4 q[C4], g[C4], dq[C4];
  const float q_scale = m.scale * kLog2e;
#pragma unroll
  for (int c4 = 0; c4 < C4; ++c4) {
    const int col = chunk_col<S::kLanes>(lane, c4);
    q[c4] = live ? scale4(load4(a.q + row_at, col, m), q_scale) : make_float4(0.f, 0.f, 0.f, 0.f);
    g[c4] = live ? load4(a.grad_out + row_at, col, m) : make_float4(0.f, 0.f, 0.f, 0.f);
    dq[c4] = make_float4(0.f, 0.f, 0.f, 0.f);
  }
  const float lse = live ? a.lse[stat] : 0.0f, dsum = live ? a.dsum[stat] : 0.0f;

  for (int j0 = 0; j0 < m.t; j0 += S::kTile) {
    __syncthreads();
    load_tile<T, D, S::kTile>(ks, a.k + head0, j0, m);
    load_tile<T, D, S::kTile>(vs, a.v + head0, j0, m);
    __syncthreads();
#pragma unroll 4
    for (int j = 0; j < S::kTile; ++j) {
      float s = 0.0f, dp = 0.0f;
#pragma unroll
      for (int c4 = 0; c4 < C4; ++c4) {
        const int col = chunk_col<S::kLanes>(lane, c4);
        s += dot4(q[c4], raw4(ks + j * D + col));
        dp += dot4(g[c4], raw4(vs + j * D + col));
      }
      s = lane_sum<S::kLanes>(s);
      dp = lane_sum<S::kLanes>(dp);
      const float p = j0 + j < m.t ? exp2f(s - lse) : 0.0f;
      const float ds = p * (dp - dsum);
#pragma unroll
      for (int c4 = 0; c4 < C4; ++c4) axpy4(dq[c4], ds, raw4(ks + j * D + chunk_col<S::kLanes>(lane, c4)));
    }
  }
  if (!live) return;
#pragma unroll
  for (int c4 = 0; c4 < C4; ++c4)
    put4(a.grad_q + row_at, chunk_col<S::kLanes>(lane, c4), m, scale4(dq[c4], m.scale), a.acc_q);
}

// ---- backward: dK and dV ----
template <class T, int D>
__global__ void __launch_bounds__(kThreads) attention_dkdv_kernel(Args<T> a, Dims m) {
  using S = BwdShape<D>;
  constexpr int C4 = S::kCols / 4;
  __shared__ __align__(16) float qs[S::kTile * D];
  __shared__ __align__(16) float gs[S::kTile * D];
  __shared__ float lse_s[S::kTile], dsum_s[S::kTile];
  const int lane = threadIdx.x % S::kLanes;
  const int j = blockIdx.x * S::kRows + threadIdx.x / S::kLanes;  // key row
  const int sample = blockIdx.z, head = blockIdx.y;
  const bool live = j < m.t;
  const int64_t head0 = m.at(sample, head, 0);
  const int64_t row_at = head0 + static_cast<int64_t>(live ? j : 0) * m.c;
  const int64_t stat0 = (static_cast<int64_t>(sample) * gridDim.y + head) * m.t;

  float4 k[C4], v[C4], dk[C4], dv[C4];
  const float k_scale = m.scale * kLog2e;
#pragma unroll
  for (int c4 = 0; c4 < C4; ++c4) {
    const int col = chunk_col<S::kLanes>(lane, c4);
    k[c4] = live ? scale4(load4(a.k + row_at, col, m), k_scale) : make_float4(0.f, 0.f, 0.f, 0.f);
    v[c4] = live ? load4(a.v + row_at, col, m) : make_float4(0.f, 0.f, 0.f, 0.f);
    dk[c4] = dv[c4] = make_float4(0.f, 0.f, 0.f, 0.f);
  }

  for (int i0 = 0; i0 < m.t; i0 += S::kTile) {
    __syncthreads();
    load_tile<T, D, S::kTile>(qs, a.q + head0, i0, m);
    load_tile<T, D, S::kTile>(gs, a.grad_out + head0, i0, m);
    for (int r = threadIdx.x; r < S::kTile; r += kThreads) {
      const bool row_live = i0 + r < m.t;  // past T: lse = inf gives P = 0
      lse_s[r] = row_live ? a.lse[stat0 + i0 + r] : INFINITY;
      dsum_s[r] = row_live ? a.dsum[stat0 + i0 + r] : 0.0f;
    }
    __syncthreads();
#pragma unroll 4
    for (int i = 0; i < S::kTile; ++i) {
      float s = 0.0f, dp = 0.0f;
#pragma unroll
      for (int c4 = 0; c4 < C4; ++c4) {
        const int col = chunk_col<S::kLanes>(lane, c4);
        s += dot4(k[c4], raw4(qs + i * D + col));
        dp += dot4(v[c4], raw4(gs + i * D + col));
      }
      s = lane_sum<S::kLanes>(s);
      dp = lane_sum<S::kLanes>(dp);
      const float p = exp2f(s - lse_s[i]);
      const float ds = p * (dp - dsum_s[i]);
#pragma unroll
      for (int c4 = 0; c4 < C4; ++c4) {
        const int col = chunk_col<S::kLanes>(lane, c4);
        axpy4(dv[c4], p, raw4(gs + i * D + col));
        axpy4(dk[c4], ds, raw4(qs + i * D + col));
      }
    }
  }
  if (!live) return;
#pragma unroll
  for (int c4 = 0; c4 < C4; ++c4) {
    const int col = chunk_col<S::kLanes>(lane, c4);
    if (a.grad_k) put4(a.grad_k + row_at, col, m, scale4(dk[c4], m.scale), a.acc_k);
    if (a.grad_v) put4(a.grad_v + row_at, col, m, dv[c4], a.acc_v);
  }
}

// ---- host side ----
template <class Fn> void with_head_size(int d, Fn&& fn) {
  if (d <= 32) return fn(std::integral_constant<int, 32>{});
  if (d <= 64) return fn(std::integral_constant<int, 64>{});
  if (d <= 128) return fn(std::integral_constant<int, 128>{});
  if (d <= 256) return fn(std::integral_constant<int, 256>{});
  detail::fail("CUDA attention: head size ", d, " is larger than 256 (use more heads)");
}

bool aligned4(const void* p, size_t elem_bytes) {
  return p == nullptr || reinterpret_cast<uintptr_t>(p) % (4 * elem_bytes) == 0;
}

template <class T> Dims make_dims(const Tensor& q, int heads, std::initializer_list<const void*> pointers) {
  Dims m;
  m.t = static_cast<int>(q.dim(1));
  m.c = static_cast<int>(q.dim(2));
  m.d = m.c / heads;
  m.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(m.d)));
  m.vec = m.d % 4 == 0 && m.c % 4 == 0;
  for (const void* p : pointers) m.vec = m.vec && aligned4(p, sizeof(T));
  DDPM_CHECK(q.dim(0) <= 65535 && heads <= 65535, "CUDA attention: batch ", q.dim(0), " or ", heads,
             " heads exceed the grid limit of 65535");
  DDPM_CHECK(q.dim(1) <= (int64_t{1} << 30), "CUDA attention: sequence length ", q.dim(1), " is too long");
  return m;
}

dim3 grid_for(int rows_per_block, const Tensor& q, int heads) {
  const auto blocks = static_cast<unsigned>((q.dim(1) + rows_per_block - 1) / rows_per_block);
  return dim3(blocks, static_cast<unsigned>(heads), static_cast<unsigned>(q.dim(0)));
}

}  // namespace

// bfloat16 runs the implementation attention_impl() names (tensor cores by default, where the
// shape and alignment allow); float32 and the fallback run the SIMT kernels above.
void CudaBackend::attention_forward(const attention_fwd& args) {
  if (args.q.dtype() == DType::BF16) {
    const cuda::AttentionImpl impl = cuda::attention_impl();
    if (impl == cuda::AttentionImpl::Unfused) return cuda::attention_unfused_forward(args);
    if (impl == cuda::AttentionImpl::Tc && cuda::attention_tc_supported(args.q, args.heads, {&args.k, &args.v, &args.out}))
      return cuda::attention_tc_forward(args);
  }
  cuda::dispatch_float("attention", args.q.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands("attention", args.q.dtype(), args.q, args.k, args.v, args.out);
    if (args.q.numel() == 0) return;
    const Dims m = make_dims<T>(args.q, args.heads, {args.q.raw(), args.k.raw(), args.v.raw(), args.out.raw()});
    Args<T> a{};
    a.q = ptr<T>(args.q);
    a.k = ptr<T>(args.k);
    a.v = ptr<T>(args.v);
    a.out_w = ptr<T>(args.out);
    with_head_size(m.d, [&](auto size) {
      constexpr int D = decltype(size)::value;
      attention_forward_kernel<T, D, false>
          <<<grid_for(FwdShape<D>::kRows, args.q, args.heads), kThreads, 0, cuda::stream()>>>(a, m);
      DDPM_CUDA_CHECK_LAUNCH();
    });
  });
}

void CudaBackend::attention_backward(const attention_bwd& args) {
  const bool want_q = args.grad_q.wanted(), want_k = args.grad_k.wanted(), want_v = args.grad_v.wanted();
  if (!want_q && !want_k && !want_v) return;
  if (args.q.dtype() == DType::BF16) {
    const cuda::AttentionImpl impl = cuda::attention_impl();
    if (impl == cuda::AttentionImpl::Unfused) return cuda::attention_unfused_backward(args);
    if (impl == cuda::AttentionImpl::Tc &&
        cuda::attention_tc_supported(args.q, args.heads,
                                     {&args.k, &args.v, &args.out, &args.grad_out, &args.grad_q.tensor,
                                      &args.grad_k.tensor, &args.grad_v.tensor}))
      return cuda::attention_tc_backward(args);
  }
  cuda::dispatch_float("attention", args.q.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands("attention", args.q.dtype(), args.grad_out, args.q, args.k, args.v, args.out,
                         args.grad_q.tensor, args.grad_k.tensor, args.grad_v.tensor);
    if (args.q.numel() == 0) return;
    Args<T> a{};
    a.q = ptr<T>(args.q);
    a.k = ptr<T>(args.k);
    a.v = ptr<T>(args.v);
    a.out = ptr<T>(args.out);
    a.grad_out = ptr<T>(args.grad_out);
    a.grad_q = want_q ? ptr<T>(args.grad_q.tensor) : nullptr;
    a.grad_k = want_k ? ptr<T>(args.grad_k.tensor) : nullptr;
    a.grad_v = want_v ? ptr<T>(args.grad_v.tensor) : nullptr;
    a.acc_q = args.grad_q.accumulate;
    a.acc_k = args.grad_k.accumulate;
    a.acc_v = args.grad_v.accumulate;
    const Dims m = make_dims<T>(args.q, args.heads,
                                {a.q, a.k, a.v, a.out, a.grad_out, a.grad_q, a.grad_k, a.grad_v});
    const size_t rows = static_cast<size_t>(args.q.dim(0)) * args.heads * m.t;
    cuda::Scratch stats(2 * rows * sizeof(float));
    a.lse = stats.as<float>();
    a.dsum = a.lse + rows;
    with_head_size(m.d, [&](auto size) {
      constexpr int D = decltype(size)::value;
      cudaStream_t stream = cuda::stream();
      attention_forward_kernel<T, D, true><<<grid_for(FwdShape<D>::kRows, args.q, args.heads), kThreads, 0, stream>>>(a, m);
      DDPM_CUDA_CHECK_LAUNCH();
      const dim3 grid = grid_for(BwdShape<D>::kRows, args.q, args.heads);
      if (want_q) {
        attention_dq_kernel<T, D><<<grid, kThreads, 0, stream>>>(a, m);
        DDPM_CUDA_CHECK_LAUNCH();
      }
      if (want_k || want_v) {
        attention_dkdv_kernel<T, D><<<grid, kThreads, 0, stream>>>(a, m);
        DDPM_CUDA_CHECK_LAUNCH();
      }
    });
  });
}

}  // namespace ddpm
