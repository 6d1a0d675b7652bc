// The Gaussian oracle for the few-step samplers (diffusion/solvers.h) and float64 scalar
// references of every sampler, written from the papers' formulas independently of the fused
// kernel and its host-side coefficients.
//
// Data x0 ~ N(m, s^2) per dimension. At a noise level sigma (Karras et al.'s sigma =
// sqrt((1 - abar)/abar)), with alpha = sqrt(abar) and sigma_vp = sqrt(1 - abar), the VP state
// x = alpha x0 + sigma_vp eps is N(alpha m, sd^2), sd^2 = alpha^2 s^2 + sigma_vp^2, and the exact
// denoiser is D(x) = E[x0 | x] = m + alpha s^2 (x - alpha m) / sd^2. The oracle is defined for every
// sigma, not only at the schedule's steps: a model told a fractional step t sees sigma =
// sigma_at_step(t), the log-sigma interpolation the samplers use (tested exact at integer steps
// and log-linear between). The probability-flow ODE keeps (x - alpha m)/sd constant, so its exact
// solution between two levels is closed form and depends only on their sigmas: the samplers' ODE
// is the continuous one, whatever grid they step on.
#pragma once
#include <cmath>
#include <vector>

#include "diffusion/noise_levels.h"
#include "diffusion/solvers.h"
#include "engine/ops.h"
#include "engine/philox.h"

