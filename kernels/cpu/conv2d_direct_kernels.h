// The direct convolution's micro-kernels, written once with GCC vector extensions and compiled
// once per instruction set: each conv2d_direct_<isa>.cpp defines kLanes (floats per register),
// kTile (output pixels per forward tile) and kDwBlock (output channels per dW tile), then includes
// this file inside its own namespace. Nothing here is inline in a shared namespace, so no
// AVX-512 copy of a helper can be linked into code that runs on a lesser CPU.
//
// Forward tile: R output pixels of one row x NV vectors of output channels, R * NV accumulators
// in registers; per input channel of each tap, NV weight vectors are loaded and each pixel's input
// value is broadcast (AVX-512: R = 14, NV = 2 uses 28 of the 32 registers).
// dW tile: kDwBlock output channels x NV vectors of input channels; per output pixel, NV input
// vectors are loaded and each channel's gradient broadcast.
// (No #pragma once: every including translation unit needs its own copy.)

// Unaligned, and allowed to alias the floats it is loaded from.
typedef float Vec __attribute__((vector_size(kLanes * sizeof(float)), aligned(sizeof(float)), may_alias));

inline Vec load(const float* p) { return *reinterpret_cast<const Vec*>(p); }
inline void store(float* p, Vec v) { *reinterpret_cast<Vec*>(p) = v; }
inline Vec splat(float s) {  // s in every lane: one broadcast instruction
#if defined(__clang__)  // (the fuzzing build; clang has no __builtin_shuffle and folds this loop)
  Vec v;
  for (int i = 0; i < kLanes; ++i) v[i] = s;
  return v;
#else
  typedef int Lanes __attribute__((vector_size(kLanes * sizeof(int))));
  const Vec v = {s};
  return __builtin_shuffle(v, Lanes{});  // lane 0 shuffled into every lane
#endif
}
// The first `count` lanes (0 <= count <= kLanes) from p, zeros after.
inline Vec load_part(const float* p, int64_t count) {
  if (count >= kLanes) return load(p);
  float lanes[kLanes] = {};
  for (int64_t i = 0; i < count; ++i) lanes[i] = p[i];
  return load(lanes);
}
inline void store_part(float* p, Vec v, int64_t count) {
  if (count >= kLanes) return store(p, v);
  float lanes[kLanes];
  store(lanes, v);
  for (int64_t i = 0; i < count; ++i) p[i] = lanes[i];
}

// R output pixels whose taps start at in_pix[r] (a tile may span output rows), NV vectors of
// packed weights at wblock, out_tile [R, Cout] holding `valid` channels of this block.
template <int R, int NV>
void forward_tile(const DirectFwdArgs& a, const float* const* in_pix, const float* wblock, float* out_tile,
                  const float* bias, int64_t valid) {
  constexpr int64_t kBlock = 2 * kLanes;
  Vec acc[R][NV];
#pragma GCC unroll 2
  for (int j = 0; j < NV; ++j) {
    const Vec b = bias ? load_part(bias + j * kLanes, valid - j * kLanes) : Vec{};
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
      acc[r][j] = a.accumulate ? b + load_part(out_tile + r * a.cout + j * kLanes, valid - j * kLanes) : b;
  }
  for (int64_t ky = 0; ky < a.kh; ++ky)
    for (int64_t kx = 0; kx < a.kw; ++kx) {
      const int64_t tap = (ky * a.wp + kx) * a.cs;
      const float* x[R];
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) x[r] = in_pix[r] + tap;
      const float* w = wblock + (ky * a.kw + kx) * a.cin * kBlock;
      for (int64_t ci = 0; ci < a.cin; ++ci, w += kBlock) {
        Vec wv[NV];
#pragma GCC unroll 2
        for (int j = 0; j < NV; ++j) wv[j] = load(w + j * kLanes);
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) {
          const Vec xv = splat(x[r][ci]);
#pragma GCC unroll 2
          for (int j = 0; j < NV; ++j) acc[r][j] += xv * wv[j];
        }
      }
    }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
    for (int j = 0; j < NV; ++j) store_part(out_tile + r * a.cout + j * kLanes, acc[r][j], valid - j * kLanes);
}

template <int R, int NV>
void forward_tile_entry(const DirectFwdArgs& a, const float* const* in_pix, const float* wblock, float* out_tile,
                        const float* bias, int64_t valid) {
  forward_tile<R, NV>(a, in_pix, wblock, out_tile, bias, valid);
}

using ForwardTileFn = void (*)(const DirectFwdArgs&, const float* const*, const float*, float*, const float*,
                               int64_t);

// forward_tile<R, NV> for R = 1 .. kTile, by (R - 1) * 2 + NV - 1.
template <int R>
struct ForwardTiles {
  static void fill(ForwardTileFn* table) {
    table[(R - 1) * 2] = &forward_tile_entry<R, 1>;
    table[(R - 1) * 2 + 1] = &forward_tile_entry<R, 2>;
    ForwardTiles<R - 1>::fill(table);
  }
};
template <>
struct ForwardTiles<0> {
  static void fill(ForwardTileFn*) {}
};

