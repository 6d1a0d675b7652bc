// Tensor-core attention for bfloat16 (see attention_tc.h), FlashAttention-2 style: per (sample,
// head) a block owns 64 rows of one side and streams 32-row tiles of the other side through shared
// memory (cp.async, two stages: tile j + 1 loads while tile j computes). Products run on
// mma.sync m16n8k16 (bfloat16 in, float32 accumulate) with ldmatrix fragment loads; fragment index
// math: attention_fragments.h (host-tested in tests/test_attention_fragments.cpp). Scores are in
// log2 units (s log2(e) / sqrt(d)) so the softmax uses exp2.
//   forward: a warp owns 16 query rows: S = Q K_j^T, online softmax in float32 (running max m,
//     sum l, O rescaled by 2^(m - m')), O += P V_j with P rounded to bfloat16 as the A operand;
//     stats mode (the backward's first pass) skips V and writes lse = m + log2(l) per row.
//   backward: D = rowsum(dO * O) per row (a small kernel), then two kernels, each gradient with
//     one owner (deterministic, no atomics):
//     dQ: a warp owns 16 query rows and walks key tiles: P = 2^(s - lse), dP = dO V^T,
//       dS = P (dP - D), dQ += dS K;
//     dK, dV: a warp owns 16 key rows and walks query tiles: S^T = K Q^T, P^T, dP^T = V dO^T,
//       dV += P^T dO, dK += dS^T Q.
//   A separate dQ pass recomputes S and dP (7 GEMM-sized products instead of FlashAttention-2's
//   5 with float atomics for dQ); it keeps the results deterministic and bit-reproducible, which
//   the project's parity tests rely on, and avoids a float32 dQ buffer plus a conversion pass.
//
// Tiles and registers (d padded to D = 64, 128 or 256): a warp's float32 accumulator for 16 rows
// of D columns is D / 2 registers per thread (128 at D = 256); S and dP tiles of 16 x 32 are 16
// each. The dK/dV kernel would need two D-wide accumulators (256 registers at D = 256), so for
// D = 256 it runs 8 warps, each owning half the head dimensions of its 16 keys' dK and dV (the
// two warps of a key group both compute that group's S^T and dP^T: 1.5x the products of the
// kernel, no register spills). Shared memory rows are D + 8 bfloat16 long: the 16-byte skew puts
// the 8 rows an ldmatrix reads in 8 different bank groups. At D = 256: forward 64 query rows +
// 2 stages x (32 K + 32 V rows) = 101 KiB; dQ and dK/dV 128 own rows + 2 x 64 streamed = 135 KiB
// (one block per SM on sm_80, one on sm_90: the 16x16 UNet shape has 128 x 4 = 512 blocks).
#include "kernels/cuda/attention_tc.h"

#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "kernels/cuda/attention_fragments.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/conv2d_ptx.cuh"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/scratch.h"

