// Index math of the bfloat16 tensor-core fragments the attention kernels use
// (kernels/cuda/attention_tc.cu), as plain functions that the host unit test
// (tests/test_attention_fragments.cpp) runs too. Layouts are the PTX ISA's: "Matrix Fragments for
// mma.m16n8k16 with floating point type" (.bf16) and "Warp-level matrix load instruction:
// ldmatrix". In all of them g = lane / 4 (the group) and t = lane % 4 (the thread in the group).
//
// mma.m16n8k16.row.col: D [16, 8] (float32) += A [16, 16] B [16, 8] (bfloat16).
//   A: four 32-bit registers of two bfloat16 each: register r, half h holds A[a_row][a_col].
//   B: two registers: register r, half h holds B[b_k][b_n].
//   C/D: four floats: element e holds D[c_row][c_col].
// ldmatrix.x4: lanes 8i..8i+7 give the addresses of the 8 rows (16 bytes each) of matrix i;
//   register i of lane l receives matrix i's row l/4, columns 2(l%4) + h; with .trans it receives
//   the transpose: row 2(l%4) + h, column l/4.
#pragma once

#if defined(__CUDACC__)
#define DDPM_FRAGMENT_FN __host__ __device__ __forceinline__ constexpr
#else
#define DDPM_FRAGMENT_FN inline constexpr
#endif

namespace ddpm::cuda::frag {

struct RowCol {
  int row, col;
};

// ---- mma.m16n8k16 register layouts ----
DDPM_FRAGMENT_FN RowCol a_elem(int lane, int reg, int half) {
  return {lane / 4 + 8 * (reg & 1), 2 * (lane % 4) + half + 8 * (reg >> 1)};
}
DDPM_FRAGMENT_FN RowCol b_elem(int lane, int reg, int half) {  // {k, n}
  return {2 * (lane % 4) + half + 8 * reg, lane / 4};
}
DDPM_FRAGMENT_FN RowCol c_elem(int lane, int e) { return {lane / 4 + 8 * (e >> 1), 2 * (lane % 4) + (e & 1)}; }

// ---- ldmatrix ----
// What register `reg` of `lane` receives, as {row, col} of the 8x8 matrix `reg` (half h).
DDPM_FRAGMENT_FN RowCol ldsm_elem(int lane, int half, bool trans) {
  return trans ? RowCol{2 * (lane % 4) + half, lane / 4} : RowCol{lane / 4, 2 * (lane % 4) + half};
}

// The row address each lane gives, for the three ways the kernels load tiles of a row-major
// shared array (row stride any multiple of 16 bytes), as {row, col} offsets from the tile's corner:
// 1. an A fragment of a [16, 16] tile (Q, dO, or K in the transposed products): matrices
//    (rows 0-7, cols 0-7), (rows 8-15, cols 0-7), (rows 0-7, cols 8-15), (rows 8-15, cols 8-15)
//    are a0..a3.
DDPM_FRAGMENT_FN RowCol ldsm_a_addr(int lane) { return {lane % 8 + 8 * ((lane / 8) % 2), 8 * (lane / 16)}; }
// 2. B fragments from an [n][k] array (keys x head dims: B = K^T in Q K^T), no .trans: 8 rows n,
//    32 columns k: registers are (b0, b1) of k-step 0 and (b0, b1) of k-step 1.
DDPM_FRAGMENT_FN RowCol ldsm_b_addr(int lane) { return {lane % 8, 8 * (lane / 8)}; }
// 3. B fragments from a [k][n] array (keys x head dims: B = V in P V), with .trans: 16 rows k,
//    16 columns n: registers are (b0, b1) of n-tile 0 and (b0, b1) of n-tile 1.
DDPM_FRAGMENT_FN RowCol ldsm_bt_addr(int lane) { return {lane % 8 + 8 * ((lane / 8) % 2), 8 * (lane / 16)}; }

// An accumulator tile pair (n-tiles 2j and 2j+1 of a [16, 16 J] float result, rounded to bfloat16)
// is the A fragment of k-step j of the next product: register r takes the tile 2j + r / 2, elements
// (2 (r % 2), 2 (r % 2) + 1). a_elem and c_elem agree on that (the unit test checks it).
DDPM_FRAGMENT_FN int acc_tile_of_a_reg(int reg) { return reg / 2; }
DDPM_FRAGMENT_FN int acc_elem_of_a_reg(int reg, int half) { return 2 * (reg % 2) + half; }

}  // namespace ddpm::cuda::frag
