// The fused diffusion kernels on the CPU: forward noising (q_sample), one reverse step
// (ancestral or DDIM) and the variational-bound term with its backward. The formulas live in
// kernels/diffusion_math.h, shared with the CUDA kernels.
#include "kernels/cpu/cpu_backend.h"
#include "kernels/diffusion_math.h"

namespace ddpm {

using cpu::kParallelGrain;
using cpu::put;

namespace {
// Sample n's table column: t [N] holds step indices as reals.
template <class T>
int step_of(const T* t, int64_t n) {
  return static_cast<int>(t[n]);
}

template <class T>
dm::StepCoefs<T> coefs_at(const Tensor& table, int step) {
  return {table.data<T>(), static_cast<int>(table.dim(1)), step};
}
}  // namespace

void CpuBackend::q_sample(const q_sample_args& args) {
  cpu::dispatch_float(args.x0.dtype(), "q_sample", [&](auto tag) {
    using T = decltype(tag);
    const int64_t n = args.x0.dim(0), per = args.x0.numel() / std::max<int64_t>(n, 1);
    const T* x0 = args.x0.data<T>();
    const T* t = args.t.data<T>();
    T* x_t = args.x_t.data<T>();
    T* noise = args.noise.data<T>();
    T* v = args.v_target.defined() ? args.v_target.data<T>() : nullptr;
    // One element: sample s = i / per, so its table column is t[s].
    auto noise_one = [&](int64_t i, T eps) {
      const auto c = coefs_at<T>(args.coefs, step_of(t, i / per));
      x_t[i] = c[kSqrtAbar] * x0[i] + c[kSqrtOneMinusAbar] * eps;
      if (v) v[i] = c[kSqrtAbar] * eps - c[kSqrtOneMinusAbar] * x0[i];
    };
    const int64_t total = n * per;
    if (args.noise_given) {
#pragma omp parallel for if (total > kParallelGrain)
      for (int64_t i = 0; i < total; ++i) noise_one(i, noise[i]);
    } else {
      cpu::for_each_draw(
          total, true, args.seed, args.stream,
          [&](int64_t i, float z) {
            noise[i] = static_cast<T>(z);
            noise_one(i, noise[i]);
          },
          args.offset);
    }
  });
}

void CpuBackend::reverse_step(const reverse_step_args& args) {
  cpu::dispatch_float(args.x_t.dtype(), "reverse_step", [&](auto tag) {
    using T = decltype(tag);
    const int64_t total = args.x_t.numel();
    const T* x_t = args.x_t.data<T>();
    const T* out = args.model_out.data<T>();
    const T* var = args.var_out.defined() ? args.var_out.data<T>() : nullptr;
    T* x_prev = args.x_prev.data<T>();
    auto optional = [](const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; };
    T* x0_pred = optional(args.x0_pred);
    T* mean = optional(args.mean);
    T* log_var = optional(args.log_var);
    const auto c = coefs_at<T>(args.coefs, args.step);
    const dm::ReverseStep settings = dm::reverse_settings(args);
    cpu::for_each_draw(total, true, args.seed, args.stream, [&](int64_t i, float z) {
      const dm::ReverseOutputs<T> extra{x0_pred ? x0_pred + i : nullptr, mean ? mean + i : nullptr,
                                        log_var ? log_var + i : nullptr};
      x_prev[i] = dm::reverse_element(settings, c, x_t[i], out[i], var ? var[i] : T(0), static_cast<T>(z), extra);
    });
  });
}

void CpuBackend::vlb_term_forward(const vlb_term_fwd& args) {
  cpu::dispatch_float(args.x0.dtype(), "vlb_term", [&](auto tag) {
    using T = decltype(tag);
    const int64_t n = args.x0.dim(0), per = args.x0.numel() / std::max<int64_t>(n, 1);
    const T* x0 = args.x0.data<T>();
    const T* x_t = args.x_t.data<T>();
    const T* out = args.model_out.data<T>();
    const T* var = args.var_out.defined() ? args.var_out.data<T>() : nullptr;
    const T* t = args.t.data<T>();
    T* result = args.out.data<T>();
#pragma omp parallel for if (args.x0.numel() > kParallelGrain)
    for (int64_t s = 0; s < n; ++s) {
      const int step = step_of(t, s);
      const auto c = coefs_at<T>(args.coefs, step);
      double total = 0;
      for (int64_t i = s * per; i < (s + 1) * per; ++i)
        total += static_cast<double>(dm::vlb_element(args.prediction, args.variance, args.clip, c, step == 0, x0[i],
                                                     x_t[i], out[i], var ? var[i] : T(0), static_cast<T*>(nullptr),
                                                     static_cast<T*>(nullptr)));
      result[s] = static_cast<T>(total / static_cast<double>(per));
    }
  });
}

void CpuBackend::vlb_term_backward(const vlb_term_bwd& args) {
  if (!args.grad_model_out.wanted() && !args.grad_var_out.wanted()) return;
  cpu::dispatch_float(args.x0.dtype(), "vlb_term", [&](auto tag) {
    using T = decltype(tag);
    const int64_t n = args.x0.dim(0), per = args.x0.numel() / std::max<int64_t>(n, 1);
    const T* x0 = args.x0.data<T>();
    const T* x_t = args.x_t.data<T>();
    const T* out = args.model_out.data<T>();
    const T* var = args.var_out.defined() ? args.var_out.data<T>() : nullptr;
    const T* t = args.t.data<T>();
    const T* g = args.grad_out.data<T>();
    T* g_out = args.grad_model_out.wanted() ? args.grad_model_out.tensor.data<T>() : nullptr;
    T* g_var = args.grad_var_out.wanted() ? args.grad_var_out.tensor.data<T>() : nullptr;
#pragma omp parallel for if (args.x0.numel() > kParallelGrain)
    for (int64_t s = 0; s < n; ++s) {
      const int step = step_of(t, s);
      const auto c = coefs_at<T>(args.coefs, step);
      const T weight = g[s] / static_cast<T>(per);  // d mean-over-dims / d element
      for (int64_t i = s * per; i < (s + 1) * per; ++i) {
        T d_out, d_var;
        dm::vlb_element(args.prediction, args.variance, args.clip, c, step == 0, x0[i], x_t[i], out[i],
                        var ? var[i] : T(0), &d_out, &d_var);
        if (g_out) put(g_out, i, weight * d_out, args.grad_model_out.accumulate);
        if (g_var) put(g_var, i, weight * d_var, args.grad_var_out.accumulate);
      }
    }
  });
}

}  // namespace ddpm