namespace ddpm::cuda {

namespace {
using bf16 = __nv_bfloat16;
using conv::cp_async_16;
using conv::cp_async_commit;
using conv::cp_async_wait;
using conv::ldmatrix_x4;
using conv::ldmatrix_x4_trans;
using conv::mma_bf16_16816;

constexpr int kOwnRows = 64;    // rows a block owns (16 per warp group of 4 warps)
constexpr int kTileRows = 32;   // rows of the other side per streamed tile
constexpr float kLog2e = 1.4426950408889634f;

template <int D> constexpr int stride() { return D + 8; }  // shared row length in bfloat16

struct Geometry {
  int t = 0, c = 0, d = 0;
  float scale = 1.0f;  // 1 / sqrt(d)
  // Element offset of row i of (sample, head).
  __device__ int64_t at(int sample, int head, int i) const {
    return (static_cast<int64_t>(sample) * t + i) * c + static_cast<int64_t>(head) * d;
  }
};

struct Pointers {
  const bf16 *q, *k, *v, *out, *grad_out;
  bf16 *out_w, *grad_q, *grad_k, *grad_v;
  bool acc_q, acc_k, acc_v;
  float *lse, *dsum;  // [N, heads, T]
};

// Rows [r0, r0 + R) of one head's [T, d] block (src at row 0) into shared [R][stride], 16 bytes
// per cp.async; rows past T and columns past d (up to D) are zero-filled.
template <int D, int R, int kThreads>
__device__ __forceinline__ void load_rows(bf16* dst, const bf16* src, int r0, const Geometry& g) {
  constexpr int kChunks = R * D / 8;
#pragma unroll 4
  for (int ci = threadIdx.x; ci < kChunks; ci += kThreads) {
    const int r = ci / (D / 8), col = 8 * (ci % (D / 8));
    const bool valid = r0 + r < g.t && col < g.d;
    const bf16* from = valid ? src + static_cast<int64_t>(r0 + r) * g.c + col : src;
    cp_async_16(dst + r * stride<D>() + col, from, valid);
  }
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  uint32_t u;
  memcpy(&u, &v, 4);
  return u;
}

// acc [16 own rows, 8 NT other rows] += A (16 rows at a_rows of [.][stride]) B^T (B rows at b_rows),
// reducing over all D columns: the Q K^T shape. ldmatrix: A as ldsm_a_addr, B as ldsm_b_addr.
template <int D, int NT>
__device__ __forceinline__ void rows_dot_rows(float (&acc)[NT][4], const bf16* a_rows, const bf16* b_rows, int lane) {
  const frag::RowCol aa = frag::ldsm_a_addr(lane), ba = frag::ldsm_b_addr(lane);
#pragma unroll 2
  for (int k0 = 0; k0 < D; k0 += 32) {
    uint32_t a0[4], a1[4];
    ldmatrix_x4(a0, a_rows + aa.row * stride<D>() + k0 + aa.col);
    ldmatrix_x4(a1, a_rows + aa.row * stride<D>() + k0 + 16 + aa.col);
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      uint32_t b[4];
      ldmatrix_x4(b, b_rows + (8 * nt + ba.row) * stride<D>() + k0 + ba.col);
      mma_bf16_16816(acc[nt], a0, b[0], b[1]);
      mma_bf16_16816(acc[nt], a1, b[2], b[3]);
    }
  }
}

// acc [16, 8 NC] (columns c0 .. c0 + 8 NC of the head) += A B, A = 16 x (16 KS) from registers
// (a[ks]: the bfloat16 A fragment of k-step ks), B = KS * 16 rows of [.][stride] from b_rows
// (ldmatrix .trans as ldsm_bt_addr): the P V shape.
template <int D, int NC, int KS>
__device__ __forceinline__ void regs_times_rows(float (&acc)[NC][4], const uint32_t (&a)[KS][4], const bf16* b_rows,
                                                int c0, int lane) {
  const frag::RowCol bt = frag::ldsm_bt_addr(lane);
#pragma unroll
  for (int ks = 0; ks < KS; ++ks) {
#pragma unroll
    for (int n2 = 0; n2 < NC / 2; ++n2) {
      uint32_t b[4];
      ldmatrix_x4_trans(b, b_rows + (16 * ks + bt.row) * stride<D>() + c0 + 16 * n2 + bt.col);
      mma_bf16_16816(acc[2 * n2], a[ks], b[0], b[1]);
      mma_bf16_16816(acc[2 * n2 + 1], a[ks], b[2], b[3]);
    }
  }
}

// The A fragments of a [16, 32] float tile held as 4 accumulator n-tiles, rounded to bfloat16.
__device__ __forceinline__ void acc_to_a(uint32_t (&a)[2][4], const float (&p)[4][4]) {
#pragma unroll
  for (int ks = 0; ks < 2; ++ks)
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const float* tile = p[2 * ks + frag::acc_tile_of_a_reg(r)];
      a[ks][r] = pack_bf16(tile[frag::acc_elem_of_a_reg(r, 0)], tile[frag::acc_elem_of_a_reg(r, 1)]);
    }
}

