// The analytic Gaussian oracle (docs/math.md): data x0 ~ N(m, s^2) per dimension and the optimal
// epsilon predictor eps*(x_t, t) = sqrt(1 - abar) (x_t - sqrt(abar) m) / (abar s^2 + 1 - abar).
// Everything the library computes is compared with quantities this file derives on its own from
// the paper's formulas: per-sample KL terms, expected KL terms, and the exact output moments of the
// (linear-Gaussian) sampling chains.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <functional>

#include "diffusion/gaussian_diffusion.h"
#include "diffusion/samplers.h"
#include "engine/ops.h"
#include "tests/support.h"

using namespace ddpm;

namespace {
constexpr double kM = 0.3, kS = 0.2;  // the data distribution N(m, s^2)

// eps* = A x_t + B with A = sqrt(1 - abar) / (abar s^2 + 1 - abar), B = -sqrt(abar) m A.
struct Affine {
  double a, b;
};
Affine optimal_eps(double abar) {
  const double a = std::sqrt(1 - abar) / (abar * kS * kS + 1 - abar);
  return {a, -std::sqrt(abar) * kM * a};
}

// The oracle as a model callback; t holds the (original) step index per sample.
ModelFn oracle(const Schedule& full) {
  return [&full](const Tensor& x_t, const Tensor& t) {
    const std::vector<double> steps = t.to_vector();
    if (std::adjacent_find(steps.begin(), steps.end(), std::not_equal_to<>()) == steps.end()) {  // one t: scalars
      const Affine e = optimal_eps(full.abar()[static_cast<size_t>(steps[0])]);
      return add(scale(x_t, e.a), Tensor::full({1}, e.b, x_t.dtype()));
    }
    std::vector<double> a, b;
    for (double step : steps) {
      Affine e = optimal_eps(full.abar()[static_cast<size_t>(step)]);
      a.push_back(e.a), b.push_back(e.b);
    }
    Shape s(static_cast<size_t>(x_t.rank()), 1);
    s[0] = x_t.dim(0);
    return add(mul(x_t, Tensor::from_vector(a, s, x_t.dtype())), Tensor::from_vector(b, s, x_t.dtype()));
  };
}

// The schedule a respaced chain uses, derived here from abar alone: beta'_k = 1 - abar_{S_k} / abar_{S_{k-1}}.
struct Chain {
  std::vector<double> abar, beta;
};
Chain chain_over(const Schedule& full, const std::vector<int>& keep) {
  Chain c;
  for (size_t k = 0; k < keep.size(); ++k) {
    c.abar.push_back(full.abar()[static_cast<size_t>(keep[k])]);
    c.beta.push_back(1 - c.abar[k] / (k == 0 ? 1.0 : c.abar[k - 1]));
  }
  return c;
}

// The true reverse variance Var(x_{k-1} | x_k) for Gaussian data: beta_tilde + c1^2 Var(x0 | x_k),
// with Var(x0 | x_k) = s^2 (1 - abar) / (abar s^2 + 1 - abar).
double optimal_variance(const Chain& c, size_t k) {
  const double abar = c.abar[k], prev = k == 0 ? 1.0 : c.abar[k - 1], beta = c.beta[k];
  const double c1 = beta * std::sqrt(prev) / (1 - abar);
  return beta * (1 - prev) / (1 - abar) + c1 * c1 * kS * kS * (1 - abar) / (abar * kS * kS + 1 - abar);
}

enum class Sigma { Small, Large, Optimal };

// Exact mean and variance of x_0 after the ancestral chain from x_T ~ N(0, 1): each step is
// x_{k-1} = (x_k - beta / sqrt(1 - abar) eps*(x_k)) / sqrt(alpha) + sigma z (the paper's
// Algorithm 2), sigma^2 = beta_tilde (fixed small), beta (fixed large) or the true reverse variance
// (what an optimal learned-range model outputs); step 0 adds no noise.
std::pair<double, double> ancestral_moments(const Chain& c, Sigma sigma) {
  double mean = 0, var = 1;
  for (size_t k = c.beta.size(); k-- > 0;) {
    const Affine e = optimal_eps(c.abar[k]);
    const double beta = c.beta[k], scale = beta / std::sqrt(1 - c.abar[k]), root_alpha = std::sqrt(1 - beta);
    const double a = (1 - scale * e.a) / root_alpha, b = -scale * e.b / root_alpha;
    const double abar_prev = k == 0 ? 1.0 : c.abar[k - 1];
    const double sigma2 = k == 0                  ? 0.0
                          : sigma == Sigma::Large ? beta
                          : sigma == Sigma::Small ? beta * (1 - abar_prev) / (1 - c.abar[k])
                                                  : optimal_variance(c, k);
    mean = a * mean + b;
    var = a * a * var + sigma2;
  }
  return {mean, var};
}

// The oracle with a learned-range output for a chain over `keep`: eps*, then v in [-1, 1] placing
// the log variance at the true reverse variance between the chain's log beta_tilde and log beta.
ModelFn learned_oracle(const Schedule& full, const std::vector<int>& keep) {
  return [&full, keep, chain = chain_over(full, keep)](const Tensor& x_t, const Tensor& t) {
    // Sampling calls it with one t for the whole batch.
    const int step = static_cast<int>(t.to_vector()[0]);
    const size_t k = static_cast<size_t>(std::lower_bound(keep.begin(), keep.end(), step) - keep.begin());
    double f = 0.5;  // step 0 adds no noise: any v will do
    if (k > 0) {
      const double beta = chain.beta[k], lo = std::log(beta * (1 - chain.abar[k - 1]) / (1 - chain.abar[k]));
      f = (std::log(optimal_variance(chain, k)) - lo) / (std::log(beta) - lo);
    }
    return concat(oracle(full)(x_t, t), Tensor::full(x_t.shape(), 2 * f - 1, x_t.dtype()));
  };
}

// Exact moments after DDIM with eta = 0: x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev) eps*.
std::pair<double, double> ddim_moments(const Chain& c) {
  double mean = 0, var = 1;
  for (size_t k = c.beta.size(); k-- > 0;) {
    const Affine e = optimal_eps(c.abar[k]);
    const double abar = c.abar[k], prev = k == 0 ? 1.0 : c.abar[k - 1];
    const double ratio = std::sqrt(prev / abar);
    const double a = ratio * (1 - std::sqrt(1 - abar) * e.a) + std::sqrt(1 - prev) * e.a;
    const double b = (std::sqrt(1 - prev) - ratio * std::sqrt(1 - abar)) * e.b;
    mean = a * mean + b;
    var = a * a * var;
  }
  return {mean, var};
}

std::pair<double, double> sample_moments(const Tensor& x) {
  const std::vector<double> v = x.to_vector();
  double m = 0, q = 0;
  for (double e : v) m += e;
  m /= static_cast<double>(v.size());
  for (double e : v) q += (e - m) * (e - m);
  return {m, q / static_cast<double>(v.size())};
}

// Sample moments agree with the chain's exact moments within 5 standard errors.
void require_moments(const Tensor& x, std::pair<double, double> exact, const std::string& what) {
  const auto [m, v] = sample_moments(x);
  const double n = static_cast<double>(x.numel());
  INFO(what << ": sample mean " << m << " var " << v << "; chain mean " << exact.first << " var " << exact.second);
  REQUIRE(std::fabs(m - exact.first) < 5 * std::sqrt(exact.second / n));
  REQUIRE(std::fabs(v - exact.second) < 5 * exact.second * std::sqrt(2 / n));
}

// The chain itself reaches the data distribution up to its discretization error.
void require_reaches_data(std::pair<double, double> exact, double mean_tol, double var_rel_tol, const std::string& what) {
  INFO(what << ": chain mean " << exact.first << " (data " << kM << "), variance " << exact.second << " (data " << kS * kS << ")");
  REQUIRE(std::fabs(exact.first - kM) < mean_tol);
  REQUIRE(std::fabs(exact.second / (kS * kS) - 1) < var_rel_tol);
}

std::vector<int> all_steps(int n) {
  std::vector<int> v(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) v[static_cast<size_t>(i)] = i;
  return v;
}

// The paper's KL between Gaussians, written independently of the library.
double gaussian_kl(double m1, double v1, double m2, double v2) {
  return 0.5 * std::log(v2 / v1) + (v1 + (m1 - m2) * (m1 - m2)) / (2 * v2) - 0.5;
}
// Phi via MATH.md's tanh form, and the decoder's probability of x's bin.
double phi(double x) { return 0.5 * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))); }
double decoder_nll(double x, double mean, double sigma) {
  const double hi = x > 0.999 ? 1.0 : phi((x + 1 / 255.0 - mean) / sigma);
  const double lo = x < -0.999 ? 0.0 : phi((x - 1 / 255.0 - mean) / sigma);
  return -std::log(std::max(hi - lo, 1e-12));
}
}  // namespace

