// conv2d on the CPU, NHWC: float32 picks per shape and part between the direct kernels
// (kernels/cpu/conv2d_direct.h) and im2col + GEMM (below) by ConvMethod (conv2d.h); float64 always
// takes im2col + GEMM.
//
// im2col + GEMM:
//   x [N, H, W, Cin], weight [Cout, KH, KW, Cin] = W [Cout, K] with K = KH*KW*Cin,
//   col [N*OH*OW, K]: row (n, oh, ow) holds the KH x KW x Cin input patch under that output pixel,
//   out [N*OH*OW, Cout] = col W^T + bias.
// The column matrix is built for a chunk of samples at a time so that scratch stays bounded
// (kDefaultChunkBytes, at least one sample). A 1x1, stride 1, pad 0 convolution needs no im2col:
// x viewed as [N*H*W, Cin] already is the column matrix.
// Backward: dW [Cout, K] = g^T col, db = column sums of g, and dx
// - for stride 1: as the forward convolution of g with the kernel flipped in space and transposed
//   in channels (Cin <-> Cout), padded by KH - 1 - pad_top above and KW - 1 - pad_left on the left
//   (the bottom and right pads only decide OH and OW): im2col of g and one GEMM straight into dx,
//   which moves far fewer bytes than forming dcol [rows, K] and folding it back;
// - otherwise through dcol [rows, K] = g W followed by a gather col2im (each input pixel sums the
//   column entries that read it), which needs no atomics and writes every element of dx once.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/cpu/conv2d.h"

#include "engine/cpu_threads.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/column_sums.h"
#include "kernels/cpu/conv2d_direct.h"
#include "kernels/cpu/conv2d_winograd.h"

namespace ddpm {

namespace cpu {

namespace {
// 8 MiB: with OpenBLAS's OpenMP build sharing our thread pool, 8 MiB chunks beat 32 MiB by 28%
// over bench_cpu's conv cases (296 vs 409 ms, 2-core dev machine, 2026-11-22): the column
// matrix stays closer to cache. Re-measure with bench_cpu before changing it.
constexpr int64_t kDefaultChunkBytes = int64_t{8} << 20;
std::atomic<int64_t> g_chunk_bytes{kDefaultChunkBytes};
}  // namespace

int64_t set_conv2d_chunk_bytes(int64_t bytes) {
  return g_chunk_bytes.exchange(bytes > 0 ? bytes : kDefaultChunkBytes);
}

ConvMethod parse_conv2d_method(const std::string& name) {
  if (name == "auto") return ConvMethod::Auto;
  if (name == "timed") return ConvMethod::Timed;
  if (name == "direct") return ConvMethod::Direct;
  if (name == "gemm") return ConvMethod::Gemm;
  if (name == "winograd") return ConvMethod::Winograd;
  detail::fail("DDPM_CPU_CONV must be auto, timed, direct, winograd or gemm, got \"", name,
               "\" (unset it for the default, auto)");
}

namespace {
std::atomic<int> g_method{-1};  // -1: not read from DDPM_CPU_CONV yet
}  // namespace

ConvMethod conv2d_method() {
  int m = g_method.load();
  if (m < 0) {
    const char* env = std::getenv("DDPM_CPU_CONV");
    m = static_cast<int>(env && *env ? parse_conv2d_method(env) : ConvMethod::Auto);
    g_method.store(m);
  }
  return static_cast<ConvMethod>(m);
}

ConvMethod set_conv2d_method(ConvMethod method) {
  const ConvMethod previous = conv2d_method();
  g_method.store(static_cast<int>(method));
  return previous;
}

}  // namespace cpu

namespace {

using cpu::kParallelGrain;

// Only the top and left pads enter the index arithmetic: the bottom and right ones are already in
// OH and OW (taken from the output tensor), and taps past the input's end read as zero anyway.
struct ConvGeometry {
  int64_t n, h, w, cin, cout, kh, kw, oh, ow, stride, pad_top, pad_left;
  int64_t k() const { return kh * kw * cin; }           // columns of the column matrix
  int64_t out_pixels() const { return oh * ow; }        // column-matrix rows per sample
  bool is_pointwise() const {
    return kh == 1 && kw == 1 && stride == 1 && pad_top == 0 && pad_left == 0 && oh == h && ow == w;
  }
  // The stride-1 convolution whose output is dx: input g [N, OH, OW, Cout], output [N, H, W, Cin].
  // Used from 16 input channels up: its GEMM is Cin wide, a matrix-vector product for the 1-channel
  // input layer (8.1 against 6.1 ms through dcol at 28x28, batch 64).
  bool has_transpose() const {
    return stride == 1 && cin >= 16 && pad_top <= kh - 1 && pad_left <= kw - 1;
  }
  ConvGeometry transposed() const {
    return {n, oh, ow, cout, cin, kh, kw, h, w, 1, kh - 1 - pad_top, kw - 1 - pad_left};
  }