// Reduction over the 4 threads of a quad (the threads that share an accumulator row).
__device__ __forceinline__ float quad_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// Stores a warp's [16, D] float accumulator (scaled) into rows row0.. of a head block (GradSlot).
template <int D>
__device__ __forceinline__ void store_rows(bf16* dst, const float (&acc)[D / 8][4], int row0, int c0, float scale,
                                           bool accumulate, const Geometry& g, int lane) {
#pragma unroll
  for (int nt = 0; nt < D / 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const frag::RowCol rc = frag::c_elem(lane, e);
      const int row = row0 + rc.row, col = c0 + 8 * nt + rc.col;
      if (row < g.t && col < g.d) put_f(dst + static_cast<int64_t>(row) * g.c, col, acc[nt][e] * scale, accumulate);
    }
}

template <int D> constexpr size_t fwd_smem(bool stats) {
  return sizeof(bf16) * stride<D>() * (kOwnRows + 2 * kTileRows * (stats ? 1 : 2));
}
template <int D> constexpr size_t bwd_smem() { return sizeof(bf16) * stride<D>() * (2 * kOwnRows + 4 * kTileRows); }

// ---- forward (and, kStats, the backward's logsumexp pass) ----
template <int D, bool kStats>
__global__ void __launch_bounds__(128) attention_tc_forward_kernel(Pointers p, Geometry g) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* qs = reinterpret_cast<bf16*>(smem_raw);
  bf16* ks = qs + kOwnRows * stride<D>();  // [2][kTileRows][stride]
  bf16* vs = ks + 2 * kTileRows * stride<D>();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int sample = blockIdx.z, head = blockIdx.y, q0 = blockIdx.x * kOwnRows;
  const int64_t head0 = g.at(sample, head, 0);

  load_rows<D, kOwnRows, 128>(qs, p.q + head0, q0, g);
  auto load_kv = [&](int tile, int stage) {
    load_rows<D, kTileRows, 128>(ks + stage * kTileRows * stride<D>(), p.k + head0, tile * kTileRows, g);
    if constexpr (!kStats) load_rows<D, kTileRows, 128>(vs + stage * kTileRows * stride<D>(), p.v + head0, tile * kTileRows, g);
  };
  load_kv(0, 0);
  cp_async_commit();

  float o[kStats ? 1 : D / 8][4] = {};
  float run_max[2] = {-INFINITY, -INFINITY}, run_sum[2] = {0.f, 0.f};  // rows g and g + 8
  const float s_scale = g.scale * kLog2e;
  const int tiles = (g.t + kTileRows - 1) / kTileRows;
  const bf16* my_q = qs + 16 * warp * stride<D>();

  for (int j = 0; j < tiles; ++j) {
    const int stage = j & 1;
    if (j + 1 < tiles) load_kv(j + 1, stage ^ 1);  // the stage read in iteration j - 1, released below
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();

    float s[4][4] = {};
    rows_dot_rows<D, 4>(s, my_q, ks + stage * kTileRows * stride<D>(), lane);
    float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < 4; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int key = j * kTileRows + 8 * nt + frag::c_elem(lane, e).col;
        s[nt][e] = key < g.t ? s[nt][e] * s_scale : -INFINITY;
        tile_max[e >> 1] = fmaxf(tile_max[e >> 1], s[nt][e]);
      }
    float alpha[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const float new_max = fmaxf(run_max[h], quad_max(tile_max[h]));  // finite: key j * 32 exists
      alpha[h] = exp2f(run_max[h] - new_max);                         // 0 on the first tile
      run_max[h] = new_max;
      run_sum[h] *= alpha[h];
    }
    float part[2] = {0.f, 0.f};
