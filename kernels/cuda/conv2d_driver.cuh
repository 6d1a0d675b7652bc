// Host side of the custom convolution: builds the three implicit-GEMM problems of
// conv2d_gather.cuh from the op's tensors, picks a tile configuration and the wgrad split, and
// launches through Engine<T> (tensor cores for bfloat16, conv2d_custom_bf16.cu; FMA for float32,
// conv2d_custom_f32.cu). Included by those two files only.
#pragma once
#include <algorithm>
#include <cstdint>

#include "engine/shape.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/conv2d_gather.cuh"
#include "kernels/cuda/conv2d_impl.h"
#include "kernels/cuda/conv2d_internal.h"
#include "kernels/cuda/scratch.h"

namespace ddpm::cuda::conv {

// A tile configuration of an engine: outputs per block and the k step.
struct TileChoice {
  int id, bm, bn, bk;
};

// Engine<T> provides:
//   static constexpr int kVec;                       elements per 16-byte chunk
//   static TileChoice tile(int id);                  id 0 (largest) .. 2 (smallest)
//   template <class P> static void launch(int id, const P& p, dim3 grid);
template <class T> struct Engine;

constexpr int64_t kMaxExtent = int64_t{1} << 30;  // int32 indexing with room for tile overrun

inline Geom geometry(const Tensor& x, const Tensor& weight, const Tensor& out_or_grad, int stride, Pad2d pad) {
  const int64_t dims[] = {x.dim(0),      x.dim(1),      x.dim(2),           x.dim(3),           weight.dim(0),
                          weight.dim(1), weight.dim(2), out_or_grad.dim(1), out_or_grad.dim(2)};
  const int64_t pixels_in = x.dim(0) * x.dim(1) * x.dim(2), pixels_out = x.dim(0) * out_or_grad.dim(1) * out_or_grad.dim(2);
  const int64_t k_total = weight.dim(1) * weight.dim(2) * x.dim(3);
  bool ok = pixels_in < kMaxExtent && pixels_out < kMaxExtent && k_total < kMaxExtent &&
            int64_t{stride} * stride <= 65535;
  for (int64_t d : dims) ok = ok && d < kMaxExtent;
  DDPM_CHECK(ok, "CUDA conv2d: x ", shape_str(x.shape()), " with weight ", shape_str(weight.shape()), " and stride ",
             stride, " exceeds the 32-bit indexing of the CUDA kernels");
  return {static_cast<int>(dims[0]), static_cast<int>(dims[1]), static_cast<int>(dims[2]), static_cast<int>(dims[3]),
          static_cast<int>(dims[4]), static_cast<int>(dims[5]), static_cast<int>(dims[6]), static_cast<int>(dims[7]),
          static_cast<int>(dims[8]), stride,                      pad.top,                    pad.left};
}

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }
inline int ceil_div(int64_t a, int64_t b) { return static_cast<int>((a + b - 1) / b); }

// The largest tile that still gives every SM a block; the smallest otherwise (small problems:
// more blocks beat bigger tiles). conv2d_custom_tile() overrides.
template <class T>
TileChoice choose_tile(int64_t m, int64_t n, int64_t z) {
  if (conv2d_custom_tile() >= 0) return Engine<T>::tile(conv2d_custom_tile());
  const int64_t sms = sm_count();
  for (int id : {0, 1}) {
    const TileChoice t = Engine<T>::tile(id);
    if (id == 0 && n <= 64) continue;  // 128 columns would be half empty
    if (int64_t{ceil_div(m, t.bm)} * ceil_div(n, t.bn) * z >= sms) return t;
  }
  return Engine<T>::tile(2);
}

template <class T>
dim3 grid_for(const TileChoice& t, int64_t m, int64_t n, int64_t z) {
  DDPM_CHECK(ceil_div(n, t.bn) <= 65535, "CUDA conv2d: ", n, " GEMM columns exceed the grid");
  return dim3(static_cast<unsigned>(std::max(1, ceil_div(m, t.bm))), static_cast<unsigned>(std::max(1, ceil_div(n, t.bn))),
              static_cast<unsigned>(z));
}

template <class T>
void custom_forward(const conv2d_fwd& args) {
  const Geom g = geometry(args.x, args.weight, args.out, args.stride, args.pad);
  constexpr int V = Engine<T>::kVec;
  const int M = g.n * g.oh * g.ow, K = g.kh * g.kw * g.cin;
  if (M == 0 || g.cout == 0) return;
  FwdProblem<T> p{};
  p.a = {ptr<T>(args.x), g.h, g.w, g.cin, g.kw, g.oh, g.ow, g.stride, g.pad_y, g.pad_x, M, K};
  p.b = {ptr<T>(args.weight), K, g.cout, K};
  p.vec_a = g.cin % V == 0 && aligned16(p.a.data);
  p.vec_b = K % V == 0 && aligned16(p.b.data);
  p.M = M;
  p.N = g.cout;
  p.K = K;
  p.k_begin = 0;
  p.k_end = K;
  p.out = ptr<T>(args.out);
  p.bias = args.bias.defined() ? ptr<T>(args.bias) : nullptr;
  p.accumulate = false;
  const TileChoice t = choose_tile<T>(M, g.cout, 1);
  Engine<T>::launch(t.id, p, grid_for<T>(t, M, g.cout, 1));
}