TEST_CASE("oracle: each per-step bound term equals the closed form derived here", "[diffusion][oracle]") {
  const Schedule full(BetaSchedule::Linear, 1000);
  for (VarianceType variance : {VarianceType::FixedSmall, VarianceType::FixedLarge}) {
    DiffusionConfig config;
    config.variance = variance;
    GaussianDiffusion d(full, config);
    // One element per sample, each at its own step (t = 0 takes the decoder path).
    const std::vector<int> t{0, 0, 1, 2, 17, 250, 600, 999};
    const int64_t n = static_cast<int64_t>(t.size());
    // x0 on the decoder's 256-level grid so that L_0 is a proper probability.
    std::vector<double> x0v{-1.0, 1.0 - 2.0 * 100 / 255, -1.0 + 2.0 * 140 / 255, 0.3, -0.2, 0.9, 0.5, 0.1};
    Tensor x0 = Tensor::from_vector(x0v, {n, 1}, DType::F64), eps = test::randn({n, 1}, 3);
    auto noised = d.q_sample(x0, t, eps);
    const Tensor t_tensor = Tensor::from_vector(std::vector<double>(t.begin(), t.end()), {n}, DType::F64);
    Tensor out = oracle(full)(noised.x_t, t_tensor);
    std::vector<double> got = vlb_term(out, {}, x0, noised.x_t, t_tensor, d.coefs(DType::F64, Device::CPU),
                                       Prediction::Epsilon, variance, false)
                                  .to_vector();
    const std::vector<double> xt = noised.x_t.to_vector(), e = out.to_vector();
    for (size_t i = 0; i < t.size(); ++i) {
      const size_t s = static_cast<size_t>(t[i]);
      const double beta = full.betas()[s], abar = full.abar()[s], prev = s == 0 ? 1.0 : full.abar()[s - 1];
      const double mu_theta = (xt[i] - beta / std::sqrt(1 - abar) * e[i]) / std::sqrt(1 - beta);
      const double beta_tilde_1 = full.betas()[1] * (1 - full.abar()[0]) / (1 - full.abar()[1]);
      const double var_theta = variance == VarianceType::FixedLarge ? (s == 0 ? beta_tilde_1 : beta)
                               : s == 0                              ? beta_tilde_1
                                                                     : beta * (1 - prev) / (1 - abar);
      double want;
      if (s == 0) {
        want = decoder_nll(x0v[i], mu_theta, std::sqrt(var_theta));
      } else {
        const double mu_q = beta * std::sqrt(prev) / (1 - abar) * x0v[i] + std::sqrt(1 - beta) * (1 - prev) / (1 - abar) * xt[i];
        want = gaussian_kl(mu_q, beta * (1 - prev) / (1 - abar), mu_theta, var_theta);
      }
      INFO(variance_name(variance) << " t = " << s);
      REQUIRE(got[i] == Approx(want).epsilon(1e-8).margin(1e-12));
    }
  }
}