#pragma unroll
    for (int nt = 0; nt < 4; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[nt][e] = exp2f(s[nt][e] - run_max[e >> 1]);
        part[e >> 1] += s[nt][e];
      }
    run_sum[0] += quad_sum(part[0]);
    run_sum[1] += quad_sum(part[1]);
    if constexpr (!kStats) {
#pragma unroll
      for (int nt = 0; nt < D / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) o[nt][e] *= alpha[e >> 1];
      uint32_t pa[2][4];
      acc_to_a(pa, s);
      regs_times_rows<D, D / 8, 2>(o, pa, vs + stage * kTileRows * stride<D>(), 0, lane);
    }
    __syncthreads();  // every warp is done with this stage before it is refilled
  }

  const int row0 = q0 + 16 * warp;
  if constexpr (kStats) {
    if (lane % 4 == 0) {
      const int64_t stat0 = (static_cast<int64_t>(sample) * gridDim.y + head) * g.t;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int row = row0 + lane / 4 + 8 * h;
        if (row < g.t) p.lse[stat0 + row] = run_max[h] + log2f(run_sum[h]);
      }
    }
  } else {
    const float inv[2] = {1.0f / run_sum[0], 1.0f / run_sum[1]};
#pragma unroll
    for (int nt = 0; nt < D / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) o[nt][e] *= inv[e >> 1];
    store_rows<D>(p.out_w + head0, o, row0, 0, 1.0f, false, g, lane);
  }
}

// D_i = rowsum(dO * O) over the head's d columns, one warp per row (float32 sum of bf16 products).
__global__ void attention_tc_dsum_kernel(Pointers p, Geometry g, int heads, int64_t rows) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (r >= rows) return;
  const int lane = threadIdx.x % 32;
  const int i = static_cast<int>(r % g.t);
  const int64_t sh = r / g.t;
  const int64_t at = g.at(static_cast<int>(sh / heads), static_cast<int>(sh % heads), i);
  float dot = 0.0f;
  for (int col = lane; col < g.d; col += 32) dot += to_f(p.grad_out[at + col]) * to_f(p.out[at + col]);
  dot = warp_sum(dot);
  if (lane == 0) p.dsum[r] = dot;
}

// ---- backward: dQ (a warp owns 16 query rows) ----
template <int D>
__global__ void __launch_bounds__(128) attention_tc_dq_kernel(Pointers p, Geometry g) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* qs = reinterpret_cast<bf16*>(smem_raw);
  bf16* gs = qs + kOwnRows * stride<D>();
  bf16* ks = gs + kOwnRows * stride<D>();  // [2][kTileRows][stride]
  bf16* vs = ks + 2 * kTileRows * stride<D>();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int sample = blockIdx.z, head = blockIdx.y, q0 = blockIdx.x * kOwnRows;
  const int64_t head0 = g.at(sample, head, 0);
  const int64_t stat0 = (static_cast<int64_t>(sample) * gridDim.y + head) * g.t;

  load_rows<D, kOwnRows, 128>(qs, p.q + head0, q0, g);
  load_rows<D, kOwnRows, 128>(gs, p.grad_out + head0, q0, g);
  auto load_kv = [&](int tile, int stage) {
    load_rows<D, kTileRows, 128>(ks + stage * kTileRows * stride<D>(), p.k + head0, tile * kTileRows, g);
    load_rows<D, kTileRows, 128>(vs + stage * kTileRows * stride<D>(), p.v + head0, tile * kTileRows, g);
  };
  load_kv(0, 0);
  cp_async_commit();

  const int row0 = q0 + 16 * warp;
  float lse[2], dsum[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int row = row0 + lane / 4 + 8 * h;
    lse[h] = row < g.t ? p.lse[stat0 + row] : 0.0f;
    dsum[h] = row < g.t ? p.dsum[stat0 + row] : 0.0f;
  }
  float dq[D / 8][4] = {};
  const float s_scale = g.scale * kLog2e;
  const int tiles = (g.t + kTileRows - 1) / kTileRows;

  for (int j = 0; j < tiles; ++j) {
    const int stage = j & 1;
    if (j + 1 < tiles) load_kv(j + 1, stage ^ 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const bf16* kt = ks + stage * kTileRows * stride<D>();
    float s[4][4] = {}, dp[4][4] = {};
    rows_dot_rows<D, 4>(s, qs + 16 * warp * stride<D>(), kt, lane);
    rows_dot_rows<D, 4>(dp, gs + 16 * warp * stride<D>(), vs + stage * kTileRows * stride<D>(), lane);
#pragma unroll
    for (int nt = 0; nt < 4; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int key = j * kTileRows + 8 * nt + frag::c_elem(lane, e).col;
        const float prob = key < g.t ? exp2f(s[nt][e] * s_scale - lse[e >> 1]) : 0.0f;
        s[nt][e] = prob * (dp[nt][e] - dsum[e >> 1]);  // dS
      }
    uint32_t da[2][4];
    acc_to_a(da, s);
    regs_times_rows<D, D / 8, 2>(dq, da, kt, 0, lane);
    __syncthreads();
  }
  if (p.grad_q) store_rows<D>(p.grad_q + head0, dq, row0, 0, g.scale, p.acc_q, g, lane);
}