  // Samples per im2col chunk: as many as fit the scratch bound, at least one.
  int64_t chunk_samples(size_t elem_size) const {
    const int64_t per_sample = out_pixels() * k() * static_cast<int64_t>(elem_size);
    const int64_t fit = per_sample > 0 ? cpu::g_chunk_bytes.load() / per_sample : n;
    return std::clamp<int64_t>(fit, 1, std::max<int64_t>(n, 1));
  }
};

// out_or_grad [N, OH, OW, Cout] supplies OH and OW.
ConvGeometry geometry(const Tensor& x, const Tensor& weight, const Tensor& out_or_grad, int stride, Pad2d pad) {
  return {x.dim(0),      x.dim(1),           x.dim(2),           x.dim(3), weight.dim(0), weight.dim(1),
          weight.dim(2), out_or_grad.dim(1), out_or_grad.dim(2), stride,   pad.top,       pad.left};
}

cpu::DirectConvShape direct_shape(const ConvGeometry& g) {
  return {g.n, g.h, g.w, g.cin, g.cout, g.kh, g.kw, g.oh, g.ow, g.stride, g.pad_top, g.pad_left};
}

enum class ConvPart { Forward, Dx, Dw };

// The rule of ConvMethod::Auto (float32), from bench_cpu at batch 32 on an AVX-512 machine, with
// its AVX2 kernels against OpenBLAS's Haswell ones as well (docs/benchmarks.md): the direct
// kernels everywhere (pointwise convolutions included: 1.0 to 1.4x GEMM's speed), except dx and
// dW with fewer than 8 input channels, where most vector lanes would idle (the UNet's first
// conv's backward: 2.3 ms through GEMM, 4.0 direct).
bool direct_by_rule(const ConvGeometry& g, ConvPart part) { return part == ConvPart::Forward || g.cin >= 8; }

// Whether a part (forward, dx, dW) that runs on the direct kernels (use_direct below) takes Winograd
// F(2x2, 3x3) instead (kernels/cpu/conv2d_winograd.h): always where it applies under
// ConvMethod::Winograd; by rule under Auto and Timed: 3x3 stride 1 with at least 32 channels in
// and out and an output of at least 8x8 (7x7 for dW, and for every part below AVX-512).
// bench_cpu_conv_methods, one thread, batch 32 (docs/benchmarks.md): 1.1 to 2.3x the direct
// kernels there, 0.65 to 0.8x at 16 channels. The rule depends on the shape and the kernels' level
// only, so a run on one machine makes the same choices every time.
bool winograd_here(const ConvGeometry& g, ConvPart part) {
  const cpu::DirectConvShape s = direct_shape(g);
  if (!cpu::winograd_supported(s) || (part == ConvPart::Dx && !cpu::direct_dx_supported(s))) return false;
  switch (cpu::conv2d_method()) {
    case cpu::ConvMethod::Winograd: return true;
    case cpu::ConvMethod::Auto:
    case cpu::ConvMethod::Timed: {
      // The tiled image: out [OH, OW] for the forward and dW, dx [H, W]. At 7x7 the half-empty
      // border tiles waste a quarter of the products (64 for 49): with the AVX-512 kernels the
      // forward and dx lose there (0.9 to 1.0x), dW still wins (1.1 to 1.3x); with the AVX2 ones
      // all three win (1.2 to 1.5x).
      const int64_t rows = part == ConvPart::Dx ? g.h : g.oh, cols = part == ConvPart::Dx ? g.w : g.ow;
      const bool avx512 = cpu::direct_kernels().lanes >= 16;
      const int64_t least = part == ConvPart::Dw || !avx512 ? 7 : 8;
      return g.cin >= 32 && g.cout >= 32 && rows >= least && cols >= least;
    }
    case cpu::ConvMethod::Direct:
    case cpu::ConvMethod::Gemm: break;
  }
  return false;
}

// Whether this part of this convolution runs on the direct kernels (or on Winograd, winograd_here).
// ConvMethod::Timed times run(false) (im2col + GEMM) and run(true) (direct or Winograd by the
// rule) at a shape's first use, one warm-up each
// then two interleaved timings, and keeps the faster per shape.
template <class Run>
bool use_direct(const ConvGeometry& g, ConvPart part, Run&& run) {
  switch (cpu::conv2d_method()) {
    case cpu::ConvMethod::Gemm: return false;
    case cpu::ConvMethod::Direct:
    case cpu::ConvMethod::Winograd: return true;
    case cpu::ConvMethod::Auto: return direct_by_rule(g, part);
    case cpu::ConvMethod::Timed: break;
  }
  using Key = std::array<int64_t, 13>;
  static std::mutex mutex;
  static std::map<Key, bool> chosen;
  const Key key{static_cast<int64_t>(part), g.n, g.h, g.w, g.cin, g.cout, g.kh, g.kw, g.oh, g.ow, g.stride,
                g.pad_top, g.pad_left};
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (auto it = chosen.find(key); it != chosen.end()) return it->second;
  }
  double best[2] = {1e300, 1e300};
  for (int round = 0; round < 3; ++round)
    for (int direct = 0; direct < 2; ++direct) {
      const auto start = std::chrono::steady_clock::now();
      run(direct == 1);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (round > 0) best[direct] = std::min(best[direct], s);
    }
  std::lock_guard<std::mutex> lock(mutex);
  return chosen.emplace(key, best[1] < best[0]).first->second;
}

// Scratch for one chunk's column matrix, kept per thread (and per type) between calls: a fresh
// 32 MiB allocation on every call would be page-faulted and zeroed by the OS again each time.
template <class T>
T* scratch(int64_t count) {
  thread_local std::vector<T> buffer;
  if (static_cast<int64_t>(buffer.size()) < count) buffer.resize(static_cast<size_t>(count));
  return buffer.data();
}

// col [samples*OH*OW, K] from x [samples, H, W, Cin]; padding reads as zero.
template <class T>
void im2col(const ConvGeometry& g, const T* x, int64_t samples, T* col) {
  const int64_t rows = samples * g.out_pixels(), k = g.k(), cin = g.cin;
#pragma omp parallel for if (rows * k > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t s = r / g.out_pixels(), oy = (r / g.ow) % g.oh, ox = r % g.ow;
    T* dst = col + r * k;
    // Taps kx of one kernel row read consecutive input pixels, which NHWC stores contiguously:
    // the in-bounds ones are one copy of (kx1 - kx0) * Cin elements, the rest zeros.
    const int64_t ix0 = ox * g.stride - g.pad_left;
    const int64_t kx0 = std::clamp<int64_t>(-ix0, 0, g.kw), kx1 = std::clamp<int64_t>(g.w - ix0, kx0, g.kw);
    for (int64_t ky = 0; ky < g.kh; ++ky, dst += g.kw * cin) {
      const int64_t iy = oy * g.stride - g.pad_top + ky;
      if (iy < 0 || iy >= g.h) {
        std::fill(dst, dst + g.kw * cin, T(0));
        continue;
      }
      std::fill(dst, dst + kx0 * cin, T(0));
      std::copy_n(x + ((s * g.h + iy) * g.w + ix0 + kx0) * cin, (kx1 - kx0) * cin, dst + kx0 * cin);
      std::fill(dst + kx1 * cin, dst + g.kw * cin, T(0));
    }
  }
}

