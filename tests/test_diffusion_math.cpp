// The per-element formulas (kernels/diffusion_math.h) and the posterior against independent
// computations: numerical integration, MATH.md's oracle values, product of Gaussians, Monte Carlo.
#include <catch2/catch.hpp>
#include <cmath>

#include "diffusion/gaussian_diffusion.h"
#include "engine/ops.h"
#include "kernels/diffusion_math.h"
#include "tests/support.h"

using namespace ddpm;

namespace {
double gauss_pdf(double x, double m, double var) { return std::exp(-(x - m) * (x - m) / (2 * var)) / std::sqrt(2 * M_PI * var); }

// KL(p || q) by Simpson's rule over +-12 standard deviations of both.
double kl_by_integration(double m1, double v1, double m2, double v2) {
  const double lo = std::min(m1 - 12 * std::sqrt(v1), m2 - 12 * std::sqrt(v2));
  const double hi = std::max(m1 + 12 * std::sqrt(v1), m2 + 12 * std::sqrt(v2));
  const int n = 200000;
  const double h = (hi - lo) / n;
  double total = 0;
  for (int i = 0; i <= n; ++i) {
    const double x = lo + i * h, p = gauss_pdf(x, m1, v1), q = gauss_pdf(x, m2, v2);
    const double f = p > 0 ? p * (std::log(p) - std::log(q)) : 0.0;
    total += f * (i == 0 || i == n ? 1 : (i % 2 ? 4 : 2));
  }
  return total * h / 3;
}
}  // namespace

TEST_CASE("normal_kl equals the numerically integrated KL divergence", "[diffusion][math]") {
  const double cases[][4] = {{0, 0, 0, 0}, {0.3, -1, -0.2, 0.5}, {1, 1, 0, 0}, {-2, -4, -1.5, -3}, {0.1, -9.8, 0.12, -9.7}};
  for (const auto& c : cases) {
    const double got = dm::normal_kl(c[0], c[1], c[2], c[3]);
    const double want = kl_by_integration(c[0], std::exp(c[1]), c[2], std::exp(c[3]));
    INFO("m1 " << c[0] << " lv1 " << c[1] << " m2 " << c[2] << " lv2 " << c[3]);
    REQUIRE(got == Approx(want).epsilon(1e-7).margin(1e-10));
  }
}

TEST_CASE("discretized decoder: MATH.md oracle values and a distribution over 256 levels", "[diffusion][math]") {
  REQUIRE(dm::discretized_log_likelihood(0.0, 0.0, std::log(0.01)) == Approx(-1.187371).epsilon(1e-6));
  REQUIRE(dm::discretized_log_likelihood(0.0, 0.0, std::log(1.0 / 255)) == Approx(-0.382163).epsilon(1e-6));
  REQUIRE(dm::discretized_log_likelihood(0.0, 0.0, std::log(0.1)) == Approx(-3.464727).epsilon(1e-6));
  REQUIRE(dm::discretized_log_likelihood(-1.0, -1.0, std::log(0.01)) == Approx(-0.426927).epsilon(1e-6));
  for (double mean : {-1.0, -0.37, 0.0, 0.5, 0.999})
    for (double sigma : {0.001, 0.01, 1.0 / 255, 0.1, 1.0, 3.0}) {
      double total = 0;
      for (int level = 0; level < 256; ++level)
        total += std::exp(dm::discretized_log_likelihood(-1.0 + 2.0 * level / 255, mean, std::log(sigma)));
      INFO("mean " << mean << " sigma " << sigma);
      REQUIRE(std::fabs(total - 1) < 1e-9);
    }
}