// ---- backward: dK and dV (a warp owns 16 key rows and D / kSplit of the head's columns) ----
template <int D, int kSplit>
__global__ void __launch_bounds__(128 * kSplit) attention_tc_dkdv_kernel(Pointers p, Geometry g) {
  constexpr int kThreads = 128 * kSplit, DP = D / kSplit;  // DP: accumulator columns per warp
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* ks = reinterpret_cast<bf16*>(smem_raw);
  bf16* vs = ks + kOwnRows * stride<D>();
  bf16* qs = vs + kOwnRows * stride<D>();  // [2][kTileRows][stride]
  bf16* gs = qs + 2 * kTileRows * stride<D>();
  __shared__ float lse_s[2][kTileRows], dsum_s[2][kTileRows];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int group = warp % 4, part = warp / 4;  // key rows 16 group.., columns DP part..
  const int sample = blockIdx.z, head = blockIdx.y, k0 = blockIdx.x * kOwnRows;
  const int64_t head0 = g.at(sample, head, 0);
  const int64_t stat0 = (static_cast<int64_t>(sample) * gridDim.y + head) * g.t;

  load_rows<D, kOwnRows, kThreads>(ks, p.k + head0, k0, g);
  load_rows<D, kOwnRows, kThreads>(vs, p.v + head0, k0, g);
  auto load_qg = [&](int tile, int stage) {
    load_rows<D, kTileRows, kThreads>(qs + stage * kTileRows * stride<D>(), p.q + head0, tile * kTileRows, g);
    load_rows<D, kTileRows, kThreads>(gs + stage * kTileRows * stride<D>(), p.grad_out + head0, tile * kTileRows, g);
    for (int r = threadIdx.x; r < kTileRows; r += kThreads) {
      const int row = tile * kTileRows + r;  // past T: lse = inf gives P = 0
      lse_s[stage][r] = row < g.t ? p.lse[stat0 + row] : INFINITY;
      dsum_s[stage][r] = row < g.t ? p.dsum[stat0 + row] : 0.0f;
    }
  };
  load_qg(0, 0);
  cp_async_commit();

  float dk[DP / 8][4] = {}, dv[DP / 8][4] = {};
  const float s_scale = g.scale * kLog2e;
  const int tiles = (g.t + kTileRows - 1) / kTileRows;
  const bf16* my_k = ks + 16 * group * stride<D>();
  const bf16* my_v = vs + 16 * group * stride<D>();

  for (int j = 0; j < tiles; ++j) {
    const int stage = j & 1;
    if (j + 1 < tiles) load_qg(j + 1, stage ^ 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const bf16* qt = qs + stage * kTileRows * stride<D>();
    const bf16* gt = gs + stage * kTileRows * stride<D>();
    float s[4][4] = {}, dp[4][4] = {};  // S^T, dP^T [16 keys, 32 queries]
    rows_dot_rows<D, 4>(s, my_k, qt, lane);
    rows_dot_rows<D, 4>(dp, my_v, gt, lane);
#pragma unroll
    for (int nt = 0; nt < 4; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int query = 8 * nt + frag::c_elem(lane, e).col;
        s[nt][e] = exp2f(s[nt][e] * s_scale - lse_s[stage][query]);  // P^T
        dp[nt][e] = s[nt][e] * (dp[nt][e] - dsum_s[stage][query]);   // dS^T
      }
    uint32_t pa[2][4], da[2][4];
    acc_to_a(pa, s);
    acc_to_a(da, dp);
    regs_times_rows<D, DP / 8, 2>(dv, pa, gt, DP * part, lane);
    regs_times_rows<D, DP / 8, 2>(dk, da, qt, DP * part, lane);
    __syncthreads();
  }
  const int row0 = k0 + 16 * group;
  if (p.grad_k) store_rows<DP>(p.grad_k + head0, dk, row0, DP * part, g.scale, p.acc_k, g, lane);
  if (p.grad_v) store_rows<DP>(p.grad_v + head0, dv, row0, DP * part, 1.0f, p.acc_v, g, lane);
}

// ---- host side ----
template <class Fn> void with_padded_head(int d, Fn&& fn) {
  if (d <= 64) return fn(std::integral_constant<int, 64>{});
  if (d <= 128) return fn(std::integral_constant<int, 128>{});
  return fn(std::integral_constant<int, 256>{});
}

Geometry geometry(const Tensor& q, int heads) {
  Geometry g;
  g.t = static_cast<int>(q.dim(1));
  g.c = static_cast<int>(q.dim(2));
  g.d = g.c / heads;
  g.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(g.d)));
  DDPM_CHECK(q.dim(0) <= 65535 && heads <= 65535, "CUDA attention: batch ", q.dim(0), " or ", heads,
             " heads exceed the grid limit of 65535");
  return g;
}