// wt [Cin, KH, KW, Cout] = w [Cout, KH, KW, Cin] flipped in ky and kx, channels swapped.
template <class T>
void flipped_transposed(const ConvGeometry& g, const T* w, T* wt) {
  for (int64_t co = 0; co < g.cout; ++co)
    for (int64_t ky = 0; ky < g.kh; ++ky)
      for (int64_t kx = 0; kx < g.kw; ++kx)
        for (int64_t ci = 0; ci < g.cin; ++ci)
          wt[((ci * g.kh + (g.kh - 1 - ky)) * g.kw + (g.kw - 1 - kx)) * g.cout + co] =
              w[((co * g.kh + ky) * g.kw + kx) * g.cin + ci];
}

// dx [samples, H, W, Cin] (=|+=) the sum of the dcol [samples*OH*OW, K] entries that read each
// input element. Gathering per input pixel keeps threads on disjoint outputs.
template <class T>
void col2im(const ConvGeometry& g, const T* dcol, int64_t samples, T* dx, bool accumulate) {
  const int64_t pixels = samples * g.h * g.w, k = g.k(), cin = g.cin;
#pragma omp parallel if (pixels * cin * g.kh * g.kw > kParallelGrain)
  {
    std::vector<T> sum(static_cast<size_t>(cin));
#pragma omp for
    for (int64_t p = 0; p < pixels; ++p) {
      const int64_t s = p / (g.h * g.w), iy = (p / g.w) % g.h, ix = p % g.w;
      std::fill(sum.begin(), sum.end(), T(0));
      // Output row oy reads input row iy through kernel row ky when oy*stride - pad_top + ky == iy.
      for (int64_t ky = 0; ky < g.kh; ++ky) {
        const int64_t ty = iy + g.pad_top - ky;
        if (ty < 0 || ty % g.stride != 0 || ty / g.stride >= g.oh) continue;
        const int64_t oy = ty / g.stride;
        for (int64_t kx = 0; kx < g.kw; ++kx) {
          const int64_t tx = ix + g.pad_left - kx;
          if (tx < 0 || tx % g.stride != 0 || tx / g.stride >= g.ow) continue;
          const int64_t ox = tx / g.stride;
          const T* src = dcol + ((s * g.oh + oy) * g.ow + ox) * k + (ky * g.kw + kx) * cin;
          for (int64_t c = 0; c < cin; ++c) sum[static_cast<size_t>(c)] += src[c];
        }
      }
      for (int64_t c = 0; c < cin; ++c) cpu::put(dx, p * cin + c, sum[static_cast<size_t>(c)], accumulate);
    }
  }
}

