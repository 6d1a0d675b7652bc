// Adam/AdamW and EMA over the flat parameter buffer, and mixed precision's gradient fold.
#include <cmath>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/optim_math.h"

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
    double bias1 = 1.0 - std::pow(b1, step), bias2 = 1.0 - std::pow(b2, step);
    double lr = args.lr;
    const double wd = args.weight_decay, eps = args.eps, gs = args.grad_scale;
    // A captured step's values come from tensors (op_args.h); on the CPU they are read here.
    if (args.scalars.defined()) {
      DDPM_CHECK(args.scalars.dtype() == DType::F64 && args.scalars.numel() == om::kAdamScalarCount,
                 "adam_step: scalars must be float64 [", om::kAdamScalarCount, "], got ", args.scalars.describe());
      const double* s = args.scalars.data<double>();
      lr = s[om::kLr];
      bias1 = s[om::kBias1];
      bias2 = s[om::kBias2];
    }
    // Clipping from the device sum of squares: clip_grad_norm's in-place scale, fused (T(factor) * g).
    bool clipping = false;
    T clip = T(1);
    if (args.grad_sum_squares.defined() && args.clip_norm > 0) {
      DDPM_CHECK(args.grad_sum_squares.dtype() == DType::F64 && args.grad_sum_squares.numel() == 1 && gs == 1.0,
                 "adam_step: grad_sum_squares must be float64 [1] with grad_scale 1, got ",
                 args.grad_sum_squares.describe(), " and grad_scale ", gs);
      const double factor = om::clip_factor(args.grad_sum_squares.data<double>()[0], args.clip_norm);
      clipping = factor != 1.0;
      clip = static_cast<T>(factor);
    }
    const bool decoupled = args.decoupled_weight_decay;
    T* ema = args.ema.defined() ? args.ema.data<T>() : nullptr;
    const double ema_decay = args.ema_decay;
    // Mixed precision's compute copy of the new weights: bfloat16 (round to nearest even from the
    // float32 value, as the cast kernel does) or float32 under float64 masters.
    void* copy = args.params_copy.defined() ? args.params_copy.raw() : nullptr;
    const DType copy_dtype = copy ? args.params_copy.dtype() : DType::F32;
    if (copy)
      DDPM_CHECK(args.params_copy.numel() == n && copy_dtype != args.params.dtype() &&
                     (copy_dtype == DType::BF16 || copy_dtype == DType::F32),
                 "adam_step: params_copy must hold ", n, " elements in a dtype narrower than the ",
                 dtype_name(args.params.dtype()), " parameters, got ", args.params_copy.describe());
#pragma omp parallel for if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) {
      double param = p[i];
      double grad = gs * static_cast<double>(clipping ? clip * g[i] : g[i]);
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
      if (copy) {
        const float narrow = static_cast<float>(p[i]);
        if (copy_dtype == DType::BF16)
          static_cast<uint16_t*>(copy)[i] = float_to_bf16_bits(narrow);
        else
          static_cast<float*>(copy)[i] = narrow;
      }
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

void CpuBackend::accumulate_cast(const accumulate_cast_args& args) {
  const int64_t n = args.in.numel();
  DDPM_CHECK(args.out.numel() == n && args.in.dtype() != args.out.dtype(), "accumulate_cast: ", args.in.describe(),
             " into ", args.out.describe(), " (needs the same element count and two dtypes)");
  const DType from = args.in.dtype();
  DDPM_CHECK(from == DType::BF16 || from == DType::F32, "accumulate_cast: the source is a bfloat16 or float32 ",
             "gradient buffer, got ", args.in.describe());
  cpu::dispatch_float(args.out.dtype(), "accumulate_cast", [&](auto tag) {
    using T = decltype(tag);
    T* out = args.out.data<T>();
    void* in = args.in.raw();
#pragma omp parallel for if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) {
      if (from == DType::BF16) {
        uint16_t& g = static_cast<uint16_t*>(in)[i];
        out[i] += static_cast<T>(bf16_bits_to_float(g));
        g = 0;
      } else {
        float& g = static_cast<float*>(in)[i];
        out[i] += static_cast<T>(g);
        g = 0;
      }
    }
  });
}

}  // namespace ddpm