TEST_CASE("oracle: expected KL terms match E[KL] = c1^2 Var(x0|x_t) / (2 beta_tilde)", "[diffusion][oracle]") {
  // With the optimal model mu_theta uses x0_hat = E[x0 | x_t], so mu_tilde - mu_theta = c1 (x0 - E[x0|x_t])
  // and, with fixed-small variance, E[KL] = 0.5 c1^2 Var(x0 | x_t) / beta_tilde with
  // Var(x0 | x_t) = s^2 (1 - abar) / (abar s^2 + 1 - abar). One sample of D dimensions averages D terms.
  const Schedule full(BetaSchedule::Linear, 1000);
  GaussianDiffusion d(full, {});
  const int64_t dims = 200000;
  Tensor x0 = add(scale(test::randn({1, dims}, 11), kS), Tensor::full({1}, kM, DType::F64));
  for (int t : {1, 5, 100, 500, 900}) {
    const size_t s = static_cast<size_t>(t);
    auto noised = d.q_sample(x0, {t}, 7, 100 + s);
    const Tensor t_tensor = Tensor::full({1}, t, DType::F64);
    const double got = vlb_term(oracle(full)(noised.x_t, t_tensor), {}, x0, noised.x_t, t_tensor,
                                d.coefs(DType::F64, Device::CPU), Prediction::Epsilon, VarianceType::FixedSmall, false)
                           .item();
    const double abar = full.abar()[s], c1 = full.posterior_mean_coef1()[s];
    const double want = 0.5 * c1 * c1 * (kS * kS * (1 - abar) / (abar * kS * kS + 1 - abar)) / full.posterior_variance()[s];
    INFO("t = " << t << ": mean over " << dims << " dims " << got << ", closed form " << want);
    // Each term is want * chi^2_1: relative standard error sqrt(2 / D); five of them.
    REQUIRE(std::fabs(got / want - 1) < 5 * std::sqrt(2.0 / dims));
  }
}