TEST_CASE("the formulas' derivatives match central differences", "[diffusion][math]") {
  const double h = 1e-6;
  for (const auto& c : std::vector<std::array<double, 4>>{{0.3, -1, -0.2, 0.5}, {1, 1, 0, -2}}) {
    double dm2, dlv2;
    dm::normal_kl(c[0], c[1], c[2], c[3], &dm2, &dlv2);
    REQUIRE(dm2 == Approx((dm::normal_kl(c[0], c[1], c[2] + h, c[3]) - dm::normal_kl(c[0], c[1], c[2] - h, c[3])) / (2 * h)).epsilon(1e-6));
    REQUIRE(dlv2 == Approx((dm::normal_kl(c[0], c[1], c[2], c[3] + h) - dm::normal_kl(c[0], c[1], c[2], c[3] - h)) / (2 * h)).epsilon(1e-6));
  }
  for (double x : {-1.0, -1.0 + 2.0 * 77 / 255, 1.0})
    for (double mean : {-0.9, 0.05, 0.8})
      for (double ls : {std::log(0.05), std::log(0.3)}) {
        double dmean, dls;
        dm::discretized_log_likelihood(x, mean, ls, &dmean, &dls);
        auto f = [&](double m, double s) { return dm::discretized_log_likelihood(x, m, s); };
        INFO("x " << x << " mean " << mean << " log_scale " << ls);
        REQUIRE(dmean == Approx((f(mean + h, ls) - f(mean - h, ls)) / (2 * h)).epsilon(1e-5).margin(1e-8));
        REQUIRE(dls == Approx((f(mean, ls + h) - f(mean, ls - h)) / (2 * h)).epsilon(1e-5).margin(1e-8));
      }
}

TEST_CASE("the posterior equals the product of Gaussians q(x_t|x_{t-1}) q(x_{t-1}|x_0)", "[diffusion][posterior]") {
  GaussianDiffusion d(Schedule(BetaSchedule::Linear, 1000), {});
  const Schedule& s = d.schedule();
  Tensor x0 = test::randn({4, 3}, 1), x_t = test::randn({4, 3}, 2);
  for (int t : {1, 2, 10, 500, 999}) {
    const std::vector<int> ts(4, t);
    GaussianMoments post = d.q_posterior(x0, x_t, ts);
    const size_t i = static_cast<size_t>(t);
    // Precision-weighted combination of N(sqrt(abar_prev) x0, 1 - abar_prev) and the likelihood of
    // x_t = sqrt(alpha) x_{t-1} + sqrt(beta) eps, read as a Gaussian in x_{t-1}.
    const double prior_var = 1 - s.abar_prev()[i], alpha = s.alphas()[i], beta = s.betas()[i];
    const double precision = 1 / prior_var + alpha / beta, var = 1 / precision;
    std::vector<double> want;
    const auto xv = x0.to_vector(), tv = x_t.to_vector();
    for (size_t j = 0; j < xv.size(); ++j)
      want.push_back(var * (std::sqrt(s.abar_prev()[i]) * xv[j] / prior_var + std::sqrt(alpha) * tv[j] / beta));
    test::require_close(post.mean.to_vector(), want, 1e-10, 1e-12, "posterior mean at t=" + std::to_string(t));
    for (double lv : post.log_variance.to_vector()) REQUIRE(lv == Approx(std::log(var)).epsilon(1e-10));
  }
  // t = 0: x_{-1} is x_0 itself: the mean is x0 (coef1 = 1, coef2 = 0).
  test::require_close(d.q_posterior(x0, x_t, std::vector<int>(4, 0)).mean.to_vector(), x0.to_vector(), 1e-11, 1e-11,
                      "posterior mean at t=0");
}

TEST_CASE("the posterior matches a Monte Carlo simulation of the forward chain", "[diffusion][posterior]") {
  // Simulate x_{t-1} ~ q(x_{t-1}|x_0) and x_t ~ q(x_t|x_{t-1}) step by step; the residual
  // x_{t-1} - mu_tilde(x_0, x_t) must have mean 0, variance beta_tilde and no correlation with x_t.
  GaussianDiffusion d(Schedule(BetaSchedule::Linear, 1000), {});
  const Schedule& s = d.schedule();
  const int64_t n = 200000;
  for (int t : {1, 50, 700}) {
    const size_t i = static_cast<size_t>(t);
    const std::vector<double> x0 = Tensor::uniform({n}, 5, 10 + i, -1, 1, DType::F64).to_vector();
    const std::vector<double> e1 = test::randn({n}, 20 + i).to_vector(), e2 = test::randn({n}, 30 + i).to_vector();
    double r_mean = 0, r_sq = 0, r_xt = 0;
    for (size_t j = 0; j < static_cast<size_t>(n); ++j) {
      const double prev = std::sqrt(s.abar_prev()[i]) * x0[j] + std::sqrt(1 - s.abar_prev()[i]) * e1[j];
      const double xt = std::sqrt(s.alphas()[i]) * prev + std::sqrt(s.betas()[i]) * e2[j];
      const double r = prev - (s.posterior_mean_coef1()[i] * x0[j] + s.posterior_mean_coef2()[i] * xt);
      r_mean += r, r_sq += r * r, r_xt += r * xt;
    }
    r_mean /= n, r_sq /= n, r_xt /= n;
    const double var = s.posterior_variance()[i], se = std::sqrt(var / n);
    INFO("t = " << t);
    REQUIRE(std::fabs(r_mean) < 5 * se);
    REQUIRE(std::fabs(r_sq - var) < 5 * var * std::sqrt(2.0 / n));
    REQUIRE(std::fabs(r_xt) < 5 * se * 1.5);  // E[x_t^2] <= ~2 for x0 in [-1, 1]
  }
}

