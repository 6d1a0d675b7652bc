// bfloat16 implicit-GEMM convolution on tensor cores (mma.sync m16n8k16, float32 accumulation).
//
// A block computes a BM x BN tile of C = A B over its k range in steps of BK = 32, with STAGES
// shared-memory buffers filled by cp.async (16-byte chunks with zero fill for padding and tails)
// so that the loads of step k + STAGES - 1 overlap the MMAs of step k. Warps own WM x WN sub-tiles
// and read fragments with ldmatrix.
//
// Shared-memory tiles keep each operand in its global layout, so that every 16-byte chunk is a
// straight copy: a K-major operand (k contiguous: forward A and B, dgrad A) is stored [rows][BK],
// an MN-major one (its M or N index contiguous: dgrad B, wgrad A and B) is stored [BK][rows] and
// read with ldmatrix.trans. Rows are padded by 8 elements (16 bytes), which puts the 8 row
// addresses of an ldmatrix in 8 distinct 4-bank groups (no bank conflicts).
//
// Operands whose channel count is not a multiple of 8 (or whose pointer is not 16-byte aligned)
// are gathered element by element into the same tiles ("scalar" path: odd channel counts such as
// the 3-channel input and output convolutions of a UNet).
#pragma once
#include <cuda_bf16.h>

#include "kernels/cuda/conv2d_gather.cuh"
#include "kernels/cuda/conv2d_ptx.cuh"

namespace ddpm::cuda::conv {

template <int BM_, int BN_, int WM_, int WN_, int STAGES_>
struct TcTile {
  static constexpr int BM = BM_, BN = BN_, BK = 32, WM = WM_, WN = WN_, STAGES = STAGES_;
  static constexpr int WARPS_M = BM / WM, WARPS_N = BN / WN, THREADS = 32 * WARPS_M * WARPS_N;
  static constexpr int MI = WM / 16, NI = WN / 8;  // MMA tiles per warp
  static_assert(BM % WM == 0 && BN % WN == 0 && WM % 16 == 0 && WN % 16 == 0, "warp tiles of 16x16 MMAs pairs");
};

// Shared-memory footprint (elements) of one stage of an operand with `rows` M or N rows.
template <bool KMajor, int Rows, int BK>
struct TcSmem {
  static constexpr int LD = KMajor ? BK + 8 : Rows + 8;  // padded row length
  static constexpr int ELEMS = KMajor ? Rows * LD : BK * LD;
};

// Fills one stage of one operand. Thread t owns fixed chunk positions: for a K-major tile the
// same k offset in SLOTS rows (so one Moving state), for an MN-major tile the same M/N offset in
// SLOTS k rows (one Fixed state).
template <class View, bool KMajor, int Rows, int BK, int THREADS>
struct TcLoader;

template <class View, int Rows, int BK, int THREADS>
struct TcLoader<View, true, Rows, BK, THREADS> {
  using T = __nv_bfloat16;
  static constexpr int V = 8;                  // elements per 16-byte chunk
  static constexpr int CPR = BK / V;           // chunks per row
  static constexpr int RPP = THREADS / CPR;    // rows per pass of the block
  static constexpr int SLOTS = (Rows + RPP - 1) / RPP;
  static constexpr int LD = TcSmem<true, Rows, BK>::LD;
  static_assert(THREADS % CPR == 0, "whole rows per pass");

  const View& v;
  int row0, kc, k_next;
  typename View::Fixed fixed[SLOTS];
  typename View::Moving moving;

  __device__ TcLoader(const View& view, int mn0, int k_begin, int tid) : v(view) {
    kc = (tid % CPR) * V;
    row0 = tid / CPR;
    k_next = k_begin;
#pragma unroll
    for (int s = 0; s < SLOTS; ++s) fixed[s] = v.fix(mn0 + row0 + s * RPP);
    moving = v.at(k_begin + kc);
  }

  __device__ void load(T* tile, bool vec) {
#pragma unroll
    for (int s = 0; s < SLOTS; ++s) {
      const int row = row0 + s * RPP;
      if (SLOTS * RPP > Rows && row >= Rows) break;
      T* dst = tile + row * LD + kc;
      if (vec) {
        const T* src = v.ptr(fixed[s], moving);
        cp_async_16(dst, src ? src : v.data, src != nullptr);
      } else {
#pragma unroll
        for (int j = 0; j < V; ++j) {
          const T* src = v.ptr(fixed[s], v.at(k_next + kc + j));
          dst[j] = src ? *src : __float2bfloat16_rn(0.0f);
        }
      }
    }
    if (vec) v.advance(moving, BK);
    k_next += BK;
  }
};

template <class View, int Rows, int BK, int THREADS>
struct TcLoader<View, false, Rows, BK, THREADS> {
  using T = __nv_bfloat16;
  static constexpr int V = 8;
  static constexpr int CPR = Rows / V;         // chunks per k row
  static constexpr int RPP = THREADS / CPR;    // k rows per pass
  static constexpr int SLOTS = (BK + RPP - 1) / RPP;
  static constexpr int LD = TcSmem<false, Rows, BK>::LD;
  static_assert(THREADS % CPR == 0, "whole k rows per pass");

