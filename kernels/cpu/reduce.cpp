// sum (and mean, as sum with a factor) and mse over the trailing axes: x viewed as [outer, inner].
#include "kernels/cpu/cpu_backend.h"

namespace ddpm {

using cpu::kParallelGrain;
using cpu::put;

namespace {
struct Split {
  int64_t outer, inner;
};
Split split(const Tensor& x, int keep) {
  int64_t outer = 1;
  for (int i = 0; i < keep; ++i) outer *= x.dim(i);
  return {outer, outer ? x.numel() / outer : 0};
}

// out[o] = factor * sum_i f(o * inner + i), accumulated in double.
template <class T, class F>
void reduce_rows(Split s, double factor, T* out, F f) {
#pragma omp parallel for if (s.outer * s.inner > kParallelGrain)
  for (int64_t o = 0; o < s.outer; ++o) {
    double total = 0;
    for (int64_t i = 0; i < s.inner; ++i) total += static_cast<double>(f(o * s.inner + i));
    out[o] = static_cast<T>(factor * total);
  }
}
}  // namespace

void CpuBackend::sum_forward(const sum_fwd& args) {
  cpu::dispatch_float(args.x.dtype(), "sum", [&](auto tag) {
    using T = decltype(tag);
    const T* x = args.x.data<T>();
    reduce_rows(split(args.x, args.keep), args.factor, args.out.data<T>(), [x](int64_t i) { return x[i]; });
  });
}

void CpuBackend::sum_backward(const sum_bwd& args) {
  if (!args.grad_x.wanted()) return;
  cpu::dispatch_float(args.grad_out.dtype(), "sum", [&](auto tag) {
    using T = decltype(tag);
    Split s = split(args.grad_x.tensor, args.keep);
    const T* g = args.grad_out.data<T>();
    T* gx = args.grad_x.tensor.data<T>();
    const T f = static_cast<T>(args.factor);
    const bool acc = args.grad_x.accumulate;
#pragma omp parallel for if (s.outer * s.inner > kParallelGrain)
    for (int64_t o = 0; o < s.outer; ++o)
      for (int64_t i = 0; i < s.inner; ++i) put(gx, o * s.inner + i, f * g[o], acc);
  });
}

void CpuBackend::mse_forward(const mse_fwd& args) {
  cpu::dispatch_float(args.a.dtype(), "mse", [&](auto tag) {
    using T = decltype(tag);
    const T* a = args.a.data<T>();
    const T* b = args.b.data<T>();
    Split s = split(args.a, args.keep);
    reduce_rows(s, s.inner ? 1.0 / static_cast<double>(s.inner) : 0.0, args.out.data<T>(), [a, b](int64_t i) {
      T d = a[i] - b[i];
      return d * d;
    });
  });
}

void CpuBackend::mse_backward(const mse_bwd& args) {
  cpu::dispatch_float(args.a.dtype(), "mse", [&](auto tag) {
    using T = decltype(tag);
    Split s = split(args.a, args.keep);
    const T* a = args.a.data<T>();
    const T* b = args.b.data<T>();
    const T* g = args.grad_out.data<T>();
    T* ga = args.grad_a.wanted() ? args.grad_a.tensor.data<T>() : nullptr;
    T* gb = args.grad_b.wanted() ? args.grad_b.tensor.data<T>() : nullptr;
    const T two_over_n = static_cast<T>(2.0 / static_cast<double>(s.inner));
#pragma omp parallel for if (s.outer * s.inner > kParallelGrain)
    for (int64_t o = 0; o < s.outer; ++o)
      for (int64_t i = o * s.inner; i < (o + 1) * s.inner; ++i) {
        T d = two_over_n * (a[i] - b[i]) * g[o];
        if (ga) put(ga, i, d, args.grad_a.accumulate);
        if (gb) put(gb, i, -d, args.grad_b.accumulate);
      }
  });
}

}  // namespace ddpm
