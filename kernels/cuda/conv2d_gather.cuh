// conv2d as implicit GEMM: the three GEMMs of a convolution and how their operands are gathered
// straight from the NHWC tensors (no im2col buffer). Shared by the bfloat16 tensor-core kernel
// (conv2d_tc.cuh) and the float32 SIMT kernel (conv2d_simt.cuh).
//
//   forward  out [M = N*OH*OW, Cout]       = im2col(x) [M, KH*KW*Cin]  . W^T [KH*KW*Cin, Cout]
//   dgrad    dx  [N*H*W, Cin]              = gather(g) [.., taps*Cout] . W   [taps*Cout, Cin]
//   wgrad    dW  [Cout, KH*KW*Cin]         = g^T [Cout, N*OH*OW]       . im2col(x) [N*OH*OW, ..]
//
// dgrad is split by stride class: input pixels (iy, ix) with iy % s == ry, ix % s == rx are read
// only through the kernel taps ky = ky0 + s*t with ky0 = (ry + pad_y) % s, so each class is a dense
// GEMM over its own taps (no multiply by the zeros a transposed convolution would insert);
// grid.z picks the class. wgrad reduces over every output pixel: grid.z splits that reduction
// (split-K) into float32 partials that a second kernel sums in a fixed order (deterministic).
//
// An operand is seen through a small view with
//   Fixed  fix(int mn)       what depends only on the operand's M (or N) index, computed once,
//   Moving at(int k)         what depends on the reduction index k,
//   advance(Moving&, step)   k += step (the main loop steps by the tile depth), dividing only when
//                            a channel run or an image row is crossed,
//   ptr(Fixed, Moving)       the element's address, or nullptr where it reads as zero (padding,
//                            out of range, past the end of this block's k range).
// In every view one index runs along channels, contiguous in memory: the loaders move 16-byte
// chunks along it when the channel count and the pointer allow ("vec"), single elements otherwise.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/cuda/device_utils.cuh"

