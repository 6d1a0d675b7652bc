// float32 implicit-GEMM convolution on the CUDA cores (FMA; no TF32, so results match the CPU to
// float32 rounding).
//
// 256 threads compute a BM x BN tile, each a TM x TN = (BM/16) x (BN/16) block of outputs held in
// registers, split into 4x4 quads 64 rows/columns apart so that the float4 shared-memory reads of
// a warp hit distinct banks or broadcast. Shared memory holds both operands transposed to
// [BK][rows] (M or N contiguous), double-buffered; the next step's global loads go to registers
// while the current step computes, then are stored (transposing K-major operands on the way).
// Channels that are not a multiple of 4 (or unaligned pointers) are gathered element by element.
#pragma once
#include "kernels/cuda/conv2d_gather.cuh"

namespace ddpm::cuda::conv {

template <int BM_, int BN_, int BK_>
struct SimtTile {
  static constexpr int BM = BM_, BN = BN_, BK = BK_, THREADS = 256;
  static constexpr int TM = BM / 16, TN = BN / 16;
  static_assert(TM % 4 == 0 && TN % 4 == 0, "4x4 quads per thread");
};

// Register-staged loader of one operand into a [BK][Rows + 4] float tile.
template <class View, bool KMajor, int Rows, int BK>
struct SimtLoader;

template <class View, int Rows, int BK>
struct SimtLoader<View, true, Rows, BK> {  // k contiguous: chunk = 4 k's of one row
  static constexpr int CPR = BK / 4, RPP = 256 / CPR, SLOTS = (Rows + RPP - 1) / RPP, LD = Rows + 4;
  static_assert(256 % CPR == 0, "whole rows per pass");
  const View& v;
  int row0, kc, k_next;
  typename View::Fixed fixed[SLOTS];
  typename View::Moving moving;
  float4 reg[SLOTS];

  __device__ SimtLoader(const View& view, int mn0, int k_begin, int tid) : v(view) {
    kc = (tid % CPR) * 4;
    row0 = tid / CPR;
    k_next = k_begin;
#pragma unroll
    for (int s = 0; s < SLOTS; ++s) fixed[s] = v.fix(mn0 + row0 + s * RPP);
    moving = v.at(k_begin + kc);
  }
  __device__ void fetch(bool vec) {
#pragma unroll
    for (int s = 0; s < SLOTS; ++s) {
      if (vec) {
        const float* src = v.ptr(fixed[s], moving);
        reg[s] = src ? *reinterpret_cast<const float4*>(src) : make_float4(0.f, 0.f, 0.f, 0.f);
      } else {
        float e[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const float* src = v.ptr(fixed[s], v.at(k_next + kc + j));
          e[j] = src ? *src : 0.0f;
        }
        reg[s] = make_float4(e[0], e[1], e[2], e[3]);
      }
    }
    if (vec) v.advance(moving, BK);
    k_next += BK;
  }
  __device__ void store(float* tile) const {
#pragma unroll
    for (int s = 0; s < SLOTS; ++s) {
      const int row = row0 + s * RPP;
      if (SLOTS * RPP > Rows && row >= Rows) break;
      tile[(kc + 0) * LD + row] = reg[s].x;
      tile[(kc + 1) * LD + row] = reg[s].y;
      tile[(kc + 2) * LD + row] = reg[s].z;
      tile[(kc + 3) * LD + row] = reg[s].w;
    }
  }
};

template <class View, int Rows, int BK>
struct SimtLoader<View, false, Rows, BK> {  // M/N contiguous: chunk = 4 rows at one k
  static constexpr int CPR = Rows / 4, RPP = 256 / CPR, SLOTS = (BK + RPP - 1) / RPP, LD = Rows + 4;
  static_assert(256 % CPR == 0, "whole k rows per pass");
  const View& v;
  int mn0, mc, krow0;
  typename View::Fixed fixed;
  typename View::Moving moving[SLOTS];
  float4 reg[SLOTS];