TEST_CASE("oracle: ancestral sampling reproduces N(m, s^2), full and respaced", "[diffusion][oracle][sampling][slow]") {
  // Every chain's output moments are known exactly (the chain is linear-Gaussian); the samples must
  // match them statistically. With the true reverse variance (a learned-range model) the chain
  // reproduces the data for any respacing, up to the variance c1^2 Var(x0|x_1) that the noiseless
  // last step leaves out (0.25% here). The fixed variances bracket the data's variance: fixed-small
  // (beta_tilde) undershoots, fixed-large (beta) overshoots, more so the fewer the steps.
  const Schedule full(BetaSchedule::Linear, 1000);
  const int64_t n = 40000;
  SampleOptions options;
  options.clip = false;  // clipping would make the chain non-linear; the data sits well inside [-1, 1]
  options.seed = 21;
  for (int count : {1000, 100, 25}) {
    const std::vector<int> keep = spaced_steps(1000, count);
    const Chain chain = chain_over(full, keep);
    const std::string steps = " over " + std::to_string(count) + " steps";

    DiffusionConfig learned;
    learned.variance = VarianceType::LearnedRange;
    learned.loss = LossType::Hybrid;
    GaussianDiffusion dl = GaussianDiffusion(full, learned).respaced(keep);
    Tensor x = sample_ancestral(dl, learned_oracle(full, keep), {n, 1}, DType::F64, Device::CPU, options);
    const auto exact = ancestral_moments(chain, Sigma::Optimal);
    require_moments(x, exact, "learned range" + steps);
    require_reaches_data(exact, 1e-5, 0.005, "learned range" + steps);

    std::pair<double, double> bracket[2];
    for (bool large : {false, true}) {
      DiffusionConfig config;
      config.variance = large ? VarianceType::FixedLarge : VarianceType::FixedSmall;
      GaussianDiffusion d = GaussianDiffusion(full, config).respaced(keep);
      Tensor xf = sample_ancestral(d, oracle(full), {n, 1}, DType::F64, Device::CPU, options);
      bracket[large] = ancestral_moments(chain, large ? Sigma::Large : Sigma::Small);
      require_moments(xf, bracket[large], std::string(variance_name(config.variance)) + steps);
      REQUIRE(std::fabs(bracket[large].first - kM) < 1e-5);
    }
    INFO("fixed-small variance " << bracket[0].second << ", data " << kS * kS << ", fixed-large " << bracket[1].second);
    REQUIRE(bracket[0].second < kS * kS);
    REQUIRE(bracket[1].second > kS * kS);
    if (count == 1000) require_reaches_data(bracket[0], 1e-5, 0.04, "fixed_small over 1000 steps");
    if (count == 1000) require_reaches_data(bracket[1], 1e-5, 0.01, "fixed_large over 1000 steps");
  }
}

