// Adam/AdamW and EMA over the flat parameter buffer.
#include <cmath>

#include "kernels/cpu/cpu_backend.h"

namespace ddpm {

using cpu::kParallelGrain;

void CpuBackend::adam_step(const adam_step_args& args) {
  cpu::dispatch_float(args.params.dtype(), "adam_step", [&](auto tag) {
    using T = decltype(tag);
    T* p = args.params.data<T>();
    const T* g = args.grads.data<T>();
    T* m = args.m.data<T>();
    T* v = args.v.data<T>();
    const int64_t n = args.params.numel();
    const double b1 = args.beta1, b2 = args.beta2;
    const double step = static_cast<double>(args.step);
    const double bias1 = 1.0 - std::pow(b1, step), bias2 = 1.0 - std::pow(b2, step);
    const double lr = args.lr, wd = args.weight_decay, eps = args.eps, gs = args.grad_scale;
    const bool decoupled = args.decoupled_weight_decay;
    T* ema = args.ema.defined() ? args.ema.data<T>() : nullptr;
    const double ema_decay = args.ema_decay;
#pragma omp parallel for if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) {
      double param = p[i];
      double grad = gs * static_cast<double>(g[i]);
      if (decoupled)
        param -= lr * wd * param;  // AdamW: decay the weight, not the gradient
      else
        grad += wd * param;  // Adam with L2 regularization
      double mi = b1 * static_cast<double>(m[i]) + (1 - b1) * grad;
      double vi = b2 * static_cast<double>(v[i]) + (1 - b2) * grad * grad;
      m[i] = static_cast<T>(mi);
      v[i] = static_cast<T>(vi);
      p[i] = static_cast<T>(param - lr * (mi / bias1) / (std::sqrt(vi / bias2) + eps));
      if (ema) ema[i] = static_cast<T>(ema_decay * static_cast<double>(ema[i]) + (1 - ema_decay) * static_cast<double>(p[i]));
    }
  });
}

void CpuBackend::ema_update(const ema_update_args& args) {
  cpu::dispatch_float(args.params.dtype(), "ema_update", [&](auto tag) {
    using T = decltype(tag);
    T* ema = args.ema.data<T>();
    const T* p = args.params.data<T>();
    const T d = static_cast<T>(args.decay);
    const int64_t n = args.params.numel();
#pragma omp parallel for if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) ema[i] = d * ema[i] + (T(1) - d) * p[i];
  });
}

}  // namespace ddpm