  const View& v;
  int mn0, mc, krow0;
  typename View::Fixed fixed;
  typename View::Moving moving[SLOTS];

  __device__ TcLoader(const View& view, int mn_begin, int k_begin, int tid) : v(view) {
    mn0 = mn_begin;
    mc = (tid % CPR) * V;
    krow0 = tid / CPR;
    fixed = v.fix(mn0 + mc);
#pragma unroll
    for (int s = 0; s < SLOTS; ++s) moving[s] = v.at(k_begin + krow0 + s * RPP);
  }

  __device__ void load(T* tile, bool vec) {
#pragma unroll
    for (int s = 0; s < SLOTS; ++s) {
      const int krow = krow0 + s * RPP;
      if (SLOTS * RPP > BK && krow >= BK) break;
      T* dst = tile + krow * LD + mc;
      if (vec) {
        const T* src = v.ptr(fixed, moving[s]);
        cp_async_16(dst, src ? src : v.data, src != nullptr);
      } else {
#pragma unroll
        for (int j = 0; j < V; ++j) {
          const T* src = v.ptr(v.fix(mn0 + mc + j), moving[s]);
          dst[j] = src ? *src : __float2bfloat16_rn(0.0f);
        }
      }
      v.advance(moving[s], BK);
    }
  }
};

// A fragments of one warp for k16 step kk: MI tiles of 16 rows.
template <class Tile, bool KMajor>
__device__ __forceinline__ void load_a_frags(uint32_t (&a)[Tile::MI][4], const __nv_bfloat16* tile, int m_warp, int kk,
                                             int lane) {
  constexpr int LD = TcSmem<KMajor, Tile::BM, Tile::BK>::LD;
  const int mat = lane >> 3, r = lane & 7;
#pragma unroll
  for (int mi = 0; mi < Tile::MI; ++mi) {
    const int m = m_warp + mi * 16;
    if (KMajor) {  // matrices (m 0-7, k 0-7), (m 8-15, k 0-7), (m 0-7, k 8-15), (m 8-15, k 8-15)
      ldmatrix_x4(a[mi], tile + (m + r + (mat & 1) * 8) * LD + kk + (mat >> 1) * 8);
    } else {  // stored [k][m]: the same four matrices, transposed on load
      ldmatrix_x4_trans(a[mi], tile + (kk + r + (mat >> 1) * 8) * LD + m + (mat & 1) * 8);
    }
  }
}

// B fragments for k16 step kk: NI tiles of 8 columns, two per ldmatrix.x4.
template <class Tile, bool KMajor>
__device__ __forceinline__ void load_b_frags(uint32_t (&b)[Tile::NI][2], const __nv_bfloat16* tile, int n_warp, int kk,
                                             int lane) {
  constexpr int LD = TcSmem<KMajor, Tile::BN, Tile::BK>::LD;
  const int mat = lane >> 3, r = lane & 7;
#pragma unroll
  for (int np = 0; np < Tile::NI / 2; ++np) {
    const int n = n_warp + np * 16;
    uint32_t q[4];
    // matrices (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15)
    if (KMajor) {
      ldmatrix_x4(q, tile + (n + r + (mat >> 1) * 8) * LD + kk + (mat & 1) * 8);
    } else {  // stored [k][n]
      ldmatrix_x4_trans(q, tile + (kk + r + (mat & 1) * 8) * LD + n + (mat >> 1) * 8);
    }
    b[2 * np][0] = q[0];
    b[2 * np][1] = q[1];
    b[2 * np + 1][0] = q[2];
    b[2 * np + 1][1] = q[3];
  }
}

template <class Tile, class P>
constexpr int tc_smem_bytes() {
  return Tile::STAGES *
         (TcSmem<P::kAKMajor, Tile::BM, Tile::BK>::ELEMS + TcSmem<P::kBKMajor, Tile::BN, Tile::BK>::ELEMS) *
         static_cast<int>(sizeof(__nv_bfloat16));
}

// The MMAs of one stage for one warp (origin m_warp, n_warp inside the block tile).
template <class Tile, class P>
__device__ __forceinline__ void tc_compute_stage(const __nv_bfloat16* ta, const __nv_bfloat16* tb, int m_warp,
                                                 int n_warp, int lane, float (&acc)[Tile::MI][Tile::NI][4]) {
#pragma unroll
  for (int kk = 0; kk < Tile::BK; kk += 16) {
    uint32_t a[Tile::MI][4], b[Tile::NI][2];
    load_a_frags<Tile, P::kAKMajor>(a, ta, m_warp, kk, lane);
    load_b_frags<Tile, P::kBKMajor>(b, tb, n_warp, kk, lane);
#pragma unroll
    for (int mi = 0; mi < Tile::MI; ++mi)
#pragma unroll
      for (int ni = 0; ni < Tile::NI; ++ni) mma_bf16_16816(acc[mi][ni], a[mi], b[ni][0], b[ni][1]);
  }
}

template <class Tile, class P>
__device__ __forceinline__ void tc_mainloop(const P& p, int m0, int n0, int k_tiles, __nv_bfloat16* smem,
                                            float (&acc)[Tile::MI][Tile::NI][4]) {
  using SA = TcSmem<P::kAKMajor, Tile::BM, Tile::BK>;
  using SB = TcSmem<P::kBKMajor, Tile::BN, Tile::BK>;
  constexpr int S = Tile::STAGES;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int m_warp = (warp / Tile::WARPS_N) * Tile::WM, n_warp = (warp % Tile::WARPS_N) * Tile::WN;
  __nv_bfloat16* sa = smem;
  __nv_bfloat16* sb = smem + S * SA::ELEMS;

  TcLoader<typename P::A, P::kAKMajor, Tile::BM, Tile::BK, Tile::THREADS> la(p.a, m0, p.k_begin, tid);
  TcLoader<typename P::B, P::kBKMajor, Tile::BN, Tile::BK, Tile::THREADS> lb(p.b, n0, p.k_begin, tid);

#pragma unroll
  for (int s = 0; s < S - 1; ++s) {
    if (s < k_tiles) {
      la.load(sa + s * SA::ELEMS, p.vec_a);
      lb.load(sb + s * SB::ELEMS, p.vec_b);
    }
    cp_async_commit();  // possibly empty: keeps one group per stage
  }

  int read = 0, write = S - 1;
  for (int kt = 0; kt < k_tiles; ++kt) {
    cp_async_wait<S - 2>();  // step kt has landed (this thread's copies) ...
    __syncthreads();         // ... and everyone's; step kt - 1's buffer is free to refill
    if (kt + S - 1 < k_tiles) {
      la.load(sa + write * SA::ELEMS, p.vec_a);
      lb.load(sb + write * SB::ELEMS, p.vec_b);
    }
    cp_async_commit();

    tc_compute_stage<Tile, P>(sa + read * SA::ELEMS, sb + read * SB::ELEMS, m_warp, n_warp, lane, acc);
    read = read + 1 == S ? 0 : read + 1;
    write = write + 1 == S ? 0 : write + 1;
  }
  cp_async_wait<0>();  // no copy may still target shared memory when the block exits
}

// Thread tid's accumulators to the output. Accumulator (mi, ni) holds rows g and g + 8, columns
// 2q and 2q + 1 of its 16x8 tile.
template <class Tile, class P>
__device__ __forceinline__ void tc_epilogue(const P& p, int m0, int n0, int tid,
                                            const float (&acc)[Tile::MI][Tile::NI][4]) {
  const int lane = tid & 31, warp = tid >> 5;
  const int m_warp = m0 + (warp / Tile::WARPS_N) * Tile::WM, n_warp = n0 + (warp % Tile::WARPS_N) * Tile::WN;
  const int g = lane >> 2, q = lane & 3;
#pragma unroll
  for (int mi = 0; mi < Tile::MI; ++mi)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int m = m_warp + mi * 16 + g + half * 8;
      if (m >= p.M) continue;
      typename P::Out* row = p.out_row(m);
#pragma unroll
      for (int ni = 0; ni < Tile::NI; ++ni) {
        float v[2] = {acc[mi][ni][2 * half], acc[mi][ni][2 * half + 1]};
        store_run<2>(row, n_warp + ni * 8 + 2 * q, p.N, v, p.bias, p.accumulate);
      }
    }
}

// One block per (BM x BN tile, grid.z); dynamic shared memory tc_smem_bytes<Tile, P>().
template <class Tile, class P>
__global__ void __launch_bounds__(Tile::THREADS) conv2d_tc_kernel(P p) {
  p.select(blockIdx.z);
  const int m0 = blockIdx.x * Tile::BM, n0 = blockIdx.y * Tile::BN;
  if (m0 >= p.M || n0 >= p.N) return;  // a dgrad class smaller than the grid

  extern __shared__ __align__(16) unsigned char tc_smem_raw[];
  float acc[Tile::MI][Tile::NI][4];
#pragma unroll
  for (int mi = 0; mi < Tile::MI; ++mi)
#pragma unroll
    for (int ni = 0; ni < Tile::NI; ++ni)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[mi][ni][e] = 0.0f;

  const int k_tiles = (p.k_end - p.k_begin + Tile::BK - 1) / Tile::BK;
  if (k_tiles > 0) tc_mainloop<Tile>(p, m0, n0, k_tiles, reinterpret_cast<__nv_bfloat16*>(tc_smem_raw), acc);

  tc_epilogue<Tile>(p, m0, n0, threadIdx.x, acc);
}

}  // namespace ddpm::cuda::conv