// out [N*OH*OW, Cout] = conv(x, w) + bias, through im2col and GEMM.
template <class T>
void gemm_forward(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* out) {
  const int64_t k = g.k(), rows_per_sample = g.out_pixels();
  if (g.n == 0) return;
  // The bias is preloaded into out and the GEMMs add onto it (beta = 1).
  T beta = T(0);
  if (bias) {
    cpu::broadcast_rows(bias, g.n * rows_per_sample, g.cout, out);
    beta = T(1);
  }
  if (g.is_pointwise()) {  // out [N*H*W, Cout] = x [N*H*W, Cin] W^T
    cpu::gemm(false, true, g.n * rows_per_sample, g.cout, k, T(1), x, k, w, k, beta, out, g.cout);
    return;
  }
  const int64_t chunk = g.chunk_samples(sizeof(T));
  T* col = scratch<T>(chunk * rows_per_sample * k);
  for (int64_t n0 = 0; n0 < g.n; n0 += chunk) {
    const int64_t samples = std::min(chunk, g.n - n0), rows = samples * rows_per_sample;
    im2col(g, x + n0 * g.h * g.w * g.cin, samples, col);
    // out chunk [rows, Cout] = col [rows, K] W^T [K, Cout]
    cpu::gemm(false, true, rows, g.cout, k, T(1), col, k, w, k, beta, out + n0 * rows_per_sample * g.cout, g.cout);
  }
}

