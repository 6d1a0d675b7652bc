// Index arithmetic of max/avg pooling and bilinear resizing, shared by the CPU and CUDA kernels
// (one source of truth, like kernels/diffusion_math.h). Every backward here is a gather: each input
// element sums what the outputs that read it pass back, so threads write disjoint elements and no
// atomics are needed.
#pragma once
#include <cmath>
#include <cstdint>

#include "engine/philox.h"  // DDPM_HOST_DEVICE

namespace ddpm::pr {

// ---- pooling: kernel x kernel windows, stride, symmetric zero padding `pad` ----
// Output o's window covers input rows [o * stride - pad, o * stride - pad + kernel).

// The outputs whose windows contain input index i: [first, last] (empty when first > last).
DDPM_HOST_DEVICE void windows_containing(int64_t i, int64_t kernel, int64_t stride, int64_t pad, int64_t out_size,
                                         int64_t* first, int64_t* last) {
  // o * stride - pad <= i  and  i < o * stride - pad + kernel
  const int64_t hi = (i + pad) / stride;  // i + pad >= 0 always
  const int64_t lo_num = i + pad - kernel + 1;
  const int64_t lo = lo_num <= 0 ? 0 : (lo_num + stride - 1) / stride;
  *first = lo;
  *last = hi < out_size - 1 ? hi : out_size - 1;
}

// The in-bounds part [begin, end) of output o's window along an axis of `size`.
DDPM_HOST_DEVICE void window_bounds(int64_t o, int64_t kernel, int64_t stride, int64_t pad, int64_t size,
                                    int64_t* begin, int64_t* end) {
  const int64_t start = o * stride - pad;
  *begin = start < 0 ? 0 : start;
  *end = start + kernel < size ? start + kernel : size;
}

// The average's divisor: kernel^2 with count_include_pad (PyTorch's default; in floor mode no
// window reaches past the padding), otherwise the window's in-bounds taps.
DDPM_HOST_DEVICE int64_t avg_divisor(int64_t kernel, bool count_include_pad, int64_t y0, int64_t y1, int64_t x0,
                                     int64_t x1) {
  return count_include_pad ? kernel * kernel : (y1 - y0) * (x1 - x0);
}

// The position (y * W + x) of the maximum of channel `channel` in the window [y0, y1) x [x0, x1)
// of one image [H, W, C] read through load(element index): the first one in row-major order, or
// the first NaN (NaN propagates, as in PyTorch). Windows are never empty (the op requires
// pad <= kernel / 2).
template <class T, class Load>
DDPM_HOST_DEVICE int64_t window_argmax(const Load& load, int64_t w, int64_t c, int64_t channel, int64_t y0, int64_t y1,
                                       int64_t x0, int64_t x1) {
  int64_t best_at = -1;
  T best = T(0);
  for (int64_t y = y0; y < y1; ++y)
    for (int64_t x = x0; x < x1; ++x) {
      const T v = load((y * w + x) * c + channel);
      if (v != v) return y * w + x;
      if (best_at < 0 || v > best) {
        best = v;
        best_at = y * w + x;
      }
    }
  return best_at;
}

// ---- bilinear resize, align_corners = False (PyTorch's convention) ----
// Output o of an axis reads source coordinate s = max((o + 0.5) * in / out - 0.5, 0), from input
// i0 = floor(s) with weight 1 - (s - i0) and from i1 = min(i0 + 1, in - 1) with weight s - i0.
struct Taps {
  int64_t i0, i1;
  double w0, w1;
};

DDPM_HOST_DEVICE Taps bilinear_taps(int64_t o, int64_t in, int64_t out) {
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  double s = (static_cast<double>(o) + 0.5) * scale - 0.5;
  if (s < 0) s = 0;
  int64_t i0 = static_cast<int64_t>(s);
  if (i0 > in - 1) i0 = in - 1;
  const double frac = s - static_cast<double>(i0);
  return {i0, i0 < in - 1 ? i0 + 1 : i0, 1.0 - frac, frac};
}

// The weight with which output o reads input i (0 when it does not).
DDPM_HOST_DEVICE double bilinear_weight(int64_t o, int64_t i, int64_t in, int64_t out) {
  const Taps t = bilinear_taps(o, in, out);
  return (t.i0 == i ? t.w0 : 0.0) + (t.i1 == i ? t.w1 : 0.0);
}

// A range of outputs [first, last] that contains every output reading input i (it may contain a
// few that do not: their weight is 0). s(o) is increasing in o and a reader has i - 1 < s(o) < i + 1
// (or s(o) >= in - 1 for the last input), so o lies within a slack of one around the inverse map.
DDPM_HOST_DEVICE void bilinear_readers(int64_t i, int64_t in, int64_t out, int64_t* first, int64_t* last) {
  const double inv = static_cast<double>(out) / static_cast<double>(in);
  const double lo = (static_cast<double>(i) - 1.0 + 0.5) * inv - 0.5;
  const double hi = (static_cast<double>(i) + 1.0 + 0.5) * inv - 0.5;
  int64_t f = static_cast<int64_t>(floor(lo)) - 1, l = static_cast<int64_t>(ceil(hi)) + 1;
  if (i == in - 1) l = out - 1;
  if (i == 0) f = 0;
  *first = f < 0 ? 0 : f;
  *last = l > out - 1 ? out - 1 : l;
}

}  // namespace ddpm::pr