dim3 grid_for(const Tensor& q, int heads) {
  return dim3(static_cast<unsigned>((q.dim(1) + kOwnRows - 1) / kOwnRows), static_cast<unsigned>(heads),
              static_cast<unsigned>(q.dim(0)));
}

// Raises a kernel's dynamic shared memory limit once (above 48 KiB needs the opt-in).
template <class Kernel> void allow_smem(Kernel kernel, size_t bytes) {
  DDPM_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

}  // namespace

bool attention_tc_supported(const Tensor& q, int heads, std::initializer_list<const Tensor*> others) {
  if (q.dtype() != DType::BF16 || heads <= 0 || q.rank() != 3) return false;
  const int64_t c = q.dim(2), d = c / heads;
  if (d % 8 != 0 || d > 256 || c % 8 != 0 || q.dim(1) > (int64_t{1} << 30)) return false;
  auto aligned = [](const Tensor& t) { return !t.defined() || reinterpret_cast<uintptr_t>(t.raw()) % 16 == 0; };
  if (!aligned(q)) return false;
  for (const Tensor* t : others)
    if (!aligned(*t)) return false;
  return true;
}

void attention_tc_forward(const attention_fwd& args) {
  check_operands("attention (tensor cores)", DType::BF16, args.q, args.k, args.v, args.out);
  if (args.q.numel() == 0) return;
  const Geometry g = geometry(args.q, args.heads);
  Pointers p{};
  p.q = ptr<bf16>(args.q);
  p.k = ptr<bf16>(args.k);
  p.v = ptr<bf16>(args.v);
  p.out_w = ptr<bf16>(args.out);
  with_padded_head(g.d, [&](auto size) {
    constexpr int D = decltype(size)::value;
    constexpr size_t smem = fwd_smem<D>(false);
    allow_smem(attention_tc_forward_kernel<D, false>, smem);
    attention_tc_forward_kernel<D, false><<<grid_for(args.q, args.heads), 128, smem, stream()>>>(p, g);
    DDPM_CUDA_CHECK_LAUNCH();
  });
}

