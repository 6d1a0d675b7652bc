// max_pool2d, avg_pool2d and resize_bilinear on CUDA, NHWC: one thread per output element in the
// forwards and one per input element in the backwards (a gather over the outputs that read it:
// deterministic, no atomics). Adjacent threads take adjacent channels, so accesses coalesce. The
// index arithmetic is kernels/pool_resize_math.h, the same code the CPU runs; math in float32.
#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/pool_resize_math.h"

namespace ddpm {

namespace {
using cuda::kThreads;
using cuda::launch_1d;
using cuda::load_f;
using cuda::ptr;
using cuda::put_f;
using cuda::store_f;

// Extents of one pooling or resize: input [n, h, w, c], output [n, oh, ow, c].
struct Dims {
  int64_t n, h, w, c, oh, ow;
};
Dims dims_of(const Tensor& in, const Tensor& out) {
  return {in.dim(0), in.dim(1), in.dim(2), in.dim(3), out.dim(1), out.dim(2)};
}

// Splits a flat NHWC index of an [n, rows, cols, c] tensor.
struct At {
  int64_t s, y, x, ch;
};
__device__ __forceinline__ At split(int64_t i, int64_t rows, int64_t cols, int64_t c) {
  const int64_t ch = i % c, p = i / c;
  return {p / (rows * cols), (p / cols) % rows, p % cols, ch};
}

template <class T>
__global__ void max_pool_forward_kernel(int64_t total, Dims d, int k, int stride, int pad, const T* x, T* out) {
  DDPM_GRID_STRIDE(i, total) {
    const At a = split(i, d.oh, d.ow, d.c);
    int64_t y0, y1, x0, x1;
    pr::window_bounds(a.y, k, stride, pad, d.h, &y0, &y1);
    pr::window_bounds(a.x, k, stride, pad, d.w, &x0, &x1);
    const T* img = x + a.s * d.h * d.w * d.c;
    const auto load = [img](int64_t e) { return load_f(img, e); };
    out[i] = img[pr::window_argmax<float>(load, d.w, d.c, a.ch, y0, y1, x0, x1) * d.c + a.ch];
  }
}

template <class T>
__global__ void max_pool_backward_kernel(int64_t total, Dims d, int k, int stride, int pad, const T* x, const T* g,
                                         T* gx, bool accumulate) {
  DDPM_GRID_STRIDE(i, total) {
    const At a = split(i, d.h, d.w, d.c);
    int64_t oy0, oy1, ox0, ox1;
    pr::windows_containing(a.y, k, stride, pad, d.oh, &oy0, &oy1);
    pr::windows_containing(a.x, k, stride, pad, d.ow, &ox0, &ox1);
    const T* img = x + a.s * d.h * d.w * d.c;
    const auto load = [img](int64_t e) { return load_f(img, e); };
    float sum = 0.0f;
    for (int64_t oy = oy0; oy <= oy1; ++oy) {
      int64_t y0, y1;
      pr::window_bounds(oy, k, stride, pad, d.h, &y0, &y1);
      for (int64_t ox = ox0; ox <= ox1; ++ox) {
        int64_t x0, x1;
        pr::window_bounds(ox, k, stride, pad, d.w, &x0, &x1);
        if (pr::window_argmax<float>(load, d.w, d.c, a.ch, y0, y1, x0, x1) == a.y * d.w + a.x)
          sum += load_f(g, ((a.s * d.oh + oy) * d.ow + ox) * d.c + a.ch);
      }
    }
    put_f(gx, i, sum, accumulate);
  }
}

template <class T>
__global__ void avg_pool_forward_kernel(int64_t total, Dims d, int k, int stride, int pad, bool include_pad,
                                        const T* x, T* out) {
  DDPM_GRID_STRIDE(i, total) {
    const At a = split(i, d.oh, d.ow, d.c);
    int64_t y0, y1, x0, x1;
    pr::window_bounds(a.y, k, stride, pad, d.h, &y0, &y1);
    pr::window_bounds(a.x, k, stride, pad, d.w, &x0, &x1);
    float sum = 0.0f;
    for (int64_t y = y0; y < y1; ++y)
      for (int64_t xx = x0; xx < x1; ++xx) sum += load_f(x, ((a.s * d.h + y) * d.w + xx) * d.c + a.ch);
    store_f(out, i, sum / static_cast<float>(pr::avg_divisor(k, include_pad, y0, y1, x0, x1)));
  }
}

template <class T>
__global__ void avg_pool_backward_kernel(int64_t total, Dims d, int k, int stride, int pad, bool include_pad,
                                         const T* g, T* gx, bool accumulate) {
  DDPM_GRID_STRIDE(i, total) {
    const At a = split(i, d.h, d.w, d.c);
    int64_t oy0, oy1, ox0, ox1;
    pr::windows_containing(a.y, k, stride, pad, d.oh, &oy0, &oy1);
    pr::windows_containing(a.x, k, stride, pad, d.ow, &ox0, &ox1);
    float sum = 0.0f;
    for (int64_t oy = oy0; oy <= oy1; ++oy) {
      int64_t y0, y1;
      pr::window_bounds(oy, k, stride, pad, d.h, &y0, &y1);
      for (int64_t ox = ox0; ox <= ox1; ++ox) {
        int64_t x0, x1;
        pr::window_bounds(ox, k, stride, pad, d.w, &x0, &x1);
        sum += load_f(g, ((a.s * d.oh + oy) * d.ow + ox) * d.c + a.ch) /
               static_cast<float>(pr::avg_divisor(k, include_pad, y0, y1, x0, x1));
      }
    }
    put_f(gx, i, sum, accumulate);
  }
}

template <class T>
__global__ void resize_forward_kernel(int64_t total, Dims d, const T* x, T* out) {
  DDPM_GRID_STRIDE(i, total) {
    const At a = split(i, d.oh, d.ow, d.c);
    const pr::Taps ty = pr::bilinear_taps(a.y, d.h, d.oh), tx = pr::bilinear_taps(a.x, d.w, d.ow);
    const T* img = x + a.s * d.h * d.w * d.c + a.ch;
    const float top = static_cast<float>(tx.w0) * load_f(img, (ty.i0 * d.w + tx.i0) * d.c) +
                      static_cast<float>(tx.w1) * load_f(img, (ty.i0 * d.w + tx.i1) * d.c);
    const float bottom = static_cast<float>(tx.w0) * load_f(img, (ty.i1 * d.w + tx.i0) * d.c) +
                         static_cast<float>(tx.w1) * load_f(img, (ty.i1 * d.w + tx.i1) * d.c);
    store_f(out, i, static_cast<float>(ty.w0) * top + static_cast<float>(ty.w1) * bottom);
  }
}

template <class T>
__global__ void resize_backward_kernel(int64_t total, Dims d, const T* g, T* gx, bool accumulate) {
  DDPM_GRID_STRIDE(i, total) {
    const At a = split(i, d.h, d.w, d.c);
    int64_t oy0, oy1, ox0, ox1;
    pr::bilinear_readers(a.y, d.h, d.oh, &oy0, &oy1);
    pr::bilinear_readers(a.x, d.w, d.ow, &ox0, &ox1);
    float sum = 0.0f;
    for (int64_t oy = oy0; oy <= oy1; ++oy) {
      const double wy = pr::bilinear_weight(oy, a.y, d.h, d.oh);
      if (wy == 0) continue;
      for (int64_t ox = ox0; ox <= ox1; ++ox) {
        const double wt = wy * pr::bilinear_weight(ox, a.x, d.w, d.ow);
        if (wt != 0) sum += static_cast<float>(wt) * load_f(g, ((a.s * d.oh + oy) * d.ow + ox) * d.c + a.ch);
      }
    }
    put_f(gx, i, sum, accumulate);
  }
}
}  // namespace

void CudaBackend::max_pool2d_forward(const max_pool2d_fwd& args) {
  cuda::dispatch_float("max_pool2d", args.x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands("max_pool2d", args.x.dtype(), args.out);
    const int64_t total = args.out.numel();
    if (total == 0) return;
    max_pool_forward_kernel<T><<<launch_1d(total), kThreads, 0, cuda::stream()>>>(
        total, dims_of(args.x, args.out), args.kernel, args.stride, args.pad, ptr<T>(args.x), ptr<T>(args.out));
    DDPM_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::max_pool2d_backward(const max_pool2d_bwd& args) {
  if (!args.grad_x.wanted()) return;
  cuda::dispatch_float("max_pool2d", args.x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Tensor& gx = args.grad_x.tensor;
    cuda::check_operands("max_pool2d", args.x.dtype(), args.grad_out, gx);
    const int64_t total = gx.numel();
    if (total == 0) return;
    max_pool_backward_kernel<T><<<launch_1d(total), kThreads, 0, cuda::stream()>>>(
        total, dims_of(args.x, args.grad_out), args.kernel, args.stride, args.pad, ptr<T>(args.x),
        ptr<T>(args.grad_out), ptr<T>(gx), args.grad_x.accumulate);
    DDPM_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::avg_pool2d_forward(const avg_pool2d_fwd& args) {
  cuda::dispatch_float("avg_pool2d", args.x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands("avg_pool2d", args.x.dtype(), args.out);
    const int64_t total = args.out.numel();
    if (total == 0) return;
    avg_pool_forward_kernel<T><<<launch_1d(total), kThreads, 0, cuda::stream()>>>(
        total, dims_of(args.x, args.out), args.kernel, args.stride, args.pad, args.count_include_pad, ptr<T>(args.x),
        ptr<T>(args.out));
    DDPM_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::avg_pool2d_backward(const avg_pool2d_bwd& args) {
  if (!args.grad_x.wanted()) return;
  cuda::dispatch_float("avg_pool2d", args.grad_out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Tensor& gx = args.grad_x.tensor;
    cuda::check_operands("avg_pool2d", args.grad_out.dtype(), gx);
    const int64_t total = gx.numel();
    if (total == 0) return;
    avg_pool_backward_kernel<T><<<launch_1d(total), kThreads, 0, cuda::stream()>>>(
        total, dims_of(gx, args.grad_out), args.kernel, args.stride, args.pad, args.count_include_pad,
        ptr<T>(args.grad_out), ptr<T>(gx), args.grad_x.accumulate);
    DDPM_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::resize_bilinear_forward(const resize_bilinear_fwd& args) {
  cuda::dispatch_float("resize_bilinear", args.x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands("resize_bilinear", args.x.dtype(), args.out);
    const int64_t total = args.out.numel();
    if (total == 0) return;
    resize_forward_kernel<T><<<launch_1d(total), kThreads, 0, cuda::stream()>>>(total, dims_of(args.x, args.out),
                                                                                 ptr<T>(args.x), ptr<T>(args.out));
    DDPM_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::resize_bilinear_backward(const resize_bilinear_bwd& args) {
  if (!args.grad_x.wanted()) return;
  cuda::dispatch_float("resize_bilinear", args.grad_out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Tensor& gx = args.grad_x.tensor;
    cuda::check_operands("resize_bilinear", args.grad_out.dtype(), gx);
    const int64_t total = gx.numel();
    if (total == 0) return;
    resize_backward_kernel<T><<<launch_1d(total), kThreads, 0, cuda::stream()>>>(
        total, dims_of(gx, args.grad_out), ptr<T>(args.grad_out), ptr<T>(gx), args.grad_x.accumulate);
    DDPM_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace ddpm
