// The tensor-core attention's fragment index math (kernels/cuda/attention_fragments.h) emulated on
// the host: ldmatrix fills registers from a "shared memory" array by the addresses the kernels
// give, an emulated mma.m16n8k16 multiplies the register contents as the PTX ISA lays them out,
// and the results must equal plain matrix products. This runs without a GPU (label unit); the
// kernels themselves are compiled only here.
#include <catch2/catch.hpp>
#include <array>
#include <vector>

#include "kernels/cuda/attention_fragments.h"

using namespace ddpm::cuda::frag;

namespace {
// Registers of one warp: [lane][reg][half], values small integers (exact in bfloat16 and float).
template <int R> using Regs = std::array<std::array<std::array<float, 2>, R>, 32>;

// A row-major matrix standing in for shared memory.
struct Smem {
  int rows, cols;
  std::vector<float> v;
  Smem(int r, int c) : rows(r), cols(c), v(static_cast<size_t>(r * c)) {
    for (int i = 0; i < r * c; ++i) v[static_cast<size_t>(i)] = static_cast<float>((i * 37 + 11) % 17 - 8);
  }
  float at(int r, int c) const { return v[static_cast<size_t>(r * cols + c)]; }
};

// ldmatrix.x4 (optionally .trans): lane 8i + j gives the address of row j of matrix i as
// addr(lane) + corner; every lane receives its elements of each matrix.
template <class Addr> Regs<4> ldmatrix_x4(const Smem& s, int row0, int col0, Addr addr, bool trans) {
  std::array<RowCol, 32> row_start{};  // the 8 elements at this address are matrix row (lane % 8)
  for (int lane = 0; lane < 32; ++lane) {
    const RowCol a = addr(lane);
    row_start[static_cast<size_t>(lane)] = {row0 + a.row, col0 + a.col};
  }
  Regs<4> r{};
  for (int lane = 0; lane < 32; ++lane)
    for (int m = 0; m < 4; ++m)
      for (int h = 0; h < 2; ++h) {
        const RowCol e = ldsm_elem(lane, h, trans);  // {row, col} within matrix m
        const RowCol start = row_start[static_cast<size_t>(8 * m + e.row)];
        r[static_cast<size_t>(lane)][static_cast<size_t>(m)][static_cast<size_t>(h)] = s.at(start.row, start.col + e.col);
      }
  return r;
}

// mma.m16n8k16: gathers A and B from the registers by a_elem / b_elem, returns D by c_elem.
Regs<2> mma(const Regs<4>& a, const std::array<std::array<std::array<float, 2>, 2>, 32>& b, const Regs<2>& c) {
  float am[16][16] = {}, bm[16][8] = {};
  for (int lane = 0; lane < 32; ++lane)
    for (int h = 0; h < 2; ++h) {
      for (int r = 0; r < 4; ++r) {
        const RowCol e = a_elem(lane, r, h);
        am[e.row][e.col] = a[static_cast<size_t>(lane)][static_cast<size_t>(r)][static_cast<size_t>(h)];
      }
      for (int r = 0; r < 2; ++r) {
        const RowCol e = b_elem(lane, r, h);
        bm[e.row][e.col] = b[static_cast<size_t>(lane)][static_cast<size_t>(r)][static_cast<size_t>(h)];
      }
    }
  Regs<2> d = c;
  for (int lane = 0; lane < 32; ++lane)
    for (int e = 0; e < 4; ++e) {
      const RowCol rc = c_elem(lane, e);
      float sum = 0;
      for (int k = 0; k < 16; ++k) sum += am[rc.row][k] * bm[k][rc.col];
      d[static_cast<size_t>(lane)][static_cast<size_t>(e / 2)][static_cast<size_t>(e % 2)] += sum;
    }
  return d;
}

using BRegs = std::array<std::array<std::array<float, 2>, 2>, 32>;
BRegs pick(const Regs<4>& r, int first) {  // registers first, first + 1 as a B fragment
  BRegs b{};
  for (size_t lane = 0; lane < 32; ++lane)
    for (size_t k = 0; k < 2; ++k) b[lane][k] = r[lane][static_cast<size_t>(first) + k];
  return b;
}
float c_value(const Regs<2>& d, int lane, int e) {
  return d[static_cast<size_t>(lane)][static_cast<size_t>(e / 2)][static_cast<size_t>(e % 2)];
}
}  // namespace

TEST_CASE("ldmatrix A fragments hold the tile at a_elem's positions", "[attention][fragments]") {
  const Smem q(32, 40);
  const Regs<4> a = ldmatrix_x4(q, 16, 8, ldsm_a_addr, false);
  for (int lane = 0; lane < 32; ++lane)
    for (int r = 0; r < 4; ++r)
      for (int h = 0; h < 2; ++h) {
        const RowCol e = a_elem(lane, r, h);
        REQUIRE(a[static_cast<size_t>(lane)][static_cast<size_t>(r)][static_cast<size_t>(h)] == q.at(16 + e.row, 8 + e.col));
      }
}

