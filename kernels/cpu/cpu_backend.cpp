// The CPU backend instance and its plain kernels: fill, fill_random, cast, sum_squares.
#include "kernels/cpu/cpu_backend.h"

#include "engine/philox.h"

namespace ddpm {

using cpu::kParallelGrain;

Backend& cpu_backend() {
  static CpuBackend backend;
  return backend;
}

void CpuBackend::fill(const fill_args& args) {
  const int64_t n = args.out.numel();
  if (args.out.dtype() == DType::BF16) {
    uint16_t bits = float_to_bf16_bits(static_cast<float>(args.value));
    uint16_t* out = static_cast<uint16_t*>(args.out.raw());
    for (int64_t i = 0; i < n; ++i) out[i] = bits;
    return;
  }
  cpu::dispatch_float(args.out.dtype(), "fill", [&](auto tag) {
    using T = decltype(tag);
    T* out = args.out.data<T>();
    const T v = static_cast<T>(args.value);
#pragma omp parallel for if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) out[i] = v;
  });
}

void CpuBackend::fill_random(const fill_random_args& args) {
  cpu::dispatch_float(args.out.dtype(), "fill_random", [&](auto tag) {
    using T = decltype(tag);
    T* out = args.out.data<T>();
    const int64_t n = args.out.numel();
    const bool normal = args.distribution == Distribution::Normal;
    // normal: a + b z (mean, stddev); uniform: a + (b - a) u (low, high)
    const double shift = args.a, width = normal ? args.b : args.b - args.a;
    cpu::for_each_draw(n, normal, args.seed, args.stream,
                       [&](int64_t i, float r) {
                         // an explicit fma: the CUDA kernel's is the same, whatever either compiler contracts
                         out[i] = static_cast<T>(std::fma(width, static_cast<double>(r), shift));
                       });
  });
}

namespace {
double load(const void* p, int64_t i, DType t) {
  switch (t) {
    case DType::F32: return static_cast<const float*>(p)[i];
    case DType::F64: return static_cast<const double*>(p)[i];
    case DType::BF16: return bf16_bits_to_float(static_cast<const uint16_t*>(p)[i]);
  }
  return 0;
}
void store(void* p, int64_t i, DType t, double v) {
  switch (t) {
    case DType::F32: static_cast<float*>(p)[i] = static_cast<float>(v); return;
    case DType::F64: static_cast<double*>(p)[i] = v; return;
    case DType::BF16: static_cast<uint16_t*>(p)[i] = float_to_bf16_bits(static_cast<float>(v)); return;
  }
}
}  // namespace

void CpuBackend::cast(const cast_args& args) {
  DDPM_CHECK(args.in.numel() == args.out.numel(), "cast: ", args.in.describe(), " into ", args.out.describe());
  const int64_t n = args.in.numel();
  const void* in = args.in.raw();
  void* out = args.out.raw();
  const DType from = args.in.dtype(), to = args.out.dtype();
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) store(out, i, to, load(in, i, from));
}

void CpuBackend::sum_squares(const sum_squares_args& args) {
  cpu::dispatch_float(args.x.dtype(), "sum_squares", [&](auto tag) {
    using T = decltype(tag);
    const T* x = args.x.data<T>();
    const int64_t n = args.x.numel();
    double total = 0;
#pragma omp parallel for reduction(+ : total) if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) total += static_cast<double>(x[i]) * static_cast<double>(x[i]);
    if (args.out.defined()) {
      DDPM_CHECK(args.out.dtype() == DType::F64 && args.out.numel() == 1, "sum_squares: out must be float64 [1], got ",
                 args.out.describe());
      args.out.data<double>()[0] = total;
    } else {
      DDPM_CHECK(args.result != nullptr, "sum_squares: no result pointer or tensor given");
      *args.result = total;
    }
  });
}

}  // namespace ddpm