// dx [N, H, W, Cin] and dW [Cout, K] (each skipped when null; = or += by acc_x, acc_w) through
// im2col and GEMM.
template <class T>
void gemm_backward(const ConvGeometry& g, const T* x, const T* w, const T* gout, T* dx, bool acc_x, T* dw,
                   bool acc_w) {
  const int64_t k = g.k(), rows_per_sample = g.out_pixels();
  const bool want_x = dx != nullptr, want_w = dw != nullptr;
  if (g.n == 0) {  // no GEMM runs, but a written (not accumulated) dW must still become zero
    if (want_w && !acc_w) std::fill(dw, dw + g.cout * k, T(0));
    return;
  }

  if (g.is_pointwise()) {  // x is the column matrix [N*H*W, Cin]
    const int64_t rows = g.n * rows_per_sample;
    if (want_w)  // dW [Cout, Cin] = g^T [Cout, rows] x [rows, Cin]
      cpu::gemm(true, false, g.cout, k, rows, T(1), gout, g.cout, x, k, T(acc_w ? 1 : 0), dw, k);
    if (want_x)  // dx [rows, Cin] = g [rows, Cout] W [Cout, Cin]
      cpu::gemm(false, false, rows, k, g.cout, T(1), gout, g.cout, w, k, T(acc_x ? 1 : 0), dx, k);
    return;
  }
  if (!want_x && !want_w) return;

  // One scratch buffer per chunk: first the column matrix for dW, then reused for dcol (or for
  // the column matrix of g, whose rows are input pixels and columns KH*KW*Cout).
  const bool transpose = want_x && g.has_transpose();
  const ConvGeometry gt = g.transposed();
  std::vector<T> wt(transpose ? static_cast<size_t>(g.cout * k) : 0);
  if (transpose) flipped_transposed(g, w, wt.data());
  const int64_t chunk = transpose ? std::min(g.chunk_samples(sizeof(T)), gt.chunk_samples(sizeof(T)))
                                  : g.chunk_samples(sizeof(T));
  T* col = scratch<T>(chunk * std::max(rows_per_sample * k, gt.out_pixels() * gt.k()));
  for (int64_t n0 = 0; n0 < g.n; n0 += chunk) {
    const int64_t samples = std::min(chunk, g.n - n0), rows = samples * rows_per_sample;
    const T* g_chunk = gout + n0 * rows_per_sample * g.cout;  // [rows, Cout]
    if (want_w) {
      im2col(g, x + n0 * g.h * g.w * g.cin, samples, col);
      // dW [Cout, K] (+)= g^T [Cout, rows] col [rows, K]; only the first chunk may overwrite.
      const bool add = n0 > 0 || acc_w;
      cpu::gemm(true, false, g.cout, k, rows, T(1), g_chunk, g.cout, col, k, T(add ? 1 : 0), dw, k);
    }
    if (transpose) {
      // dx chunk [samples*H*W, Cin] = col(g) [samples*H*W, KH*KW*Cout] wt^T [KH*KW*Cout, Cin]
      im2col(gt, g_chunk, samples, col);
      cpu::gemm(false, true, samples * gt.out_pixels(), g.cin, gt.k(), T(1), col, gt.k(), wt.data(), gt.k(),
                T(acc_x ? 1 : 0), dx + n0 * g.h * g.w * g.cin, g.cin);
    } else if (want_x) {
      // dcol [rows, K] = g [rows, Cout] W [Cout, K]
      cpu::gemm(false, false, rows, k, g.cout, T(1), g_chunk, g.cout, w, k, T(0), col, k);
      col2im(g, col, samples, dx + n0 * g.h * g.w * g.cin, acc_x);
    }
  }
}

}  // namespace