// dx: one grid.z slice per stride class; class (0, 0) has the most pixels.
template <class T>
void dgrad(const conv2d_bwd& args, const Geom& g) {
  constexpr int V = Engine<T>::kVec;
  DgradProblem<T> p{};
  p.g = g;
  p.a.data = ptr<T>(args.grad_out);
  p.a.oh = g.oh;
  p.a.ow = g.ow;
  p.a.c = g.cout;
  p.b.data = ptr<T>(args.weight);
  p.b.cin = g.cin;
  p.b.cout = g.cout;
  p.b.kh = g.kh;
  p.b.kw = g.kw;
  p.b.stride = g.stride;
  p.vec_a = g.cout % V == 0 && aligned16(p.a.data);
  p.vec_b = g.cin % V == 0 && aligned16(p.b.data);
  p.out = ptr<T>(args.grad_x.tensor);
  p.bias = nullptr;
  p.accumulate = args.grad_x.accumulate;
  const int64_t s = g.stride, m_max = int64_t{g.n} * ((g.h + s - 1) / s) * ((g.w + s - 1) / s);
  const TileChoice t = choose_tile<T>(m_max, g.cin, s * s);
  Engine<T>::launch(t.id, p, grid_for<T>(t, m_max, g.cin, s * s));
}

// dW: split-K over output pixels into float32 partials, then their ordered sum.
template <class T>
void wgrad(const conv2d_bwd& args, const Geom& g) {
  constexpr int V = Engine<T>::kVec;
  const int M = g.cout, N = g.kh * g.kw * g.cin, K = g.n * g.oh * g.ow;
  // Big tiles: the split, not the tile count, fills the machine.
  TileChoice t = Engine<T>::tile(M > 64 && N > 64 ? 0 : M > 64 ? 1 : 2);
  if (conv2d_custom_tile() >= 0) t = Engine<T>::tile(conv2d_custom_tile());
  const int64_t tiles = int64_t{ceil_div(M, t.bm)} * ceil_div(N, t.bn);
  const int64_t k_steps = std::max<int64_t>(1, ceil_div(K, t.bk));
  // About two blocks per SM, each split at least 4 k steps long.
  const int64_t want = (2 * sm_count() + tiles - 1) / tiles;
  const int64_t splits_max = std::min<int64_t>(std::max<int64_t>(1, k_steps / 4), 65535);
  int splits = static_cast<int>(std::clamp<int64_t>(want, 1, splits_max));
  const int k_split = ceil_div(k_steps, splits) * t.bk;
  splits = std::max(1, ceil_div(K, k_split));

  Scratch partials(static_cast<size_t>(splits) * M * N * sizeof(float));
  WgradProblem<T> p{};
  p.a = {ptr<T>(args.grad_out), g.cout, M, K};
  p.b = {ptr<T>(args.x), g.h, g.w, g.cin, g.kw, g.oh, g.ow, g.stride, g.pad_y, g.pad_x, N, K};
  p.vec_a = g.cout % V == 0 && aligned16(p.a.data);
  p.vec_b = g.cin % V == 0 && aligned16(p.b.data);
  p.M = M;
  p.N = N;
  p.K = K;
  p.k_begin = 0;
  p.k_end = K;
  p.out = partials.as<float>();
  p.bias = nullptr;
  p.accumulate = false;
  p.k_split = k_split;
  Engine<T>::launch(t.id, p, grid_for<T>(t, M, N, splits));
  sum_partials<T>(partials.as<float>(), splits, int64_t{M} * N, ptr<T>(args.grad_weight.tensor),
                  args.grad_weight.accumulate);
}

template <class T>
void custom_backward(const conv2d_bwd& args) {
  const Geom g = geometry(args.x, args.weight, args.grad_out, args.stride, args.pad);
  if (args.grad_bias.wanted())
    column_sums<T>(ptr<T>(args.grad_out), int64_t{g.n} * g.oh * g.ow, g.cout, ptr<T>(args.grad_bias.tensor),
                   args.grad_bias.accumulate);
  if (args.grad_x.wanted() && args.grad_x.tensor.numel() > 0 && g.cin > 0) dgrad<T>(args, g);
  if (args.grad_weight.wanted() && args.grad_weight.tensor.numel() > 0) wgrad<T>(args, g);
}

}  // namespace ddpm::cuda::conv