  __device__ SimtLoader(const View& view, int mn_begin, int k_begin, int tid) : v(view) {
    mn0 = mn_begin;
    mc = (tid % CPR) * 4;
    krow0 = tid / CPR;
    fixed = v.fix(mn0 + mc);
#pragma unroll
    for (int s = 0; s < SLOTS; ++s) moving[s] = v.at(k_begin + krow0 + s * RPP);
  }
  __device__ void fetch(bool vec) {
#pragma unroll
    for (int s = 0; s < SLOTS; ++s) {
      if (SLOTS * RPP > BK && krow0 + s * RPP >= BK) break;
      if (vec) {
        const float* src = v.ptr(fixed, moving[s]);
        reg[s] = src ? *reinterpret_cast<const float4*>(src) : make_float4(0.f, 0.f, 0.f, 0.f);
      } else {
        float e[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const float* src = v.ptr(v.fix(mn0 + mc + j), moving[s]);
          e[j] = src ? *src : 0.0f;
        }
        reg[s] = make_float4(e[0], e[1], e[2], e[3]);
      }
      v.advance(moving[s], BK);
    }
  }
  __device__ void store(float* tile) const {
#pragma unroll
    for (int s = 0; s < SLOTS; ++s) {
      const int krow = krow0 + s * RPP;
      if (SLOTS * RPP > BK && krow >= BK) break;
      *reinterpret_cast<float4*>(tile + krow * LD + mc) = reg[s];
    }
  }
};

// Thread (tx, ty) = (tid % 16, tid / 16) holds rows i*64 + ty*4 + {0..3} and columns
// j*64 + tx*4 + {0..3} of the tile: one k step reads 2 x TM/4 float4 and does TM x TN FMAs.
template <class Tile>
__device__ __forceinline__ void simt_compute_stage(const float* sa, const float* sb, int tid,
                                                   float (&acc)[Tile::TM][Tile::TN]) {
  constexpr int LDA = Tile::BM + 4, LDB = Tile::BN + 4;
  const int tx = tid % 16, ty = tid / 16;
#pragma unroll
  for (int k = 0; k < Tile::BK; ++k) {
    float a[Tile::TM], b[Tile::TN];
#pragma unroll
    for (int i = 0; i < Tile::TM / 4; ++i) {
      const float4 t = *reinterpret_cast<const float4*>(&sa[k * LDA + i * 64 + ty * 4]);
      a[4 * i] = t.x, a[4 * i + 1] = t.y, a[4 * i + 2] = t.z, a[4 * i + 3] = t.w;
    }
#pragma unroll
    for (int j = 0; j < Tile::TN / 4; ++j) {
      const float4 t = *reinterpret_cast<const float4*>(&sb[k * LDB + j * 64 + tx * 4]);
      b[4 * j] = t.x, b[4 * j + 1] = t.y, b[4 * j + 2] = t.z, b[4 * j + 3] = t.w;
    }
#pragma unroll
    for (int i = 0; i < Tile::TM; ++i)
#pragma unroll
      for (int j = 0; j < Tile::TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
  }
}

template <class Tile, class P>
__device__ __forceinline__ void simt_epilogue(const P& p, int m0, int n0, int tid, const float (&acc)[Tile::TM][Tile::TN]) {
  const int tx = tid % 16, ty = tid / 16;
#pragma unroll
  for (int i = 0; i < Tile::TM; ++i) {
    const int m = m0 + (i / 4) * 64 + ty * 4 + (i % 4);
    if (m >= p.M) continue;
    typename P::Out* row = p.out_row(m);
#pragma unroll
    for (int j = 0; j < Tile::TN / 4; ++j) {
      float v[4] = {acc[i][4 * j], acc[i][4 * j + 1], acc[i][4 * j + 2], acc[i][4 * j + 3]};
      store_run<4>(row, n0 + j * 64 + tx * 4, p.N, v, p.bias, p.accumulate);
    }
  }
}

template <class Tile, class P>
__global__ void __launch_bounds__(256) conv2d_simt_kernel(P p) {
  p.select(blockIdx.z);
  const int m0 = blockIdx.x * Tile::BM, n0 = blockIdx.y * Tile::BN;
  if (m0 >= p.M || n0 >= p.N) return;  // a dgrad class smaller than the grid

  constexpr int LDA = Tile::BM + 4, LDB = Tile::BN + 4;
  __shared__ __align__(16) float sa[2][Tile::BK * LDA];
  __shared__ __align__(16) float sb[2][Tile::BK * LDB];

  const int tid = threadIdx.x;
  float acc[Tile::TM][Tile::TN];
#pragma unroll
  for (int i = 0; i < Tile::TM; ++i)
#pragma unroll
    for (int j = 0; j < Tile::TN; ++j) acc[i][j] = 0.0f;

  const int k_tiles = (p.k_end - p.k_begin + Tile::BK - 1) / Tile::BK;
  if (k_tiles > 0) {
    SimtLoader<typename P::A, P::kAKMajor, Tile::BM, Tile::BK> la(p.a, m0, p.k_begin, tid);
    SimtLoader<typename P::B, P::kBKMajor, Tile::BN, Tile::BK> lb(p.b, n0, p.k_begin, tid);
    la.fetch(p.vec_a);
    lb.fetch(p.vec_b);
    la.store(sa[0]);
    lb.store(sb[0]);
    __syncthreads();
    for (int kt = 0; kt < k_tiles; ++kt) {
      const int buf = kt & 1;
      const bool more = kt + 1 < k_tiles;
      if (more) {  // in flight during the FMAs below
        la.fetch(p.vec_a);
        lb.fetch(p.vec_b);
      }
      simt_compute_stage<Tile>(sa[buf], sb[buf], tid, acc);
      if (more) {  // the other buffer: last read in step kt - 1, before the barrier below it
        la.store(sa[buf ^ 1]);
        lb.store(sb[buf ^ 1]);
      }
      __syncthreads();
    }
  }

  simt_epilogue<Tile>(p, m0, n0, tid, acc);
}

}  // namespace ddpm::cuda::conv