namespace ddpm::cuda::conv {

// Extents of one convolution (each fits int32: conv2d_driver.cuh checks). pad_y and pad_x are the
// top and left pads; the bottom and right ones are already in OH and OW, and taps past the
// input's end read as zero.
struct Geom {
  int n, h, w, cin, cout, kh, kw, oh, ow, stride, pad_y, pad_x;
};

// k = (ty * taps_x + tx) * channels + c: a kernel tap (ty, tx) and a channel c, channel fastest.
struct TapChannel {
  int k, c, tx, ty;
};
__device__ __forceinline__ TapChannel tap_channel_at(int k, int channels, int taps_x) {
  const int tap = k / channels, ty = tap / taps_x;
  return {k, k - tap * channels, tap - ty * taps_x, ty};
}
__device__ __forceinline__ void tap_channel_advance(TapChannel& t, int step, int channels, int taps_x) {
  t.k += step;
  t.c += step;
  if (t.c >= channels) {
    const int q = t.c / channels;
    t.c -= q * channels;
    t.tx += q;
    if (t.tx >= taps_x) {
      const int q2 = t.tx / taps_x;
      t.tx -= q2 * taps_x;
      t.ty += q2;
    }
  }
}

// k = (img * rows + y) * cols + x: a pixel of an image batch.
struct Pixel {
  int k, img, y, x;
};
__device__ __forceinline__ Pixel pixel_at(int k, int rows, int cols) {
  const int r = k / cols, img = r / rows;
  return {k, img, r - img * rows, k - r * cols};
}
__device__ __forceinline__ void pixel_advance(Pixel& p, int step, int rows, int cols) {
  p.k += step;
  p.x += step;
  if (p.x >= cols) {
    const int q = p.x / cols;
    p.x -= q * cols;
    p.y += q;
    if (p.y >= rows) {
      const int q2 = p.y / rows;
      p.y -= q2 * rows;
      p.img += q2;
    }
  }
}

__device__ __forceinline__ bool inside(int v, int end) { return static_cast<unsigned>(v) < static_cast<unsigned>(end); }

// ---- operand views ----

// forward A: im2col(x) [M = N*OH*OW, K = KH*KW*Cin]; m = output pixel, k = (ky, kx, ci).
template <class T>
struct ImageRows {
  const T* data;
  int h, w, c, kw, oh, ow, stride, pad_y, pad_x, m_end, k_end;
  struct Fixed {
    const T* base;  // this sample's image, nullptr past the last row
    int y0, x0;     // top-left input pixel of the window
  };
  using Moving = TapChannel;
  __device__ Fixed fix(int m) const {
    if (m >= m_end) return {nullptr, 0, 0};
    const Pixel p = pixel_at(m, oh, ow);
    return {data + static_cast<int64_t>(p.img) * h * w * c, p.y * stride - pad_y, p.x * stride - pad_x};
  }
  __device__ Moving at(int k) const { return tap_channel_at(k, c, kw); }
  __device__ void advance(Moving& t, int step) const { tap_channel_advance(t, step, c, kw); }
  __device__ const T* ptr(const Fixed& f, const Moving& t) const {
    const int iy = f.y0 + t.ty, ix = f.x0 + t.tx;
    if (!f.base || t.k >= k_end || !inside(iy, h) || !inside(ix, w)) return nullptr;
    return f.base + (static_cast<int64_t>(iy) * w + ix) * c + t.c;
  }
};

// forward B: W [N = Cout, K = KH*KW*Cin], k contiguous.
template <class T>
struct WeightRows {
  const T* data;
  int k_total, n_end, k_end;
  using Fixed = const T*;  // the row, nullptr past the last one
  using Moving = int;
  __device__ Fixed fix(int n) const { return n < n_end ? data + static_cast<int64_t>(n) * k_total : nullptr; }
  __device__ Moving at(int k) const { return k; }
  __device__ void advance(Moving& k, int step) const { k += step; }
  __device__ const T* ptr(Fixed row, Moving k) const { return row && k < k_end ? row + k : nullptr; }
};

// dgrad A for one stride class: g [N, OH, OW, Cout] gathered as [M = N*HJ*WJ, K = TKH*TKW*Cout];
// m = input pixel (img, jy, jx) of the class (iy = ry + s*jy), k = (ty, tx, co) with kernel tap
// ky = ky0 + s*ty. That pixel reads output row oy = jy + dy - ty (dy = (ry + pad_y) / s).
template <class T>
struct GradRows {
  const T* data;
  int oh, ow, c, hj, wj, taps_x, dy, dx, m_end, k_end;
  struct Fixed {
    const T* base;  // this sample's gradient image, nullptr past the last row
    int oy0, ox0;   // the output pixel read through tap (0, 0): jy + dy, jx + dx
  };
  using Moving = TapChannel;
  __device__ Fixed fix(int m) const {
    if (m >= m_end) return {nullptr, 0, 0};
    const Pixel p = pixel_at(m, hj, wj);
    return {data + static_cast<int64_t>(p.img) * oh * ow * c, p.y + dy, p.x + dx};
  }
  __device__ Moving at(int k) const { return tap_channel_at(k, c, taps_x); }
  __device__ void advance(Moving& t, int step) const { tap_channel_advance(t, step, c, taps_x); }
  __device__ const T* ptr(const Fixed& f, const Moving& t) const {
    const int oy = f.oy0 - t.ty, ox = f.ox0 - t.tx;
    if (!f.base || t.k >= k_end || !inside(oy, oh) || !inside(ox, ow)) return nullptr;
    return f.base + (static_cast<int64_t>(oy) * ow + ox) * c + t.c;
  }
};

// dgrad B for one stride class: W [Cout, KH, KW, Cin] as [K = TKH*TKW*Cout, N = Cin]; k = (ty, tx, co)
// as in GradRows, n = ci (contiguous).
template <class T>
struct WeightTaps {
  const T* data;
  int cin, cout, kh, kw, stride, ky0, kx0, taps_x, n_end, k_end;
  using Fixed = int;  // ci, or -1 past the end
  using Moving = TapChannel;
  __device__ Fixed fix(int n) const { return n < n_end ? n : -1; }
  __device__ Moving at(int k) const { return tap_channel_at(k, cout, taps_x); }
  __device__ void advance(Moving& t, int step) const { tap_channel_advance(t, step, cout, taps_x); }
  __device__ const T* ptr(Fixed ci, const Moving& t) const {
    if (ci < 0 || t.k >= k_end) return nullptr;
    const int ky = ky0 + stride * t.ty, kx = kx0 + stride * t.tx;
    return data + ((static_cast<int64_t>(t.c) * kh + ky) * kw + kx) * cin + ci;
  }
};

// wgrad A: g^T, [M = Cout, K = N*OH*OW]; m = co (contiguous), k = output pixel.
template <class T>
struct GradCols {
  const T* data;
  int c, m_end, k_end;
  using Fixed = int;  // co, or -1 past the end
  using Moving = int;
  __device__ Fixed fix(int m) const { return m < m_end ? m : -1; }
  __device__ Moving at(int k) const { return k; }
  __device__ void advance(Moving& k, int step) const { k += step; }
  __device__ const T* ptr(Fixed co, Moving k) const {
    return co >= 0 && k < k_end ? data + static_cast<int64_t>(k) * c + co : nullptr;
  }
};

// wgrad B: im2col(x), [K = N*OH*OW, N = KH*KW*Cin]; k = output pixel, n = (ky, kx, ci).
template <class T>
struct ImageCols {
  const T* data;
  int h, w, c, kw, oh, ow, stride, pad_y, pad_x, n_end, k_end;
  struct Fixed {
    int ky, kx, ci;  // ci = -1 past the end
  };
  using Moving = Pixel;
  __device__ Fixed fix(int n) const {
    if (n >= n_end) return {0, 0, -1};
    const TapChannel t = tap_channel_at(n, c, kw);
    return {t.ty, t.tx, t.c};
  }
  __device__ Moving at(int k) const { return pixel_at(k, oh, ow); }
  __device__ void advance(Moving& p, int step) const { pixel_advance(p, step, oh, ow); }
  __device__ const T* ptr(const Fixed& f, const Moving& p) const {
    const int iy = p.y * stride - pad_y + f.ky, ix = p.x * stride - pad_x + f.kx;
    if (f.ci < 0 || p.k >= k_end || !inside(iy, h) || !inside(ix, w)) return nullptr;
    return data + ((static_cast<int64_t>(p.img) * h + iy) * w + ix) * c + f.ci;
  }
};

// ---- epilogue: a run of `C` consecutive outputs of one GEMM row ----
template <class Out, int C>
struct alignas(C * sizeof(Out)) Pack {
  Out e[C];
};

// row[n + j] (=|+=) v[j] (+ bias[n + j]) for the j with n + j < n_end; vector access when the
// whole run is in range and aligned. A non-accumulating output is never read.
template <int C, class Out, class T>
__device__ __forceinline__ void store_run(Out* row, int n, int n_end, float (&v)[C], const T* bias, bool accumulate) {
  Out* p = row + n;
  if (n + C <= n_end && (reinterpret_cast<uintptr_t>(p) % sizeof(Pack<Out, C>)) == 0) {
    Pack<Out, C> pack;
    if (accumulate) pack = *reinterpret_cast<const Pack<Out, C>*>(p);
#pragma unroll
    for (int j = 0; j < C; ++j) {
      float x = v[j];
      if (bias) x += to_f<T>(bias[n + j]);
      if (accumulate) x += to_f<Out>(pack.e[j]);
      pack.e[j] = from_f<Out>(x);
    }
    *reinterpret_cast<Pack<Out, C>*>(p) = pack;
    return;
  }
#pragma unroll
  for (int j = 0; j < C; ++j) {
    if (n + j >= n_end) break;
    float x = v[j];
    if (bias) x += to_f<T>(bias[n + j]);
    put_f<Out>(p, j, x, accumulate);
  }
}

// ---- the three problems ----
// Each has the operand views a (M x K) and b (K x N), whether each is stored K-contiguous
// (kAKMajor / kBKMajor; otherwise its M or N index is the contiguous one), the per-block
// select(z) that fixes the GEMM for grid.z, and the output rows.

template <class T>
struct FwdProblem {
  using Elem = T;
  using Out = T;
  using A = ImageRows<T>;
  using B = WeightRows<T>;
  static constexpr bool kAKMajor = true, kBKMajor = true;
  A a;
  B b;
  bool vec_a, vec_b;
  int M, N, K, k_begin, k_end;
  T* out;          // [M, Cout]
  const T* bias;   // [Cout] or nullptr
  bool accumulate;  // always false: the forward writes
  __device__ void select(int) {}
  __device__ Out* out_row(int m) const { return out + static_cast<int64_t>(m) * N; }
};

template <class T>
struct DgradProblem {
  using Elem = T;
  using Out = T;
  using A = GradRows<T>;
  using B = WeightTaps<T>;
  static constexpr bool kAKMajor = true, kBKMajor = false;
  A a;
  B b;
  bool vec_a, vec_b;
  int M, N, K, k_begin, k_end;
  T* out;  // dx [N, H, W, Cin]
  const T* bias;  // nullptr
  bool accumulate;
  Geom g;
  int ry, rx, hj, wj;  // this block's stride class

