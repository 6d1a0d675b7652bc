// The direct convolution's driver: instruction-set dispatch, input padding, weight packing and
// the split of the work over the OpenMP team (kernels/cpu/conv2d_direct.h).
//
// Forward: the input is copied once into a zero-bordered scratch [N, HP, WP, Cin] (skipped when
// no pad is needed), so the micro-kernels read every tap without bounds checks; the weights are
// packed into blocks of 2 * lanes output channels, [block][KH][KW][Cin][2 * lanes] (zeros past
// Cout), so a tap's input channel reads one contiguous run of weights. The team splits output rows
// x channel blocks. Bias is loaded into the accumulators, so it costs no extra pass.
// dx (stride 1): the same kernels on the output gradient padded by (KH - 1 - pad_top, KW - 1 -
// pad_left), with the weights packed flipped and transposed (Cin <-> Cout).
// dW: the team splits (tap, output-channel block) pairs; every thread walks the samples in order
// and adds each sample's sums into its own dW entries, so no partial copies are reduced and the
// result does not depend on the number of threads.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cpu/conv2d_direct.h"

namespace ddpm::cpu {

namespace {

CpuIsa detect_isa() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return CpuIsa::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CpuIsa::Avx2;
#endif
  return CpuIsa::Generic;
}

std::atomic<int> g_isa{-1};  // -1: not chosen yet, then the best level

// DDPM_CPU_ISA=generic|avx2|avx512 lowers the level (benchmarks of the lesser kernels); unset or
// any other value: the best this CPU runs.
CpuIsa isa_from_environment() {
  const char* env = std::getenv("DDPM_CPU_ISA");
  const std::string name = env ? env : "";
  const CpuIsa asked = name == "generic" ? CpuIsa::Generic : name == "avx2" ? CpuIsa::Avx2 : CpuIsa::Avx512;
  return std::min(asked, best_cpu_isa());
}

const DirectKernels& kernels() {
  int isa = g_isa.load();
  if (isa < 0) {
    isa = static_cast<int>(isa_from_environment());
    g_isa.store(isa);
  }
  switch (static_cast<CpuIsa>(isa)) {
    case CpuIsa::Avx512: return kDirectKernelsAvx512;
    case CpuIsa::Avx2: return kDirectKernelsAvx2;
    case CpuIsa::Generic: break;
  }
  return kDirectKernelsGeneric;
}

// Per-thread scratch kept between calls (see scratch() in conv2d.cpp); `slot` keeps the padded
// input and the packed weights apart.
float* scratch(int slot, int64_t count) {
  thread_local std::vector<float> buffers[2];
  std::vector<float>& b = buffers[slot];
  if (static_cast<int64_t>(b.size()) < count) b.resize(static_cast<size_t>(count));
  return b.data();
}

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// dst [N, HP, WP, CS] = src [N, H, W, C] placed at (top, left), zero elsewhere (including
// channels C .. CS); source rows and columns that fall outside the window are left out.
void pad_into(const float* src, int64_t n, int64_t h, int64_t w, int64_t c, int64_t top, int64_t left,
              float* dst, int64_t hp, int64_t wp, int64_t cs) {
#pragma omp parallel for if (n * hp * wp * cs > (1 << 14))
  for (int64_t r = 0; r < n * hp; ++r) {
    const int64_t s = r / hp, y = r % hp, iy = y - top;
    float* d = dst + r * wp * cs;
    if (iy < 0 || iy >= h) {
      std::fill(d, d + wp * cs, 0.0f);
      continue;
    }
    const int64_t x0 = std::clamp<int64_t>(left, 0, wp), x1 = std::clamp<int64_t>(left + w, x0, wp);
    std::fill(d, d + x0 * cs, 0.0f);
    const float* srow = src + (s * h + iy) * w * c;
    if (cs == c) {
      std::memcpy(d + x0 * cs, srow + (x0 - left) * c, static_cast<size_t>((x1 - x0) * c) * sizeof(float));
    } else {
      for (int64_t x = x0; x < x1; ++x) {
        std::memcpy(d + x * cs, srow + (x - left) * c, static_cast<size_t>(c) * sizeof(float));
        std::fill(d + x * cs + c, d + (x + 1) * cs, 0.0f);
      }
    }
    std::fill(d + x1 * cs, d + wp * cs, 0.0f);
  }
}

// The padded view of src the kernels read: rows 0 .. (OH - 1) * stride + KH, columns likewise.
// Returns src itself (with its own pitch) when no pad, crop of channels or extra channels is needed.
struct Padded {
  const float* data;
  int64_t hp, wp, cs;
};
Padded padded(const float* src, int64_t n, int64_t h, int64_t w, int64_t c, int64_t top, int64_t left, int64_t oh,
              int64_t ow, int64_t stride, int64_t kh, int64_t kw, int64_t cs) {
  const int64_t hp = (oh - 1) * stride + kh, wp = (ow - 1) * stride + kw;
  if (top == 0 && left == 0 && hp <= h && wp <= w && cs == c) return {src, h, w, c};
  float* buffer = scratch(0, n * hp * wp * cs);
  pad_into(src, n, h, w, c, top, left, buffer, hp, wp, cs);
  return {buffer, hp, wp, cs};
}

// packed [blocks][KH][KW][Cin][B] from weights read through at(co, ky, kx, ci); zeros past Cout.
template <class At>
float* pack(int64_t cout, int64_t kh, int64_t kw, int64_t cin, int64_t block, At at) {
  const int64_t blocks = (cout + block - 1) / block;
  float* packed = scratch(1, blocks * kh * kw * cin * block);
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t ky = 0; ky < kh; ++ky)
      for (int64_t kx = 0; kx < kw; ++kx)
        for (int64_t ci = 0; ci < cin; ++ci) {
          float* dst = packed + (((b * kh + ky) * kw + kx) * cin + ci) * block;
          for (int64_t j = 0; j < block; ++j) {
            const int64_t co = b * block + j;
            dst[j] = co < cout ? at(co, ky, kx, ci) : 0.0f;
          }
        }
  return packed;
}