TEST_CASE("emulated mma tiles give Q K^T (ldmatrix B from [key][dim])", "[attention][fragments]") {
  // S [16, 8] = Q [16, 32] K^T, K [8 keys, 32 dims] row-major: two k-steps.
  const Smem q(16, 32), k(8, 32);
  Regs<2> d{};
  const Regs<4> kb = ldmatrix_x4(k, 0, 0, ldsm_b_addr, false);  // k-steps 0 and 1
  for (int step = 0; step < 2; ++step) {
    const Regs<4> a = ldmatrix_x4(q, 0, 16 * step, ldsm_a_addr, false);
    d = mma(a, pick(kb, 2 * step), d);
  }
  for (int lane = 0; lane < 32; ++lane)
    for (int e = 0; e < 4; ++e) {
      const RowCol rc = c_elem(lane, e);
      float want = 0;
      for (int c = 0; c < 32; ++c) want += q.at(rc.row, c) * k.at(rc.col, c);
      REQUIRE(c_value(d, lane, e) == want);
    }
}

TEST_CASE("emulated mma tiles give P V (accumulators reused as A, ldmatrix.trans B from [key][dim])",
          "[attention][fragments]") {
  // P [16, 16 keys] arrives as two accumulator n-tiles; O [16, 16 dims] = P V, V [16 keys, 16 dims].
  const Smem p(16, 16), v(16, 16);
  Regs<2> acc[2] = {};
  for (int lane = 0; lane < 32; ++lane)
    for (int tile = 0; tile < 2; ++tile)
      for (int e = 0; e < 4; ++e) {
        const RowCol rc = c_elem(lane, e);
        acc[tile][static_cast<size_t>(lane)][static_cast<size_t>(e / 2)][static_cast<size_t>(e % 2)] =
            p.at(rc.row, 8 * tile + rc.col);
      }
  Regs<4> a{};  // the kernels' conversion: register r from tile acc_tile_of_a_reg(r)
  for (int lane = 0; lane < 32; ++lane)
    for (int r = 0; r < 4; ++r)
      for (int h = 0; h < 2; ++h)
        a[static_cast<size_t>(lane)][static_cast<size_t>(r)][static_cast<size_t>(h)] =
            c_value(acc[acc_tile_of_a_reg(r)], lane, acc_elem_of_a_reg(r, h));
  const Regs<4> vb = ldmatrix_x4(v, 0, 0, ldsm_bt_addr, true);  // n-tiles 0 and 1
  for (int tile = 0; tile < 2; ++tile) {
    const Regs<2> d = mma(a, pick(vb, 2 * tile), Regs<2>{});
    for (int lane = 0; lane < 32; ++lane)
      for (int e = 0; e < 4; ++e) {
        const RowCol rc = c_elem(lane, e);
        float want = 0;
        for (int j = 0; j < 16; ++j) want += p.at(rc.row, j) * v.at(j, 8 * tile + rc.col);
        REQUIRE(c_value(d, lane, e) == want);
      }
  }
}

TEST_CASE("transposed products: K Q^T from A = K rows and dV = P^T dO with B = dO via .trans",
          "[attention][fragments]") {
  // The backward's dK/dV kernel: S^T [16 keys, 8 queries] = K [16, 16] Q^T (Q [8, 16] as B from
  // [n][k]), and dV [16 keys, 16 dims] += P^T [16 keys, 16 queries] dO [16 queries, 16 dims].
  const Smem k(16, 16), q(8, 32), dout(16, 16), pt(16, 16);
  const Regs<4> a = ldmatrix_x4(k, 0, 0, ldsm_a_addr, false);
  const Regs<4> qb = ldmatrix_x4(q, 0, 0, ldsm_b_addr, false);
  const Regs<2> s = mma(a, pick(qb, 0), Regs<2>{});
  for (int lane = 0; lane < 32; ++lane)
    for (int e = 0; e < 4; ++e) {
      const RowCol rc = c_elem(lane, e);
      float want = 0;
      for (int c = 0; c < 16; ++c) want += k.at(rc.row, c) * q.at(rc.col, c);
      REQUIRE(c_value(s, lane, e) == want);
    }
  const Regs<4> pa = ldmatrix_x4(pt, 0, 0, ldsm_a_addr, false);
  const Regs<4> gb = ldmatrix_x4(dout, 0, 0, ldsm_bt_addr, true);
  for (int tile = 0; tile < 2; ++tile) {
    const Regs<2> d = mma(pa, pick(gb, 2 * tile), Regs<2>{});
    for (int lane = 0; lane < 32; ++lane)
      for (int e = 0; e < 4; ++e) {
        const RowCol rc = c_elem(lane, e);
        float want = 0;
        for (int i = 0; i < 16; ++i) want += pt.at(rc.row, i) * dout.at(i, 8 * tile + rc.col);
        REQUIRE(c_value(d, lane, e) == want);
      }
  }
}
