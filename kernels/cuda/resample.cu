// upsample2x (nearest), channel concat and channel slice, NHWC: index remapping kernels, one
// thread per output element (adjacent threads take adjacent channels, so loads and stores are
// coalesced).
#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/device_utils.cuh"

namespace ddpm {

namespace {
using cuda::kThreads;
using cuda::launch_1d;
using cuda::load_f;
using cuda::ptr;
using cuda::put_f;

// out [N, 2H, 2W, C] from x [N, H, W, C]: out (n, oy, ox, c) = x (n, oy / 2, ox / 2, c)
template <class T>
__global__ void upsample_forward_kernel(int64_t total, int64_t h, int64_t w, int64_t c, const T* x, T* out) {
  DDPM_GRID_STRIDE(i, total) {
    const int64_t ch = i % c, ox = (i / c) % (2 * w), row = i / (c * 2 * w);  // row = n * 2H + oy
    const int64_t n = row / (2 * h), oy = row % (2 * h);
    out[i] = x[((n * h + oy / 2) * w + ox / 2) * c + ch];
  }
}

// grad_x (n, y, x, c) sums the 2x2 output block it was copied to.
template <class T>
__global__ void upsample_backward_kernel(int64_t total, int64_t h, int64_t w, int64_t c, const T* g, T* gx,
                                         bool accumulate) {
  const int64_t out_row = 2 * w * c;  // one output image row
  DDPM_GRID_STRIDE(i, total) {
    const int64_t ch = i % c, xx = (i / c) % w, row = i / (c * w);  // row = n * H + y
    const int64_t n = row / h, y = row % h;
    const T* top = g + (n * 2 * h + 2 * y) * out_row + 2 * xx * c + ch;
    const T* bottom = top + out_row;
    put_f(gx, i, load_f(top, 0) + load_f(top, c) + load_f(bottom, 0) + load_f(bottom, c), accumulate);
  }
}

// out [rows, ca + cb] = [a [rows, ca], b [rows, cb]]
template <class T>
__global__ void concat_forward_kernel(int64_t rows, int64_t ca, int64_t cb, const T* a, const T* b, T* out) {
  const int64_t cc = ca + cb;
  DDPM_GRID_STRIDE(i, rows * cc) {
    const int64_t r = i / cc, ch = i % cc;
    out[i] = ch < ca ? a[r * ca + ch] : b[r * cb + ch - ca];
  }
}

// dst [rows, width] (=|+=) src [rows, src_width] columns [first, first + width)
template <class T>
__global__ void take_columns_kernel(int64_t rows, int64_t width, int64_t src_width, int64_t first, const T* src,
                                    T* dst, bool accumulate) {
  DDPM_GRID_STRIDE(i, rows * width) {
    const int64_t r = i / width, ch = i % width;
    put_f(dst, i, load_f(src, r * src_width + first + ch), accumulate);
  }
}

// Writing: gx [rows, c] = g's columns inside [begin, end), zero outside. Accumulating: only the
// slice's columns are touched (adding zero elsewhere would change nothing).
template <class T>
__global__ void slice_backward_kernel(int64_t rows, int64_t c, int64_t begin, int64_t end, const T* g, T* gx,
                                      bool accumulate) {
  const int64_t width = end - begin;
  DDPM_GRID_STRIDE(i, rows * c) {
    const int64_t r = i / c, ch = i % c;
    if (ch >= begin && ch < end)
      put_f(gx, i, load_f(g, r * width + ch - begin), accumulate);
    else if (!accumulate)
      cuda::store_f(gx, i, 0.0f);
  }
}

int64_t rows_of(const Tensor& t) {
  const int64_t c = t.dim(-1);
  return c ? t.numel() / c : 0;
}

template <class T>
void take_columns(const Tensor& src, const GradSlot& slot, int64_t first) {
  const int64_t rows = rows_of(src), width = slot.tensor.dim(-1);
  if (rows * width == 0) return;
  take_columns_kernel<T><<<launch_1d(rows * width), kThreads, 0, cuda::stream()>>>(
      rows, width, src.dim(-1), first, ptr<T>(src), ptr<T>(slot.tensor), slot.accumulate);
  DDPM_CUDA_CHECK_LAUNCH();
}
}  // namespace

void CudaBackend::upsample2x_forward(const upsample2x_fwd& args) {
  cuda::dispatch_float("upsample2x", args.x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands("upsample2x", args.x.dtype(), args.out);
    const int64_t total = args.out.numel();
    if (total == 0) return;
    upsample_forward_kernel<T><<<launch_1d(total), kThreads, 0, cuda::stream()>>>(
        total, args.x.dim(1), args.x.dim(2), args.x.dim(3), ptr<T>(args.x), ptr<T>(args.out));
    DDPM_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::upsample2x_backward(const upsample2x_bwd& args) {
  if (!args.grad_x.wanted()) return;
  cuda::dispatch_float("upsample2x", args.grad_out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Tensor& gx = args.grad_x.tensor;
    cuda::check_operands("upsample2x", args.grad_out.dtype(), gx);
    const int64_t total = gx.numel();
    if (total == 0) return;
    upsample_backward_kernel<T><<<launch_1d(total), kThreads, 0, cuda::stream()>>>(
        total, gx.dim(1), gx.dim(2), gx.dim(3), ptr<T>(args.grad_out), ptr<T>(gx), args.grad_x.accumulate);
    DDPM_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::concat_forward(const concat_fwd& args) {
  cuda::dispatch_float("concat", args.a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands("concat", args.a.dtype(), args.b, args.out);
    const int64_t rows = rows_of(args.out);
    if (args.out.numel() == 0) return;
    concat_forward_kernel<T><<<launch_1d(args.out.numel()), kThreads, 0, cuda::stream()>>>(
        rows, args.a.dim(-1), args.b.dim(-1), ptr<T>(args.a), ptr<T>(args.b), ptr<T>(args.out));
    DDPM_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::concat_backward(const concat_bwd& args) {
  cuda::dispatch_float("concat", args.grad_out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands("concat", args.grad_out.dtype(), args.grad_a.tensor, args.grad_b.tensor);
    const int64_t cc = args.grad_out.dim(-1);
    if (args.grad_a.wanted()) take_columns<T>(args.grad_out, args.grad_a, 0);
    if (args.grad_b.wanted()) take_columns<T>(args.grad_out, args.grad_b, cc - args.grad_b.tensor.dim(-1));
  });
}

void CudaBackend::channel_slice_forward(const channel_slice_fwd& args) {
  cuda::dispatch_float("channel_slice", args.x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands("channel_slice", args.x.dtype(), args.out);
    const int64_t c = args.x.dim(-1);
    DDPM_CHECK(0 <= args.begin && args.begin <= args.end && args.end <= c, "CUDA channel_slice: [", args.begin, ", ",
               args.end, ") is not a channel range of ", args.x.describe());
    take_columns<T>(args.x, GradSlot{args.out, false}, args.begin);
  });
}

void CudaBackend::channel_slice_backward(const channel_slice_bwd& args) {
  if (!args.grad_x.wanted()) return;
  cuda::dispatch_float("channel_slice", args.grad_out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Tensor& gx = args.grad_x.tensor;
    cuda::check_operands("channel_slice", args.grad_out.dtype(), gx);
    const int64_t c = gx.dim(-1);
    DDPM_CHECK(0 <= args.begin && args.begin <= args.end && args.end <= c, "CUDA channel_slice: [", args.begin, ", ",
               args.end, ") is not a channel range of ", gx.describe());
    const int64_t rows = rows_of(gx);
    if (rows * c == 0) return;
    slice_backward_kernel<T><<<launch_1d(rows * c), kThreads, 0, cuda::stream()>>>(
        rows, c, args.begin, args.end, ptr<T>(args.grad_out), ptr<T>(gx), args.grad_x.accumulate);
    DDPM_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace ddpm