// Runs the forward kernels over every (sample, pixel chunk, block) of a; a chunk is 4 tiles' worth
// of pixels (the last one of a sample shorter), enough items to share among threads.
void run_forward(const DirectKernels& k, const DirectFwdArgs& a, int64_t n) {
  const int64_t blocks = (a.cout + 2 * k.lanes - 1) / (2 * k.lanes), pixels = a.oh * a.ow;
  const int64_t chunk = 4 * k.tile, chunks = (pixels + chunk - 1) / chunk, items = n * chunks * blocks;
  const int64_t work = n * pixels * blocks * a.kh * a.kw * a.cin * 2 * k.lanes;
#pragma omp parallel for schedule(static) if (work > (1 << 16))
  for (int64_t i = 0; i < items; ++i) {
    const int64_t block = i % blocks, c = (i / blocks) % chunks, s = i / blocks / chunks;
    k.forward_pixels(a, s, c * chunk, std::min(pixels, (c + 1) * chunk), block);
  }
}

}  // namespace

const char* isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::Avx512: return "avx512";
    case CpuIsa::Avx2: return "avx2";
    case CpuIsa::Generic: break;
  }
  return "generic";
}

CpuIsa best_cpu_isa() {
  static const CpuIsa best = detect_isa();
  return best;
}

const DirectKernels& direct_kernels() { return kernels(); }

CpuIsa set_conv2d_direct_isa(CpuIsa isa) {
  const CpuIsa chosen = std::min(isa, best_cpu_isa());
  const int previous = g_isa.exchange(static_cast<int>(chosen));
  return previous < 0 ? isa_from_environment() : static_cast<CpuIsa>(previous);
}