namespace ddpm::test::oracle {

struct Data {
  double m, s;
};

struct Level {
  double alpha, sigma_vp;
};
inline Level level(double sigma) {
  const double abar = 1 / (1 + sigma * sigma);
  return {std::sqrt(abar), std::sqrt(1 - abar)};
}
inline double sd(Data d, double sigma) {
  const Level l = level(sigma);
  return std::sqrt(l.alpha * l.alpha * d.s * d.s + l.sigma_vp * l.sigma_vp);
}
// D(x) = g x + c at level sigma.
struct Affine {
  double g, c;
};
inline Affine denoiser(Data d, double sigma) {
  const Level l = level(sigma);
  const double v = sd(d, sigma);
  const double g = l.alpha * d.s * d.s / (v * v);
  return {g, d.m - g * l.alpha * d.m};
}
// The model's output at level sigma as an affine map of x: x0 = D, eps = (x - alpha D)/sigma_vp,
// v = alpha eps - sigma_vp D.
inline Affine output(Data d, double sigma, Prediction p) {
  const Level l = level(sigma);
  const Affine D = denoiser(d, sigma);
  const Affine eps{(1 - l.alpha * D.g) / l.sigma_vp, -l.alpha * D.c / l.sigma_vp};
  switch (p) {
    case Prediction::X0: return D;
    case Prediction::Epsilon: return eps;
    default: return {l.alpha * eps.g - l.sigma_vp * D.g, l.alpha * eps.c - l.sigma_vp * D.c};
  }
}
// The exact probability-flow ODE from level a to level b (both > 0).
inline double ode(Data d, double x, double a, double b) {
  return level(b).alpha * d.m + sd(d, b) * (x - level(a).alpha * d.m) / sd(d, a);
}

// The oracle as a ModelFn over `schedule` (one t for the whole batch, as the samplers call it).
inline ModelFn model(const Schedule& schedule, Data d, Prediction p) {
  return [&schedule, d, p](const Tensor& x, const Tensor& t) {
    const Affine a = output(d, sigma_at_step(schedule, t.to_vector()[0]), p);
    return add(scale(x, a.g), Tensor::full({1}, a.c, x.dtype(), x.device()));
  };
}

// ---- float64 scalar references: one element, noise z = Philox normal (seed, stream, index) ----
// Or, with `fixed`, draw k is (*fixed)[k] (0 past its end): the chains are affine in x_T and the
// draws, so unit draws give their coefficients (exact output moments).
struct Noise {
  uint64_t seed = 0, stream = 0, index = 0;
  const std::vector<double>* fixed = nullptr;
  uint64_t calls = 0;  // the samplers' stream + 1 + k for their k-th kernel call
  double next() {
    const uint64_t k = calls++;
    if (fixed) return k < fixed->size() ? (*fixed)[k] : 0.0;
    return philox::normal(seed, stream + 1 + k, index);
  }
  void skip() { ++calls; }
};

// The data prediction from the model's output in parameterization p, computed the papers' way.
inline double predicted_x0(Data d, double sigma, Prediction p, double x, bool clip) {
  const Level l = level(sigma);
  const Affine o = output(d, sigma, p);
  const double out = o.g * x + o.c;
  double x0 = p == Prediction::X0 ? out : p == Prediction::Epsilon ? (x - l.sigma_vp * out) / l.alpha
                                                                    : l.alpha * x - l.sigma_vp * out;
  if (clip) x0 = std::fmin(1.0, std::fmax(-1.0, x0));
  return x0;
}

// DPM-Solver++ (Lu et al. 2022) in lambda = log(alpha / sigma_vp): x_t = (sigma_vp,t/sigma_vp,s) x_s
// - alpha_t (e^-h - 1) D_hat, with D_hat = D0 (order 1), (1 + 1/2r) D0 - (1/2r) D1 (2M,
// r = h_prev / h), and for 3M the third-order Taylor form with D' and D'' of the quadratic through
// the last three predictions. Terminal step (sigma = 0): the data prediction.
inline double dpmpp(Data d, const NoiseLevels& lv, int order, Prediction p, double x, bool clip) {
  const int k = lv.count();
  std::vector<double> D, lam;  // history, oldest first
  for (int i = 0; i < k; ++i) {
    const double s = lv.sigma[static_cast<size_t>(i)], t = lv.sigma[static_cast<size_t>(i) + 1];
    D.push_back(predicted_x0(d, s, p, x, clip));
    lam.push_back(-std::log(s));
    if (t == 0) return D.back();
    int o = std::min(order, i + 1);
    if (k < 15) o = std::min(o, k - i);
    const Level ls = level(s), lt = level(t);
    const double h = -std::log(t) - lam.back(), phi1 = std::exp(-h) - 1;
    const size_t n = D.size() - 1;
    double dhat;
    if (o == 1) {
      x = lt.sigma_vp / ls.sigma_vp * x - lt.alpha * phi1 * D[n];
      continue;
    } else if (o == 2) {
      const double r = (lam[n] - lam[n - 1]) / h;
      dhat = (1 + 1 / (2 * r)) * D[n] - 1 / (2 * r) * D[n - 1];
      x = lt.sigma_vp / ls.sigma_vp * x - lt.alpha * phi1 * dhat;
      continue;
    }
    const double h0 = lam[n] - lam[n - 1], h1 = lam[n - 1] - lam[n - 2];
    const double d0 = (D[n] - D[n - 1]) / h0, d1 = (D[n - 1] - D[n - 2]) / h1;
    const double dp = d0 + h0 * (d0 - d1) / (h0 + h1), dpp = 2 * (d0 - d1) / (h0 + h1);
    const double phi2 = phi1 / h + 1, phi3 = phi2 / h - 0.5;
    x = lt.sigma_vp / ls.sigma_vp * x - lt.alpha * phi1 * D[n] + lt.alpha * h * phi2 * dp - lt.alpha * h * h * phi3 * dpp;
  }
  return x;
}

// Karras et al. 2022, Algorithm 2, in their variables x_e = x / alpha: churn level i to s_hat =
// s (1 + gamma) (capped at the schedule's largest sigma), Euler slope d = (x_e - D)/s_hat, Heun's
// average of the two slopes unless the next level is 0. The samplers draw level i's churn noise in
// the kernel call that ends step i - 1 (level 0's in a call of its own before the first step).
inline double raised_level(const NoiseLevels& lv, const SolverConfig& c, double sigma_max, size_t i) {
  const double s = lv.sigma[i];
  if (!(c.s_churn > 0 && s >= c.s_tmin && s <= c.s_tmax)) return s;
  return std::min(s * (1 + std::min(c.s_churn / lv.count(), std::sqrt(2.0) - 1)), std::max(s, sigma_max));
}
inline double heun(Data d, const NoiseLevels& lv, const SolverConfig& c, double sigma_max, Prediction p, double x_vp,
                   bool clip, Noise* z) {
  double x = x_vp / level(lv.sigma[0]).alpha;
  auto den = [&](double sig, double xe) { return predicted_x0(d, sig, p, xe * level(sig).alpha, clip); };
  auto churn = [&](size_t i, double draw) {
    const double s = lv.sigma[i], s_hat = raised_level(lv, c, sigma_max, i);
    return std::sqrt(s_hat * s_hat - s * s) * c.s_noise * draw;
  };
  if (raised_level(lv, c, sigma_max, 0) > lv.sigma[0]) x += churn(0, z->next());
  for (size_t i = 0; i < static_cast<size_t>(lv.count()); ++i) {
    const double s_hat = raised_level(lv, c, sigma_max, i), t = lv.sigma[i + 1];
    const double d1 = (x - den(s_hat, x)) / s_hat;
    const double x1 = x + (t - s_hat) * d1;
    if (t == 0) return x1;
    z->skip();  // the Euler stage's kernel call
    const double d2 = (x1 - den(t, x1)) / t;
    x = x + (t - s_hat) * 0.5 * (d1 + d2);
    const double draw = z->next();  // the Heun stage's call: the next level's churn noise
    if (raised_level(lv, c, sigma_max, i + 1) > t) x += churn(i + 1, draw);
  }
  return x;
}

// k-diffusion's Euler ancestral in x_e: sigma_up = min(t, eta sqrt(t^2 (s^2 - t^2)/s^2)),
// sigma_down = sqrt(t^2 - sigma_up^2), x_e += (sigma_down - s) (x_e - D)/s + s_noise sigma_up z.
inline double euler_ancestral(Data d, const NoiseLevels& lv, const SolverConfig& c, Prediction p, double x_vp,
                              bool clip, Noise* z) {
  double x = x_vp / level(lv.sigma[0]).alpha;
  for (int i = 0; i < lv.count(); ++i) {
    const double s = lv.sigma[static_cast<size_t>(i)], t = lv.sigma[static_cast<size_t>(i) + 1];
    const double up = std::min(t, c.eta * std::sqrt(t * t * (s * s - t * t) / (s * s)));
    const double down = std::sqrt(t * t - up * up);
    const double slope = (x - predicted_x0(d, s, p, x * level(s).alpha, clip)) / s;
    x = x + (down - s) * slope + c.s_noise * up * z->next();
  }
  return x;  // sigma = 0: x_e is the data
}

}  // namespace ddpm::test::oracle