void CpuBackend::conv2d_forward(const conv2d_fwd& args) {
  fit_threads_to_load();  // engine/cpu_threads.h: a narrower team when other processes hold cores
  cpu::dispatch_float(args.x.dtype(), "conv2d", [&](auto tag) {
    using T = decltype(tag);
    const ConvGeometry g = geometry(args.x, args.weight, args.out, args.stride, args.pad);
    const T* x = args.x.data<T>();
    const T* w = args.weight.data<T>();  // [Cout, K]
    const T* bias = args.bias.defined() ? args.bias.data<T>() : nullptr;
    T* out = args.out.data<T>();  // [N*OH*OW, Cout]
    if constexpr (std::is_same_v<T, float>) {
      auto run = [&](bool direct) {
        if (direct && winograd_here(g, ConvPart::Forward))
          cpu::winograd_conv2d_forward(direct_shape(g), x, w, bias, out);
        else if (direct)
          cpu::direct_conv2d_forward(direct_shape(g), x, w, bias, out);
        else
          gemm_forward(g, x, w, bias, out);
      };
      if (use_direct(g, ConvPart::Forward, run)) return run(true);
    }
    gemm_forward(g, x, w, bias, out);
  });
}

void CpuBackend::conv2d_backward(const conv2d_bwd& args) {
  cpu::dispatch_float(args.x.dtype(), "conv2d", [&](auto tag) {
    using T = decltype(tag);
    const ConvGeometry g = geometry(args.x, args.weight, args.grad_out, args.stride, args.pad);
    const T* x = args.x.data<T>();
    const T* w = args.weight.data<T>();       // [Cout, K]
    const T* gout = args.grad_out.data<T>();  // [N*OH*OW, Cout]
    const bool acc_x = args.grad_x.accumulate, acc_w = args.grad_weight.accumulate;
    T* dx = args.grad_x.wanted() ? args.grad_x.tensor.data<T>() : nullptr;            // [N, H, W, Cin]
    T* dw = args.grad_weight.wanted() ? args.grad_weight.tensor.data<T>() : nullptr;  // [Cout, K]

    if (args.grad_bias.wanted())
      cpu::column_sums(gout, g.n * g.out_pixels(), g.cout, args.grad_bias.tensor.data<T>(), args.grad_bias.accumulate);
    if constexpr (std::is_same_v<T, float>) {
      // Each gradient picks its method; a trial (timed mode) writes into scratch, never the slots.
      bool direct_x = false, direct_w = false;
      if (dx && cpu::direct_dx_supported(direct_shape(g))) {
        std::vector<float> trial;  // allocated by the first trial only
        direct_x = use_direct(g, ConvPart::Dx, [&](bool direct) {
          trial.resize(static_cast<size_t>(g.n * g.h * g.w * g.cin));
          if (direct && winograd_here(g, ConvPart::Dx))
            cpu::winograd_conv2d_backward_x(direct_shape(g), gout, w, trial.data(), false);
          else if (direct)
            cpu::direct_conv2d_backward_x(direct_shape(g), gout, w, trial.data(), false);
          else
            gemm_backward<float>(g, x, w, gout, trial.data(), false, nullptr, false);
        });
      }
      if (dw) {
        std::vector<float> trial;
        direct_w = use_direct(g, ConvPart::Dw, [&](bool direct) {
          trial.resize(static_cast<size_t>(g.cout * g.k()));
          if (direct && winograd_here(g, ConvPart::Dw))
            cpu::winograd_conv2d_backward_w(direct_shape(g), x, gout, trial.data(), false);
          else if (direct)
            cpu::direct_conv2d_backward_w(direct_shape(g), x, gout, trial.data(), false);
          else
            gemm_backward<float>(g, x, w, gout, nullptr, false, trial.data(), false);
        });
      }
      if (direct_x && winograd_here(g, ConvPart::Dx))
        cpu::winograd_conv2d_backward_x(direct_shape(g), gout, w, dx, acc_x);
      else if (direct_x)
        cpu::direct_conv2d_backward_x(direct_shape(g), gout, w, dx, acc_x);
      if (direct_w && winograd_here(g, ConvPart::Dw))
        cpu::winograd_conv2d_backward_w(direct_shape(g), x, gout, dw, acc_w);
      else if (direct_w)
        cpu::direct_conv2d_backward_w(direct_shape(g), x, gout, dw, acc_w);
      gemm_backward(g, x, w, gout, direct_x ? nullptr : dx, acc_x, direct_w ? nullptr : dw, acc_w);
      return;
    }
    gemm_backward(g, x, w, gout, dx, acc_x, dw, acc_w);
  });
}

}  // namespace ddpm