void direct_conv2d_forward(const DirectConvShape& s, const float* x, const float* w, const float* bias, float* out) {
  if (s.n == 0) return;
  const DirectKernels& k = kernels();
  const Padded in = padded(x, s.n, s.h, s.w, s.cin, s.pad_top, s.pad_left, s.oh, s.ow, s.stride, s.kh, s.kw, s.cin);
  // w [Cout, KH, KW, Cin]
  const float* packed = pack(s.cout, s.kh, s.kw, s.cin, 2 * k.lanes, [&](int64_t co, int64_t ky, int64_t kx, int64_t ci) {
    return w[((co * s.kh + ky) * s.kw + kx) * s.cin + ci];
  });
  const DirectFwdArgs a{in.data, in.hp, in.wp, in.cs, s.cin, packed, s.kh, s.kw, s.stride, out, s.oh, s.ow, s.cout,
                        bias, false};
  run_forward(k, a, s.n);
}

bool direct_dx_supported(const DirectConvShape& s) {
  return s.stride == 1 && s.pad_top <= s.kh - 1 && s.pad_left <= s.kw - 1;
}

void direct_conv2d_backward_x(const DirectConvShape& s, const float* g, const float* w, float* dx, bool accumulate) {
  if (s.n == 0) return;
  const DirectKernels& k = kernels();
  // g [N, OH, OW, Cout] padded so that dx [N, H, W, Cin] is its stride-1 "valid" convolution.
  const Padded in = padded(g, s.n, s.oh, s.ow, s.cout, s.kh - 1 - s.pad_top, s.kw - 1 - s.pad_left, s.h, s.w, 1, s.kh,
                           s.kw, s.cout);
  // The transposed convolution's weight (ci, ky, kx, co) is w (co, KH-1-ky, KW-1-kx, ci).
  const float* packed = pack(s.cin, s.kh, s.kw, s.cout, 2 * k.lanes, [&](int64_t ci, int64_t ky, int64_t kx, int64_t co) {
    return w[((co * s.kh + (s.kh - 1 - ky)) * s.kw + (s.kw - 1 - kx)) * s.cin + ci];
  });
  const DirectFwdArgs a{in.data, in.hp, in.wp, in.cs, s.cout, packed, s.kh, s.kw, 1, dx, s.h, s.w, s.cin,
                        nullptr, accumulate};
  run_forward(k, a, s.n);
}

void direct_conv2d_backward_w(const DirectConvShape& s, const float* x, const float* g, float* dw, bool accumulate) {
  const int64_t taps = s.kh * s.kw, dw_size = s.cout * taps * s.cin;
  if (s.n == 0) {
    if (!accumulate) std::fill(dw, dw + dw_size, 0.0f);
    return;
  }
  const DirectKernels& k = kernels();
  const Padded in = padded(x, s.n, s.h, s.w, s.cin, s.pad_top, s.pad_left, s.oh, s.ow, s.stride, s.kh, s.kw,
                           round_up(s.cin, k.lanes));
  const DirectDwArgs a{in.data, in.hp, in.wp, in.cs, s.cin, g, s.oh, s.ow, s.cout, s.kh, s.kw, s.stride, dw};
  const int64_t co_blocks = (s.cout + k.dw_block - 1) / k.dw_block, items = taps * co_blocks;
  const int64_t work = s.n * s.oh * s.ow * dw_size;
  // Samples go in groups of at least 256 output pixels, so small images still give each
  // accumulator load and store a long run of FMAs.
  const int64_t group = std::clamp<int64_t>(256 / std::max<int64_t>(s.oh * s.ow, 1), 1, s.n);
#pragma omp parallel if (work > (1 << 16))
  for (int64_t n0 = 0; n0 < s.n; n0 += group) {
    // A static schedule hands each thread the same items for every group, so no thread reads an
    // entry another one writes.
#pragma omp for schedule(static) nowait
    for (int64_t i = 0; i < items; ++i) {
      const int64_t tap = i / co_blocks, co0 = (i % co_blocks) * k.dw_block;
      k.dw_samples(a, n0, std::min(n0 + group, s.n), tap / s.kw, tap % s.kw, co0, n0 == 0 && !accumulate);
    }
  }
}

}  // namespace ddpm::cpu