void attention_tc_backward(const attention_bwd& args) {
  const bool want_q = args.grad_q.wanted(), want_k = args.grad_k.wanted(), want_v = args.grad_v.wanted();
  if (!want_q && !want_k && !want_v) return;
  check_operands("attention (tensor cores)", DType::BF16, args.grad_out, args.q, args.k, args.v, args.out,
                 args.grad_q.tensor, args.grad_k.tensor, args.grad_v.tensor);
  if (args.q.numel() == 0) return;
  const Geometry g = geometry(args.q, args.heads);
  Pointers p{};
  p.q = ptr<bf16>(args.q);
  p.k = ptr<bf16>(args.k);
  p.v = ptr<bf16>(args.v);
  p.out = ptr<bf16>(args.out);
  p.grad_out = ptr<bf16>(args.grad_out);
  p.grad_q = want_q ? ptr<bf16>(args.grad_q.tensor) : nullptr;
  p.grad_k = want_k ? ptr<bf16>(args.grad_k.tensor) : nullptr;
  p.grad_v = want_v ? ptr<bf16>(args.grad_v.tensor) : nullptr;
  p.acc_q = args.grad_q.accumulate;
  p.acc_k = args.grad_k.accumulate;
  p.acc_v = args.grad_v.accumulate;
  const int64_t rows = args.q.dim(0) * args.heads * g.t;
  Scratch stats(2 * static_cast<size_t>(rows) * sizeof(float));
  p.lse = stats.as<float>();
  p.dsum = p.lse + rows;
  cudaStream_t s = stream();
  const dim3 grid = grid_for(args.q, args.heads);
  with_padded_head(g.d, [&](auto size) {
    constexpr int D = decltype(size)::value;
    constexpr int kSplit = D == 256 ? 2 : 1;
    allow_smem(attention_tc_forward_kernel<D, true>, fwd_smem<D>(true));
    attention_tc_forward_kernel<D, true><<<grid, 128, fwd_smem<D>(true), s>>>(p, g);
    DDPM_CUDA_CHECK_LAUNCH();
    attention_tc_dsum_kernel<<<static_cast<unsigned>((rows + 7) / 8), 256, 0, s>>>(p, g, args.heads, rows);
    DDPM_CUDA_CHECK_LAUNCH();
    if (want_q) {
      allow_smem(attention_tc_dq_kernel<D>, bwd_smem<D>());
      attention_tc_dq_kernel<D><<<grid, 128, bwd_smem<D>(), s>>>(p, g);
      DDPM_CUDA_CHECK_LAUNCH();
    }
    if (want_k || want_v) {
      allow_smem(attention_tc_dkdv_kernel<D, kSplit>, bwd_smem<D>());
      attention_tc_dkdv_kernel<D, kSplit><<<grid, 128 * kSplit, bwd_smem<D>(), s>>>(p, g);
      DDPM_CUDA_CHECK_LAUNCH();
    }
  });
}

AttentionImpl attention_impl() {
  static const AttentionImpl impl = [] {
    const char* env = std::getenv("DDPM_ATTENTION_IMPL");
    if (env == nullptr || std::strcmp(env, "tc") == 0 || *env == '\0') return AttentionImpl::Tc;
    if (std::strcmp(env, "simt") == 0) return AttentionImpl::Simt;
    if (std::strcmp(env, "unfused") == 0) return AttentionImpl::Unfused;
    detail::fail("DDPM_ATTENTION_IMPL=", env, ": expected tc, simt or unfused");
    return AttentionImpl::Tc;
  }();
  return impl;
}

}  // namespace ddpm::cuda