TEST_CASE("oracle: DDIM with eta = 0 is deterministic and reproduces N(m, s^2)", "[diffusion][oracle][sampling][slow]") {
  const Schedule full(BetaSchedule::Linear, 1000);
  GaussianDiffusion d(full, {});
  const int64_t n = 40000;
  Tensor x_T = test::randn({n, 1}, 40);
  SampleOptions a, b;
  a.clip = b.clip = false;
  a.seed = 1, b.seed = 2;  // different step noise: eta = 0 must not use it
  for (int count : {1000, 50}) {
    GaussianDiffusion dr = count == 1000 ? d : d.respaced(spaced_steps(1000, count));
    Tensor xa = reverse_chain(dr, oracle(full), x_T, reverse_step_args::Mode::Ddim, 0.0, a);
    Tensor xb = reverse_chain(dr, oracle(full), x_T, reverse_step_args::Mode::Ddim, 0.0, b);
    REQUIRE(xa.to_vector() == xb.to_vector());
    const auto exact = ddim_moments(chain_over(full, count == 1000 ? all_steps(1000) : spaced_steps(1000, count)));
    require_moments(xa, exact, "ddim " + std::to_string(count));
    // The deterministic chain is a discretized ODE: over all 1000 steps it reaches the data's mean
    // within 4e-4 and its variance within 1.5%; with 50 steps the variance falls 23% short.
    if (count == 1000) require_reaches_data(exact, 1e-3, 0.02, "ddim over 1000 steps");
  }
  // eta = 1 draws noise: different step noise gives different samples.
  Tensor xa = reverse_chain(d.respaced(spaced_steps(1000, 20)), oracle(full), x_T, reverse_step_args::Mode::Ddim, 1.0, a);
  Tensor xb = reverse_chain(d.respaced(spaced_steps(1000, 20)), oracle(full), x_T, reverse_step_args::Mode::Ddim, 1.0, b);
  REQUIRE(xa.to_vector() != xb.to_vector());
}

TEST_CASE("a chain respaced over every step equals the full chain exactly", "[diffusion][sampling]") {
  const Schedule full(BetaSchedule::Cosine, 200);
  for (VarianceType v : {VarianceType::FixedSmall, VarianceType::FixedLarge}) {
    DiffusionConfig config;
    config.variance = v;
    GaussianDiffusion d(full, config);
    SampleOptions options;
    options.seed = 5;
    const auto model = oracle(full);
    Tensor a = sample_ancestral(d, model, {64, 2}, DType::F64, Device::CPU, options);
    Tensor b = sample_ancestral(d.respaced(all_steps(200)), model, {64, 2}, DType::F64, Device::CPU, options);
    REQUIRE(a.to_vector() == b.to_vector());
    Tensor c = sample_ddim(d, model, {64, 2}, DType::F64, Device::CPU, 0.5, options);
    Tensor e = sample_ddim(d.respaced(all_steps(200)), model, {64, 2}, DType::F64, Device::CPU, 0.5, options);
    REQUIRE(c.to_vector() == e.to_vector());
  }
}
