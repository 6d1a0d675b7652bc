// global_avg_pool and softmax_cross_entropy: the pooling and the loss of the image classifier.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/cpu/cpu_backend.h"

namespace ddpm {

using cpu::kParallelGrain;
using cpu::put;

void CpuBackend::global_avg_pool_forward(const global_avg_pool_fwd& args) {
  cpu::dispatch_float(args.x.dtype(), "global_avg_pool", [&](auto tag) {
    using T = decltype(tag);
    // x viewed as [N, P, C], P = H W; out[n, c] = mean over p, accumulated in double.
    const int64_t n = args.x.dim(0), p = args.x.dim(1) * args.x.dim(2), c = args.x.dim(3);
    const T* x = args.x.data<T>();
    T* out = args.out.data<T>();
    const double inv = 1.0 / static_cast<double>(p);
#pragma omp parallel for if (args.x.numel() > kParallelGrain)
    for (int64_t b = 0; b < n; ++b) {
      std::vector<double> total(static_cast<size_t>(c), 0.0);
      const T* sample = x + b * p * c;
      for (int64_t q = 0; q < p; ++q)
        for (int64_t ch = 0; ch < c; ++ch) total[static_cast<size_t>(ch)] += static_cast<double>(sample[q * c + ch]);
      for (int64_t ch = 0; ch < c; ++ch) out[b * c + ch] = static_cast<T>(total[static_cast<size_t>(ch)] * inv);
    }
  });
}

void CpuBackend::global_avg_pool_backward(const global_avg_pool_bwd& args) {
  if (!args.grad_x.wanted()) return;
  cpu::dispatch_float(args.grad_out.dtype(), "global_avg_pool", [&](auto tag) {
    using T = decltype(tag);
    const Tensor& gx_t = args.grad_x.tensor;
    const int64_t n = gx_t.dim(0), p = gx_t.dim(1) * gx_t.dim(2), c = gx_t.dim(3);
    const T* g = args.grad_out.data<T>();
    T* gx = gx_t.data<T>();
    const T inv = static_cast<T>(1.0 / static_cast<double>(p));
    const bool acc = args.grad_x.accumulate;
#pragma omp parallel for if (gx_t.numel() > kParallelGrain)
    for (int64_t row = 0; row < n * p; ++row)  // row = (sample, pixel)
      for (int64_t ch = 0; ch < c; ++ch) put(gx, row * c + ch, inv * g[(row / p) * c + ch], acc);
  });
}

namespace {
// The class index a label holds, or -1 when it is not an integer in [0, k).
int64_t class_of(float label, int64_t k) {
  if (!(label >= 0.0f) || !(label < static_cast<float>(k)) || label != std::floor(label)) return -1;
  return static_cast<int64_t>(label);
}
}  // namespace

void CpuBackend::softmax_cross_entropy_forward(const softmax_cross_entropy_fwd& args) {
  cpu::dispatch_float(args.logits.dtype(), "softmax_cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    using S = std::conditional_t<std::is_same_v<T, double>, double, float>;  // the lse dtype
    const int64_t n = args.logits.dim(0), k = args.logits.dim(1);
    const T* x = args.logits.data<T>();
    const float* labels = args.labels.data<float>();
    T* out = args.out.data<T>();
    S* lse = args.lse.data<S>();
#pragma omp parallel for if (args.logits.numel() > kParallelGrain)
    for (int64_t b = 0; b < n; ++b) {
      const T* row = x + b * k;
      double top = static_cast<double>(row[0]);
      for (int64_t j = 1; j < k; ++j) top = std::max(top, static_cast<double>(row[j]));
      double total = 0;  // sum of exp(x - max): every term <= 1, the largest exactly 1
      for (int64_t j = 0; j < k; ++j) total += std::exp(static_cast<double>(row[j]) - top);
      const double log_sum = top + std::log(total);
      lse[b] = static_cast<S>(log_sum);
      const int64_t y = class_of(labels[b], k);
      out[b] = y < 0 ? std::numeric_limits<T>::quiet_NaN() : static_cast<T>(log_sum - static_cast<double>(row[y]));
    }
  });
}

void CpuBackend::softmax_cross_entropy_backward(const softmax_cross_entropy_bwd& args) {
  if (!args.grad_logits.wanted()) return;
  cpu::dispatch_float(args.logits.dtype(), "softmax_cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    using S = std::conditional_t<std::is_same_v<T, double>, double, float>;
    const int64_t n = args.logits.dim(0), k = args.logits.dim(1);
    const T* x = args.logits.data<T>();
    const float* labels = args.labels.data<float>();
    const T* g = args.grad_out.data<T>();
    const S* lse = args.lse.data<S>();
    T* gx = args.grad_logits.tensor.data<T>();
    const bool acc = args.grad_logits.accumulate;
#pragma omp parallel for if (args.logits.numel() > kParallelGrain)
    for (int64_t b = 0; b < n; ++b) {
      const int64_t y = class_of(labels[b], k);
      for (int64_t j = 0; j < k; ++j) {
        const double softmax = std::exp(static_cast<double>(x[b * k + j]) - static_cast<double>(lse[b]));
        const double d = y < 0 ? std::numeric_limits<double>::quiet_NaN() : softmax - (j == y ? 1.0 : 0.0);
        put(gx, b * k + j, static_cast<T>(static_cast<double>(g[b]) * d), acc);
      }
    }
  });
}

}  // namespace ddpm