struct ForwardTable {
  ForwardTileFn fn[2 * kTile];
  ForwardTable() { ForwardTiles<kTile>::fill(fn); }
};

// Output pixels p0 .. p1 (flat, oy * OW + ox) of sample n, one block of output channels, in
// balanced tiles of at most kTile pixels: a 7-wide image fills a 14-pixel tile with two rows.
void forward_pixels(const DirectFwdArgs& a, int64_t n, int64_t p0, int64_t p1, int64_t block) {
  static const ForwardTable table;
  constexpr int64_t kBlock = 2 * kLanes;
  const int64_t co0 = block * kBlock, valid = a.cout - co0 < kBlock ? a.cout - co0 : kBlock;
  const int nv = valid > kLanes ? 2 : 1;
  const float* wblock = a.w + block * a.kh * a.kw * a.cin * kBlock;
  const float* bias = a.bias ? a.bias + co0 : nullptr;
  const float* in_sample = a.in + n * a.hp * a.wp * a.cs;
  float* out_sample = a.out + n * a.oh * a.ow * a.cout + co0;
  const int64_t count = p1 - p0, tiles = (count + kTile - 1) / kTile;
  if (tiles == 0) return;
  const int64_t base = count / tiles, longer = count % tiles;
  const float* in_pix[kTile];
  for (int64_t t = 0, p = p0; t < tiles; ++t) {
    const int64_t r = base + (t < longer ? 1 : 0);
    for (int64_t i = 0; i < r; ++i) {
      const int64_t oy = (p + i) / a.ow, ox = (p + i) % a.ow;
      in_pix[i] = in_sample + (oy * a.stride * a.wp + ox * a.stride) * a.cs;
    }
    table.fn[(r - 1) * 2 + nv - 1](a, in_pix, wblock, out_sample + p * a.cout, bias, valid);
    p += r;
  }
}

// CO output channels x NV input-channel vectors, summed over the pixels of samples n0 .. n1.
template <int CO, int NV>
void dw_tile(const DirectDwArgs& a, int64_t n0, int64_t n1, int64_t ky, int64_t kx, int64_t co0, int64_t ci0,
             bool zero_first) {
  Vec acc[CO][NV];
  const int64_t valid = a.cin - ci0;
  float* dw = a.dw + ((co0 * a.kh + ky) * a.kw + kx) * a.cin + ci0;
  const int64_t co_pitch = a.kh * a.kw * a.cin;
  for (int c = 0; c < CO; ++c)
    for (int j = 0; j < NV; ++j)
      acc[c][j] = zero_first ? Vec{} : load_part(dw + c * co_pitch + j * kLanes, valid - j * kLanes);
  for (int64_t n = n0; n < n1; ++n)
  for (int64_t oy = 0; oy < a.oh; ++oy) {
    const float* x = a.in + ((n * a.hp + oy * a.stride + ky) * a.wp + kx) * a.cs + ci0;
    const float* g = a.g + ((n * a.oh + oy) * a.ow) * a.cout + co0;
    const int64_t step = a.stride * a.cs;
    for (int64_t ox = 0; ox < a.ow; ++ox, x += step, g += a.cout) {
      Vec xv[NV];
      for (int j = 0; j < NV; ++j) xv[j] = load(x + j * kLanes);
#pragma GCC unroll 16
      for (int c = 0; c < CO; ++c) {
        const Vec gv = splat(g[c]);
        for (int j = 0; j < NV; ++j) acc[c][j] += gv * xv[j];
      }
    }
  }
  for (int c = 0; c < CO; ++c)
    for (int j = 0; j < NV; ++j) store_part(dw + c * co_pitch + j * kLanes, acc[c][j], valid - j * kLanes);
}

using DwTileFn = void (*)(const DirectDwArgs&, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool);

template <int CO>
struct DwTiles {
  static void fill(DwTileFn* table) {
    table[(CO - 1) * 2] = &dw_tile<CO, 1>;
    table[(CO - 1) * 2 + 1] = &dw_tile<CO, 2>;
    DwTiles<CO - 1>::fill(table);
  }
};
template <>
struct DwTiles<0> {
  static void fill(DwTileFn*) {}
};

struct DwTable {
  DwTileFn fn[2 * kDwBlock];
  DwTable() { DwTiles<kDwBlock>::fill(fn); }
};

void dw_samples(const DirectDwArgs& a, int64_t n0, int64_t n1, int64_t ky, int64_t kx, int64_t co0, bool zero_first) {
  static const DwTable table;
  const int64_t co = a.cout - co0 < kDwBlock ? a.cout - co0 : kDwBlock;
  for (int64_t ci0 = 0; ci0 < a.cin; ci0 += 2 * kLanes) {
    const int nv = a.cin - ci0 > kLanes ? 2 : 1;
    table.fn[(co - 1) * 2 + nv - 1](a, n0, n1, ky, kx, co0, ci0, zero_first);
  }
}
