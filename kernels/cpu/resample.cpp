// upsample2x (nearest) and channel concat, NHWC.
#include <algorithm>

#include "kernels/cpu/cpu_backend.h"

namespace ddpm {

using cpu::kParallelGrain;
using cpu::put;

void CpuBackend::upsample2x_forward(const upsample2x_fwd& args) {
  cpu::dispatch_float(args.x.dtype(), "upsample2x", [&](auto tag) {
    using T = decltype(tag);
    const int64_t n = args.x.dim(0), h = args.x.dim(1), w = args.x.dim(2), c = args.x.dim(3);
    const T* x = args.x.data<T>();
    T* out = args.out.data<T>();
    // out [N, 2H, 2W, C]: each output row (n, oy) copies input row (n, oy / 2).
#pragma omp parallel for if (args.out.numel() > kParallelGrain)
    for (int64_t row = 0; row < n * 2 * h; ++row) {
      const T* src = x + ((row / (2 * h)) * h + (row % (2 * h)) / 2) * w * c;
      T* dst = out + row * 2 * w * c;
      for (int64_t ox = 0; ox < 2 * w; ++ox)
        for (int64_t ch = 0; ch < c; ++ch) dst[ox * c + ch] = src[(ox / 2) * c + ch];
    }
  });
}

void CpuBackend::upsample2x_backward(const upsample2x_bwd& args) {
  if (!args.grad_x.wanted()) return;
  cpu::dispatch_float(args.grad_out.dtype(), "upsample2x", [&](auto tag) {
    using T = decltype(tag);
    const Tensor& gx_t = args.grad_x.tensor;
    const int64_t n = gx_t.dim(0), h = gx_t.dim(1), w = gx_t.dim(2), c = gx_t.dim(3);
    const T* g = args.grad_out.data<T>();
    T* gx = gx_t.data<T>();
    const bool acc = args.grad_x.accumulate;
    // grad_x (n, y, x) sums the 2x2 output block it was copied to.
#pragma omp parallel for if (gx_t.numel() > kParallelGrain)
    for (int64_t row = 0; row < n * h; ++row) {
      const int64_t b = row / h, y = row % h;
      const T* top = g + (b * 2 * h + 2 * y) * 2 * w * c;
      const T* bottom = top + 2 * w * c;
      for (int64_t x = 0; x < w; ++x)
        for (int64_t ch = 0; ch < c; ++ch) {
          int64_t l = (2 * x) * c + ch, r = (2 * x + 1) * c + ch;
          put(gx, (row * w + x) * c + ch, top[l] + top[r] + bottom[l] + bottom[r], acc);
        }
    }
  });
}

void CpuBackend::concat_forward(const concat_fwd& args) {
  cpu::dispatch_float(args.a.dtype(), "concat", [&](auto tag) {
    using T = decltype(tag);
    const int64_t ca = args.a.dim(-1), cb = args.b.dim(-1), rows = args.a.numel() / std::max<int64_t>(ca, 1);
    const T* a = args.a.data<T>();
    const T* b = args.b.data<T>();
    T* out = args.out.data<T>();
#pragma omp parallel for if (args.out.numel() > kParallelGrain)
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < ca; ++c) out[r * (ca + cb) + c] = a[r * ca + c];
      for (int64_t c = 0; c < cb; ++c) out[r * (ca + cb) + ca + c] = b[r * cb + c];
    }
  });
}

void CpuBackend::concat_backward(const concat_bwd& args) {
  cpu::dispatch_float(args.grad_out.dtype(), "concat", [&](auto tag) {
    using T = decltype(tag);
    const int64_t cc = args.grad_out.dim(-1);
    const int64_t rows = args.grad_out.numel() / std::max<int64_t>(cc, 1);
    const T* g = args.grad_out.data<T>();
    // Each part takes its channel range [first, first + width) of every row.
    auto split = [&](const GradSlot& slot, int64_t first) {
      if (!slot.wanted()) return;
      const int64_t width = slot.tensor.dim(-1);
      T* dst = slot.tensor.data<T>();
#pragma omp parallel for if (args.grad_out.numel() > kParallelGrain)
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < width; ++c) put(dst, r * width + c, g[r * cc + first + c], slot.accumulate);
    };
    split(args.grad_a, 0);
    split(args.grad_b, cc - (args.grad_b.wanted() ? args.grad_b.tensor.dim(-1) : 0));
  });
}

void CpuBackend::channel_slice_forward(const channel_slice_fwd& args) {
  cpu::dispatch_float(args.x.dtype(), "channel_slice", [&](auto tag) {
    using T = decltype(tag);
    const int64_t c = args.x.dim(-1), width = args.end - args.begin;
    const int64_t rows = args.x.numel() / std::max<int64_t>(c, 1);
    const T* x = args.x.data<T>();
    T* out = args.out.data<T>();
#pragma omp parallel for if (args.x.numel() > kParallelGrain)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < width; ++j) out[r * width + j] = x[r * c + args.begin + j];
  });
}

void CpuBackend::channel_slice_backward(const channel_slice_bwd& args) {
  if (!args.grad_x.wanted()) return;
  cpu::dispatch_float(args.grad_out.dtype(), "channel_slice", [&](auto tag) {
    using T = decltype(tag);
    const int64_t c = args.grad_x.tensor.dim(-1), width = args.end - args.begin;
    const int64_t rows = args.grad_x.tensor.numel() / std::max<int64_t>(c, 1);
    const T* g = args.grad_out.data<T>();
    T* gx = args.grad_x.tensor.data<T>();
    const bool acc = args.grad_x.accumulate;
    // Channels outside the slice get zero (written) or nothing (accumulated).
#pragma omp parallel for if (args.grad_x.tensor.numel() > kParallelGrain)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < c; ++j) {
        const bool inside = j >= args.begin && j < args.end;
        if (inside)
          put(gx, r * c + j, g[r * width + j - args.begin], acc);
        else if (!acc)
          gx[r * c + j] = T(0);
      }
  });
}

}  // namespace ddpm
