// dropout (mask redrawn from Philox in the backward) and the sinusoidal timestep embedding.
#include <cmath>

#include "engine/philox.h"
#include "kernels/cpu/cpu_backend.h"

namespace ddpm {

using cpu::kParallelGrain;
using cpu::put;

namespace {
// out[i] = in[i] * keep(i) / (1 - p), which is both the forward and the backward.
template <class T>
void masked_scale(const T* in, T* out, int64_t n, double p, uint64_t seed, uint64_t stream, uint64_t offset, bool acc) {
  const T keep_scale = static_cast<T>(1.0 / (1.0 - p));
  const float threshold = static_cast<float>(p);
  cpu::for_each_draw(
      n, false, seed, stream, [&](int64_t i, float u) { put(out, i, u >= threshold ? in[i] * keep_scale : T(0), acc); },
      offset);
}

// f_i = exp(-ln(10000) i / (half - 1)), the DDPM embedding's frequencies.
template <class T>
T frequency(int i, int half) {
  return static_cast<T>(std::exp(-std::log(10000.0) * i / (half - 1)));
}
}  // namespace

void CpuBackend::dropout_forward(const dropout_fwd& args) {
  cpu::dispatch_float(args.x.dtype(), "dropout", [&](auto tag) {
    using T = decltype(tag);
    masked_scale(args.x.data<T>(), args.out.data<T>(), args.x.numel(), args.p, args.seed, args.stream, args.offset, false);
  });
}

void CpuBackend::dropout_backward(const dropout_bwd& args) {
  if (!args.grad_x.wanted()) return;
  cpu::dispatch_float(args.grad_out.dtype(), "dropout", [&](auto tag) {
    using T = decltype(tag);
    masked_scale(args.grad_out.data<T>(), args.grad_x.tensor.data<T>(), args.grad_out.numel(), args.p,
                 args.seed, args.stream, args.offset, args.grad_x.accumulate);
  });
}

void CpuBackend::timestep_embedding_forward(const timestep_embedding_fwd& args) {
  cpu::dispatch_float(args.t.dtype(), "timestep_embedding", [&](auto tag) {
    using T = decltype(tag);
    const int64_t n = args.t.dim(0);
    const int half = args.dim / 2;
    const T* t = args.t.data<T>();
    T* out = args.out.data<T>();
    for (int64_t b = 0; b < n; ++b)
      for (int i = 0; i < half; ++i) {
        T arg = t[b] * frequency<T>(i, half);
        out[b * args.dim + i] = std::sin(arg);
        out[b * args.dim + half + i] = std::cos(arg);
      }
  });
}

void CpuBackend::timestep_embedding_backward(const timestep_embedding_bwd& args) {
  if (!args.grad_t.wanted()) return;
  cpu::dispatch_float(args.t.dtype(), "timestep_embedding", [&](auto tag) {
    using T = decltype(tag);
    const int64_t n = args.t.dim(0);
    const int half = args.dim / 2;
    const T* t = args.t.data<T>();
    const T* g = args.grad_out.data<T>();
    T* gt = args.grad_t.tensor.data<T>();
    for (int64_t b = 0; b < n; ++b) {
      T total = 0;
      for (int i = 0; i < half; ++i) {
        T f = frequency<T>(i, half), arg = t[b] * f;
        total += f * (g[b * args.dim + i] * std::cos(arg) - g[b * args.dim + half + i] * std::sin(arg));
      }
      put(gt, b, total, args.grad_t.accumulate);
    }
  });
}

}  // namespace ddpm