TEST_CASE("learned-range and fixed-large log variances are finite at t = 0", "[diffusion][posterior]") {
  for (VarianceType v : {VarianceType::FixedSmall, VarianceType::FixedLarge, VarianceType::LearnedRange}) {
    DiffusionConfig config;
    config.variance = v;
    config.loss = v == VarianceType::LearnedRange ? LossType::Hybrid : LossType::Mse;
    GaussianDiffusion d(Schedule(BetaSchedule::Linear, 1000), config);
    Tensor x_t = test::randn({2, 2, 2, 3}, 1);
    const int64_t channels = v == VarianceType::LearnedRange ? 6 : 3;
    Tensor out = Tensor::uniform({2, 2, 2, channels}, 7, 1, -1, 1, DType::F64);
    for (int step : {0, 1, 999}) {
      auto p = d.p_mean_variance(out, x_t, step, true);
      for (double lv : p.log_variance.to_vector()) REQUIRE(std::isfinite(lv));
      for (double m : p.mean.to_vector()) REQUIRE(std::isfinite(m));
    }
    // Learned range at t = 0 interpolates between log beta_tilde_1 and log beta_0: v = -1 and 1 hit the ends.
    if (v == VarianceType::LearnedRange) {
      Tensor ends = concat(Tensor::zeros({1, 1, 1, 1}, DType::F64), Tensor::from_vector(std::vector<double>{-1}, {1, 1, 1, 1}, DType::F64));
      auto p = d.p_mean_variance(ends, Tensor::zeros({1, 1, 1, 1}, DType::F64), 0, true);
      REQUIRE(p.log_variance.item() == Approx(d.schedule().posterior_log_variance_clipped()[0]));
      Tensor top = concat(Tensor::zeros({1, 1, 1, 1}, DType::F64), Tensor::ones({1, 1, 1, 1}, DType::F64));
      REQUIRE(d.p_mean_variance(top, Tensor::zeros({1, 1, 1, 1}, DType::F64), 0, true).log_variance.item() ==
              Approx(std::log(d.schedule().betas()[0])));
    }
  }
}

TEST_CASE("p_mean_variance recovers x0 for each parameterization", "[diffusion][posterior]") {
  const Schedule s(BetaSchedule::Linear, 100);
  Tensor x0 = Tensor::uniform({2, 5}, 3, 1, -0.9, 0.9, DType::F64), eps = test::randn({2, 5}, 2);
  const int t = 40;
  const size_t i = static_cast<size_t>(t);
  for (Prediction p : {Prediction::Epsilon, Prediction::X0, Prediction::V}) {
    DiffusionConfig config;
    config.prediction = p;
    GaussianDiffusion d(s, config);
    auto noised = d.q_sample(x0, {t, t}, eps);
    // The output a perfect model gives: eps, x0, or v = sqrt(abar) eps - sqrt(1 - abar) x0.
    Tensor perfect = p == Prediction::Epsilon ? eps
                     : p == Prediction::X0    ? x0
                                              : sub(scale(eps, s.sqrt_abar()[i]), scale(x0, s.sqrt_one_minus_abar()[i]));
    if (p == Prediction::V) test::require_close(noised.v_target.to_vector(), perfect.to_vector(), 1e-14, 1e-14, "v target");
    auto pm = d.p_mean_variance(perfect, noised.x_t, t, false);
    test::require_close(pm.pred_x0.to_vector(), x0.to_vector(), 1e-12, 1e-12, std::string("x0 from ") + prediction_name(p));
    test::require_close(pm.mean.to_vector(), d.q_posterior(x0, noised.x_t, {t, t}).mean.to_vector(), 1e-12, 1e-12,
                        "mean equals the posterior mean");
  }
}