  // Stride class z = ry * s + rx: its pixels, its taps and its GEMM extents.
  __device__ void select(int z) {
    const int s = g.stride;
    ry = z / s;
    rx = z - ry * s;
    hj = ry < g.h ? (g.h - ry + s - 1) / s : 0;
    wj = rx < g.w ? (g.w - rx + s - 1) / s : 0;
    const int ky0 = (ry + g.pad_y) % s, kx0 = (rx + g.pad_x) % s;
    const int taps_y = ky0 < g.kh ? (g.kh - ky0 + s - 1) / s : 0;
    const int taps_x = kx0 < g.kw ? (g.kw - kx0 + s - 1) / s : 0;
    M = g.n * hj * wj;
    N = g.cin;
    K = taps_y * taps_x * g.cout;
    k_begin = 0;
    k_end = K;
    a.hj = hj;
    a.wj = wj;
    a.taps_x = taps_x;
    a.dy = (ry + g.pad_y) / s;
    a.dx = (rx + g.pad_x) / s;
    a.m_end = M;
    a.k_end = K;
    b.ky0 = ky0;
    b.kx0 = kx0;
    b.taps_x = taps_x;
    b.n_end = N;
    b.k_end = K;
  }
  __device__ Out* out_row(int m) const {
    const Pixel p = pixel_at(m, hj, wj);
    const int iy = ry + g.stride * p.y, ix = rx + g.stride * p.x;
    return out + ((static_cast<int64_t>(p.img) * g.h + iy) * g.w + ix) * g.cin;
  }
};

// Split z reduces pixels [z * k_split, (z + 1) * k_split) into partial z of dW (float32).
template <class T>
struct WgradProblem {
  using Elem = T;
  using Out = float;
  using A = GradCols<T>;
  using B = ImageCols<T>;
  static constexpr bool kAKMajor = false, kBKMajor = false;
  A a;
  B b;
  bool vec_a, vec_b;
  int M, N, K, k_begin, k_end;
  float* out;  // partials [splits, Cout, KH*KW*Cin]
  const T* bias;  // nullptr
  bool accumulate;  // false: partials are written
  int k_split;

  __device__ void select(int z) {
    k_begin = z * k_split;
    k_end = min(K, k_begin + k_split);
    a.k_end = k_end;
    b.k_end = k_end;
    out += static_cast<int64_t>(z) * M * N;
  }
  __device__ Out* out_row(int m) const { return out + static_cast<int64_t>(m) * N; }
};

}  // namespace ddpm::cuda::conv
