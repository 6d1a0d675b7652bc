// The per-element DDPM formulas shared by the CPU and CUDA kernels (one source of truth, like
// engine/philox.h). Conventions and the map to the seed write-ups: docs/math.md.
// Everything is templated on the compute type: double on the CPU reference, float on the GPU.
#pragma once
#include <cmath>

#include "engine/op_args.h"
#include "engine/philox.h"  // DDPM_HOST_DEVICE

namespace ddpm::dm {

// Per-step coefficients of one table column: coefs is the [kCoefCount, T] table.
template <class T>
struct StepCoefs {
  const T* table;
  int steps, t;
  DDPM_HOST_DEVICE T operator[](int row) const { return table[row * steps + t]; }
};

// x0_hat from the model's mean output (epsilon, x0 or v prediction); d_out receives
// d x0_hat / d out. Clipping to [-1, 1] zeroes the derivative where it binds.
template <class T, class C>
DDPM_HOST_DEVICE T predict_x0(Prediction p, const C& c, T x_t, T out, bool clip, T* d_out) {
  T x0, d;
  switch (p) {
    case Prediction::Epsilon:
      x0 = c[kSqrtRecipAbar] * x_t - c[kSqrtRecipm1Abar] * out;
      d = -c[kSqrtRecipm1Abar];
      break;
    case Prediction::V:
      x0 = c[kSqrtAbar] * x_t - c[kSqrtOneMinusAbar] * out;
      d = -c[kSqrtOneMinusAbar];
      break;
    default:  // Prediction::X0
      x0 = out;
      d = T(1);
      break;
  }
  if (clip && (x0 < T(-1) || x0 > T(1))) {
    x0 = x0 < T(-1) ? T(-1) : T(1);
    d = T(0);
  }
  if (d_out) *d_out = d;
  return x0;
}

// log sigma_t^2 of p(x_{t-1} | x_t); d_var receives d logvar / d var_out (learned range only).
template <class T, class C>
DDPM_HOST_DEVICE T model_log_variance(VarianceType v, const C& c, T var_out, T* d_var) {
  T d = T(0), lv;
  switch (v) {
    case VarianceType::FixedLarge: lv = c[kLargeLogVar]; break;
    case VarianceType::LearnedRange: {
      // f = (v + 1) / 2 interpolates between log beta_tilde (clipped) and log beta.
      const T lo = c[kPosteriorLogVar], hi = c[kLogBeta], f = (var_out + T(1)) / T(2);
      lv = f * hi + (T(1) - f) * lo;
      d = T(0.5) * (hi - lo);
      break;
    }
    default: lv = c[kPosteriorLogVar]; break;  // VarianceType::FixedSmall
  }
  if (d_var) *d_var = d;
  return lv;
}

// mu_tilde(x0, x_t), the posterior mean of q(x_{t-1} | x_t, x_0).
template <class T, class C>
DDPM_HOST_DEVICE T posterior_mean(const C& c, T x0, T x_t) {
  return c[kPosteriorCoef1] * x0 + c[kPosteriorCoef2] * x_t;
}

// KL(N(m1, e^lv1) || N(m2, e^lv2)) and its derivatives in (m2, lv2).
template <class T>
DDPM_HOST_DEVICE T normal_kl(T m1, T lv1, T m2, T lv2, T* d_m2 = nullptr, T* d_lv2 = nullptr) {
  using std::exp;
  const T diff = m1 - m2, inv_var2 = exp(-lv2), ratio = exp(lv1 - lv2);
  if (d_m2) *d_m2 = -diff * inv_var2;
  if (d_lv2) *d_lv2 = T(0.5) * (T(1) - ratio - diff * diff * inv_var2);
  return T(0.5) * (T(-1) + lv2 - lv1 + ratio + diff * diff * inv_var2);
}

// Phi(x) ~ 0.5 (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3) (docs/math.md), evaluated as the
// identical sigmoid(2u), which stays accurate in both tails where 1 + tanh(u) would cancel.
// `tail` receives 1 - Phi(x) = sigmoid(-2u) and `pdf` the derivative, 2 sigmoid(2u) sigmoid(-2u) du/dx.
template <class T>
DDPM_HOST_DEVICE T approx_cdf(T x, T* tail = nullptr, T* pdf = nullptr) {
  using std::exp;
  const T k = T(0.7978845608028654);  // sqrt(2 / pi)
  const T u2 = T(2) * k * (x + T(0.044715) * x * x * x);
  const T cdf = T(1) / (T(1) + exp(-u2)), upper = T(1) / (T(1) + exp(u2));
  if (tail) *tail = upper;
  if (pdf) *pdf = T(2) * cdf * upper * k * (T(1) + T(3) * T(0.044715) * x * x);
  return cdf;
}

// log p(x | mean, log_scale) of the discretized Gaussian decoder on 256 levels in [-1, 1]
// (log_scale = log sigma): bins of half-width 1/255, the outer bins open to -inf / +inf, logs
// floored at 1e-12. d_mean, d_log_scale receive its derivatives (0 where the floor binds).
template <class T>
DDPM_HOST_DEVICE T discretized_log_likelihood(T x, T mean, T log_scale, T* d_mean = nullptr,
                                              T* d_log_scale = nullptr) {
  using std::exp;
  using std::log;
  const T floor = T(1e-12), inv_std = exp(-log_scale), centered = x - mean;
  const T plus = inv_std * (centered + T(1) / T(255)), minus = inv_std * (centered - T(1) / T(255));
  T pdf_plus, pdf_minus, tail_plus, tail_minus;
  const T cdf_plus = approx_cdf(plus, &tail_plus, &pdf_plus), cdf_minus = approx_cdf(minus, &tail_minus, &pdf_minus);
  // prob and its derivatives, from d z / d mean = -inv_std and d z / d log_scale = -z for z in
  // {plus, minus}. A bin right of the mean takes its mass from the upper tails (no cancellation).
  T prob, dprob_mean, dprob_scale;
  if (x < T(-0.999)) {
    prob = cdf_plus;
    dprob_mean = -inv_std * pdf_plus;
    dprob_scale = -plus * pdf_plus;
  } else if (x > T(0.999)) {
    prob = tail_minus;
    dprob_mean = inv_std * pdf_minus;
    dprob_scale = minus * pdf_minus;
  } else {
    prob = plus + minus > T(0) ? tail_minus - tail_plus : cdf_plus - cdf_minus;
    dprob_mean = -inv_std * (pdf_plus - pdf_minus);
    dprob_scale = -plus * pdf_plus + minus * pdf_minus;
  }
  const bool floored = !(prob > floor);
  if (d_mean) *d_mean = floored ? T(0) : dprob_mean / prob;
  if (d_log_scale) *d_log_scale = floored ? T(0) : dprob_scale / prob;
  return log(floored ? floor : prob);
}

// One element of the bound at column t, in nats, with its derivatives in the model's outputs:
// t > 0: KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t)); t = 0: -log p(x_0|x_1) (decoder).
template <class T, class C>
DDPM_HOST_DEVICE T vlb_element(Prediction p, VarianceType v, bool clip, const C& c, bool is_decoder, T x0, T x_t,
                               T out, T var_out, T* d_out, T* d_var) {
  T dx0_dout, dlv_dvar;
  const T x0_hat = predict_x0(p, c, x_t, out, clip, &dx0_dout);
  const T mean = posterior_mean(c, x0_hat, x_t), dmean_dout = c[kPosteriorCoef1] * dx0_dout;
  const T lv = model_log_variance(v, c, var_out, &dlv_dvar);
  T d_mean, d_lv, value;
  if (is_decoder) {
    T d_log_scale;
    value = -discretized_log_likelihood(x0, mean, T(0.5) * lv, &d_mean, &d_log_scale);
    d_mean = -d_mean;
    d_lv = T(-0.5) * d_log_scale;
  } else {
    value = normal_kl(posterior_mean(c, x0, x_t), c[kPosteriorLogVar], mean, lv, &d_mean, &d_lv);
  }
  if (d_out) *d_out = d_mean * dmean_dout;
  if (d_var) *d_var = d_lv * dlv_dvar;
  return value;
}

// The scalar settings of reverse_step_args, as a plain struct a CUDA kernel can take by value.
struct ReverseStep {
  reverse_step_args::Mode mode;
  Prediction prediction;
  VarianceType variance;
  bool clip;
  double eta;
  int step;
};
inline ReverseStep reverse_settings(const reverse_step_args& a) {
  return {a.mode, a.prediction, a.variance, a.clip, a.eta, a.step};
}

// Optional per-element outputs of a reverse step.
template <class T>
struct ReverseOutputs {
  T* x0 = nullptr;       // x0_hat
  T* mean = nullptr;     // mean of p(x_{t-1} | x_t) (ancestral)
  T* log_var = nullptr;  // its log variance (ancestral)
};

// One reverse-process element: x_{t-1} from x_t and the model outputs, z ~ N(0, 1).
template <class T, class C>
DDPM_HOST_DEVICE T reverse_element(const ReverseStep& a, const C& c, T x_t, T out, T var_out, T z,
                                   const ReverseOutputs<T>& extra) {
  using std::sqrt;
  using std::exp;
  const T x0 = predict_x0(a.prediction, c, x_t, out, a.clip, static_cast<T*>(nullptr));
  if (extra.x0) *extra.x0 = x0;
  if (a.mode == reverse_step_args::Mode::Ddim) {
    // Step 0: abar_prev = 1, so sigma = 0 and the direction term vanishes.
    if (a.step == 0) return x0;
    const T eps = (c[kSqrtRecipAbar] * x_t - x0) / c[kSqrtRecipm1Abar];
    const T eta = static_cast<T>(a.eta);
    // sigma^2 = eta^2 (1 - abar_prev) / (1 - abar) (1 - abar / abar_prev) = eta^2 beta_tilde_t and
    // 1 - abar_prev - sigma^2 = beta_tilde_t ((1 - abar) / beta_t - eta^2), both from table entries
    // with no cancellation. (Forming 1 - abar_prev and 1 - abar / abar_prev from float32 abar near 1
    // kept only ~3 significant digits at small t: a 1e-4 relative error in x_prev on the GPU.)
    const T beta_tilde = exp(c[kPosteriorLogVar]);  // unclipped for t >= 1
    const T one_minus_abar = c[kSqrtOneMinusAbar] * c[kSqrtOneMinusAbar];
    const T sigma = eta * sqrt(beta_tilde);
    const T dir = beta_tilde * (one_minus_abar / exp(c[kLogBeta]) - eta * eta);
    return sqrt(c[kAbarPrev]) * x0 + sqrt(dir > T(0) ? dir : T(0)) * eps + sigma * z;
  }
  const T mean = posterior_mean(c, x0, x_t);
  const T lv = model_log_variance(a.variance, c, var_out, static_cast<T*>(nullptr));
  if (extra.mean) *extra.mean = mean;
  if (extra.log_var) *extra.log_var = lv;
  return a.step == 0 ? mean : mean + exp(T(0.5) * lv) * z;
}

}  // namespace ddpm::dm
