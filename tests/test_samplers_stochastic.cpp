// The stochastic samplers (Euler ancestral, Heun with churn) on the Gaussian oracle: their output
// distribution against the data N(m, s^2). Each chain is affine in x_T and its draws, so the
// output's exact mean and variance follow from the float64 scalar reference (tests/
// sampler_oracle.h) with unit draws; the samples must match those within what the sample size
// allows, and the exact moments must be the data's up to the chain's discretization error.
#include <catch2/catch.hpp>
#include <cmath>

#include "tests/sampler_oracle.h"
#include "tests/support.h"

using namespace ddpm;
namespace oc = ddpm::test::oracle;

namespace {
constexpr oc::Data kData{0.3, 0.2};

double run(const Schedule& s, const NoiseLevels& lv, const SolverConfig& c, double x_T, const std::vector<double>& z) {
  oc::Noise noise;
  noise.fixed = &z;
  return c.method == Solver::Heun ? oc::heun(kData, lv, c, sigma_at_step(s, s.steps() - 1), Prediction::Epsilon, x_T, false, &noise)
                                  : oc::euler_ancestral(kData, lv, c, Prediction::Epsilon, x_T, false, &noise);
}

// Exact output moments for x_T ~ N(0, 1) and standard normal draws.
std::pair<double, double> exact_moments(const Schedule& s, const NoiseLevels& lv, const SolverConfig& c) {
  const std::vector<double> none;
  const double mean = run(s, lv, c, 0, none);
  double var = std::pow(run(s, lv, c, 1, none) - mean, 2);
  for (size_t k = 0; k < 2 * lv.sigma.size() + 2; ++k) {
    std::vector<double> unit(k + 1, 0.0);
    unit[k] = 1;
    var += std::pow(run(s, lv, c, 0, unit) - mean, 2);
  }
  return {mean, var};
}
}  // namespace

// Exact chain moments (variance relative to s^2 = 0.04, linear schedule, Karras levels): Euler
// ancestral (eta = 1) is first order in distribution, -24.6% at K = 50, -13.5% at 100, -7.2% at 200,
// -3.8% at 400, -1.7% at 1000 (the mean is exact); Heun with churn 40 in [0.05, 50]: +7.5% at 50,
// +3.1% at 100, +0.6% at 200, -0.03% at 400. Below 0.25% nothing more can come: the last step
// returns E[x0 | x] at sigma_min = 0.01, short of s^2 by Var(x0 | x) ~ sigma_min^2 (deterministic
// Heun shares it).
TEST_CASE("stochastic samplers: exact chain moments reach the data at the expected rate", "[samplers][stochastic]") {
  const Schedule full(BetaSchedule::Linear, 1000);
  SolverConfig euler;
  euler.method = Solver::EulerAncestral;
  SolverConfig churn;
  churn.method = Solver::Heun;
  churn.s_churn = 40, churn.s_tmin = 0.05, churn.s_tmax = 50;
  auto bias = [&](const SolverConfig& c, int k) {
    const auto [m, v] = exact_moments(full, karras_levels(full, k), c);
    REQUIRE(std::fabs(m - kData.m) < 1e-5);
    return v / (kData.s * kData.s) - 1;
  };
  // First order: the variance error halves (within 20%) when K doubles.
  for (int k : {100, 200, 400}) {
    const double ratio = bias(euler, k) / bias(euler, 2 * k);
    INFO("euler_a K = " << k << ": variance error " << bias(euler, k) << ", at 2K " << bias(euler, 2 * k));
    REQUIRE(ratio > 1.6);
    REQUIRE(ratio < 2.4);
  }
  REQUIRE(std::fabs(bias(euler, 1000)) < 0.02);
  REQUIRE(std::fabs(bias(churn, 200)) < 0.01);
  REQUIRE(std::fabs(bias(churn, 400)) < 0.003);
}

TEST_CASE("stochastic samplers: sample moments match the chain and the data", "[samplers][stochastic]") {
  const Schedule full(BetaSchedule::Linear, 1000);
  const GaussianDiffusion d(full, {});
  const int64_t n = 16000;  // under the CPU kernels' parallel grain: one thread, no fork/join per step
  const Tensor x_T = test::randn({n, 1}, 60);
  SolverConfig euler;
  euler.method = Solver::EulerAncestral;
  SolverConfig churn;
  churn.method = Solver::Heun;
  churn.s_churn = 40, churn.s_tmin = 0.05, churn.s_tmax = 50;  // EDM's ImageNet-like churn
  for (const auto& [c, levels] : {std::pair{euler, 200}, std::pair{churn, 100}}) {
    const NoiseLevels lv = karras_levels(full, levels);
    SampleOptions o;
    o.clip = false, o.seed = 9, o.stream = 100;
    const std::vector<double> x = solve(d, oc::model(full, kData, Prediction::Epsilon), x_T, lv, c, o).to_vector();
    double m = 0, v = 0;
    for (double e : x) m += e / n;
    for (double e : x) v += (e - m) * (e - m) / n;
    const auto [em, ev] = exact_moments(full, lv, c);
    const double data_var = kData.s * kData.s;
    INFO(solver_name(c.method) << " over " << levels << " levels: sample mean " << m << " var " << v
                               << "; exact chain mean " << em << " var " << ev << "; data " << kData.m << ", " << data_var);
    // Five standard errors of the mean and variance of n Gaussian draws: against the chain's exact
    // moments, and against the data's widened by the chain's discretization error |ev - s^2|.
    REQUIRE(std::fabs(m - em) < 5 * std::sqrt(ev / n));
    REQUIRE(std::fabs(v - ev) < 5 * ev * std::sqrt(2.0 / n));
    REQUIRE(std::fabs(m - kData.m) < 5 * std::sqrt(data_var / n) + std::fabs(em - kData.m));
    REQUIRE(std::fabs(v - data_var) < 5 * data_var * std::sqrt(2.0 / n) + std::fabs(ev - data_var));
    // and the samples are random: a different seed gives different samples
    o.seed = 10;
    REQUIRE(solve(d, oc::model(full, kData, Prediction::Epsilon), x_T, lv, c, o).to_vector() != x);
  }
}
