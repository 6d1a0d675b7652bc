// max_pool2d, avg_pool2d and resize_bilinear, NHWC. The index arithmetic lives in
// kernels/pool_resize_math.h (shared with CUDA); every backward is a gather over the outputs that
// read an input pixel, so each thread writes its own pixels and the GradSlot rule is one put().
#include <vector>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/pool_resize_math.h"

namespace ddpm {

using cpu::kParallelGrain;
using cpu::put;

namespace {
struct PoolDims {
  int64_t n, h, w, c, oh, ow;
};
PoolDims pool_dims(const Tensor& x_or_grad_x, const Tensor& out_or_grad) {
  return {x_or_grad_x.dim(0), x_or_grad_x.dim(1), x_or_grad_x.dim(2), x_or_grad_x.dim(3), out_or_grad.dim(1),
          out_or_grad.dim(2)};
}
}  // namespace

void CpuBackend::max_pool2d_forward(const max_pool2d_fwd& args) {
  cpu::dispatch_float(args.x.dtype(), "max_pool2d", [&](auto tag) {
    using T = decltype(tag);
    const PoolDims d = pool_dims(args.x, args.out);
    const T* x = args.x.data<T>();
    T* out = args.out.data<T>();
    // One output pixel (all channels) per iteration.
#pragma omp parallel for if (args.out.numel() * args.kernel * args.kernel > kParallelGrain)
    for (int64_t p = 0; p < d.n * d.oh * d.ow; ++p) {
      const int64_t s = p / (d.oh * d.ow), oy = (p / d.ow) % d.oh, ox = p % d.ow;
      int64_t y0, y1, x0, x1;
      pr::window_bounds(oy, args.kernel, args.stride, args.pad, d.h, &y0, &y1);
      pr::window_bounds(ox, args.kernel, args.stride, args.pad, d.w, &x0, &x1);
      const T* img = x + s * d.h * d.w * d.c;
      const auto load = [img](int64_t i) { return img[i]; };
      for (int64_t ch = 0; ch < d.c; ++ch)
        out[p * d.c + ch] = img[pr::window_argmax<T>(load, d.w, d.c, ch, y0, y1, x0, x1) * d.c + ch];
    }
  });
}

void CpuBackend::max_pool2d_backward(const max_pool2d_bwd& args) {
  if (!args.grad_x.wanted()) return;
  cpu::dispatch_float(args.x.dtype(), "max_pool2d", [&](auto tag) {
    using T = decltype(tag);
    const PoolDims d = pool_dims(args.x, args.grad_out);
    const T* x = args.x.data<T>();
    const T* g = args.grad_out.data<T>();
    T* gx = args.grad_x.tensor.data<T>();
    const bool acc = args.grad_x.accumulate;
    // Input pixel (iy, ix) of channel ch collects g from every window whose (recomputed) argmax it is.
#pragma omp parallel for if (args.x.numel() * args.kernel * args.kernel > kParallelGrain)
    for (int64_t p = 0; p < d.n * d.h * d.w; ++p) {
      const int64_t s = p / (d.h * d.w), iy = (p / d.w) % d.h, ix = p % d.w;
      int64_t oy0, oy1, ox0, ox1;
      pr::windows_containing(iy, args.kernel, args.stride, args.pad, d.oh, &oy0, &oy1);
      pr::windows_containing(ix, args.kernel, args.stride, args.pad, d.ow, &ox0, &ox1);
      const T* img = x + s * d.h * d.w * d.c;
      const auto load = [img](int64_t i) { return img[i]; };
      for (int64_t ch = 0; ch < d.c; ++ch) {
        T sum = T(0);
        for (int64_t oy = oy0; oy <= oy1; ++oy) {
          int64_t y0, y1;
          pr::window_bounds(oy, args.kernel, args.stride, args.pad, d.h, &y0, &y1);
          for (int64_t ox = ox0; ox <= ox1; ++ox) {
            int64_t x0, x1;
            pr::window_bounds(ox, args.kernel, args.stride, args.pad, d.w, &x0, &x1);
            if (pr::window_argmax<T>(load, d.w, d.c, ch, y0, y1, x0, x1) == iy * d.w + ix)
              sum += g[((s * d.oh + oy) * d.ow + ox) * d.c + ch];
          }
        }
        put(gx, p * d.c + ch, sum, acc);
      }
    }
  });
}

void CpuBackend::avg_pool2d_forward(const avg_pool2d_fwd& args) {
  cpu::dispatch_float(args.x.dtype(), "avg_pool2d", [&](auto tag) {
    using T = decltype(tag);
    const PoolDims d = pool_dims(args.x, args.out);
    const T* x = args.x.data<T>();
    T* out = args.out.data<T>();
#pragma omp parallel
    {
      std::vector<double> sum(static_cast<size_t>(d.c));
#pragma omp for
      for (int64_t p = 0; p < d.n * d.oh * d.ow; ++p) {
        const int64_t s = p / (d.oh * d.ow), oy = (p / d.ow) % d.oh, ox = p % d.ow;
        int64_t y0, y1, x0, x1;
        pr::window_bounds(oy, args.kernel, args.stride, args.pad, d.h, &y0, &y1);
        pr::window_bounds(ox, args.kernel, args.stride, args.pad, d.w, &x0, &x1);
        std::fill(sum.begin(), sum.end(), 0.0);
        for (int64_t y = y0; y < y1; ++y)
          for (int64_t xx = x0; xx < x1; ++xx) {
            const T* src = x + ((s * d.h + y) * d.w + xx) * d.c;
            for (int64_t ch = 0; ch < d.c; ++ch) sum[static_cast<size_t>(ch)] += src[ch];
          }
        const double inv = 1.0 / static_cast<double>(pr::avg_divisor(args.kernel, args.count_include_pad, y0, y1, x0, x1));
        for (int64_t ch = 0; ch < d.c; ++ch) out[p * d.c + ch] = static_cast<T>(sum[static_cast<size_t>(ch)] * inv);
      }
    }
  });
}

void CpuBackend::avg_pool2d_backward(const avg_pool2d_bwd& args) {
  if (!args.grad_x.wanted()) return;
  cpu::dispatch_float(args.grad_out.dtype(), "avg_pool2d", [&](auto tag) {
    using T = decltype(tag);
    const PoolDims d = pool_dims(args.grad_x.tensor, args.grad_out);
    const T* g = args.grad_out.data<T>();
    T* gx = args.grad_x.tensor.data<T>();
    const bool acc = args.grad_x.accumulate;
#pragma omp parallel
    {
      std::vector<double> sum(static_cast<size_t>(d.c));
#pragma omp for
      for (int64_t p = 0; p < d.n * d.h * d.w; ++p) {
        const int64_t s = p / (d.h * d.w), iy = (p / d.w) % d.h, ix = p % d.w;
        int64_t oy0, oy1, ox0, ox1;
        pr::windows_containing(iy, args.kernel, args.stride, args.pad, d.oh, &oy0, &oy1);
        pr::windows_containing(ix, args.kernel, args.stride, args.pad, d.ow, &ox0, &ox1);
        std::fill(sum.begin(), sum.end(), 0.0);
        for (int64_t oy = oy0; oy <= oy1; ++oy) {
          int64_t y0, y1;
          pr::window_bounds(oy, args.kernel, args.stride, args.pad, d.h, &y0, &y1);
          for (int64_t ox = ox0; ox <= ox1; ++ox) {
            int64_t x0, x1;
            pr::window_bounds(ox, args.kernel, args.stride, args.pad, d.w, &x0, &x1);
            const double inv =
                1.0 / static_cast<double>(pr::avg_divisor(args.kernel, args.count_include_pad, y0, y1, x0, x1));
            const T* src = g + ((s * d.oh + oy) * d.ow + ox) * d.c;
            for (int64_t ch = 0; ch < d.c; ++ch) sum[static_cast<size_t>(ch)] += src[ch] * inv;
          }
        }
        for (int64_t ch = 0; ch < d.c; ++ch) put(gx, p * d.c + ch, static_cast<T>(sum[static_cast<size_t>(ch)]), acc);
      }
    }
  });
}

void CpuBackend::resize_bilinear_forward(const resize_bilinear_fwd& args) {
  cpu::dispatch_float(args.x.dtype(), "resize_bilinear", [&](auto tag) {
    using T = decltype(tag);
    const PoolDims d = pool_dims(args.x, args.out);
    const T* x = args.x.data<T>();
    T* out = args.out.data<T>();
    // Each output pixel blends four input pixels (all channels at once).
#pragma omp parallel for if (args.out.numel() > kParallelGrain)
    for (int64_t p = 0; p < d.n * d.oh * d.ow; ++p) {
      const int64_t s = p / (d.oh * d.ow), oy = (p / d.ow) % d.oh, ox = p % d.ow;
      const pr::Taps ty = pr::bilinear_taps(oy, d.h, d.oh), tx = pr::bilinear_taps(ox, d.w, d.ow);
      const T* img = x + s * d.h * d.w * d.c;
      const T* a = img + (ty.i0 * d.w + tx.i0) * d.c;
      const T* b = img + (ty.i0 * d.w + tx.i1) * d.c;
      const T* e = img + (ty.i1 * d.w + tx.i0) * d.c;
      const T* f = img + (ty.i1 * d.w + tx.i1) * d.c;
      const T w00 = static_cast<T>(ty.w0 * tx.w0), w01 = static_cast<T>(ty.w0 * tx.w1);
      const T w10 = static_cast<T>(ty.w1 * tx.w0), w11 = static_cast<T>(ty.w1 * tx.w1);
      for (int64_t ch = 0; ch < d.c; ++ch)
        out[p * d.c + ch] = w00 * a[ch] + w01 * b[ch] + w10 * e[ch] + w11 * f[ch];
    }
  });
}

void CpuBackend::resize_bilinear_backward(const resize_bilinear_bwd& args) {
  if (!args.grad_x.wanted()) return;
  cpu::dispatch_float(args.grad_out.dtype(), "resize_bilinear", [&](auto tag) {
    using T = decltype(tag);
    const PoolDims d = pool_dims(args.grad_x.tensor, args.grad_out);
    const T* g = args.grad_out.data<T>();
    T* gx = args.grad_x.tensor.data<T>();
    const bool acc = args.grad_x.accumulate;
#pragma omp parallel
    {
      std::vector<double> sum(static_cast<size_t>(d.c));
#pragma omp for
      for (int64_t p = 0; p < d.n * d.h * d.w; ++p) {
        const int64_t s = p / (d.h * d.w), iy = (p / d.w) % d.h, ix = p % d.w;
        int64_t oy0, oy1, ox0, ox1;
        pr::bilinear_readers(iy, d.h, d.oh, &oy0, &oy1);
        pr::bilinear_readers(ix, d.w, d.ow, &ox0, &ox1);
        std::fill(sum.begin(), sum.end(), 0.0);
        for (int64_t oy = oy0; oy <= oy1; ++oy) {
          const double wy = pr::bilinear_weight(oy, iy, d.h, d.oh);
          if (wy == 0) continue;
          for (int64_t ox = ox0; ox <= ox1; ++ox) {
            const double wt = wy * pr::bilinear_weight(ox, ix, d.w, d.ow);
            if (wt == 0) continue;
            const T* src = g + ((s * d.oh + oy) * d.ow + ox) * d.c;
            for (int64_t ch = 0; ch < d.c; ++ch) sum[static_cast<size_t>(ch)] += wt * src[ch];
          }
        }
        for (int64_t ch = 0; ch < d.c; ++ch) put(gx, p * d.c + ch, static_cast<T>(sum[static_cast<size_t>(ch)]), acc);
      }
    }
  });
}

}  // namespace ddpm
