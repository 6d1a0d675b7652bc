// The few-step samplers (diffusion/solvers.h) against float64 scalar references of the papers'
// formulas (tests/sampler_oracle.h): the fused solver_step kernel and its host coefficients, step
// for step, for every method, parameterization and dtype; and the noise-level mapping.
#include <catch2/catch.hpp>
#include <cmath>

#include "tests/sampler_oracle.h"
#include "tests/support.h"
#include "tools/generate.h"

using namespace ddpm;
namespace oc = ddpm::test::oracle;

namespace {
// Wide data (s = 0.8) so that clipping x0_hat to [-1, 1] binds for a good share of elements.
constexpr oc::Data kWide{0.3, 0.8};

SolverConfig config_for(Solver method, bool churn) {
  SolverConfig c;
  c.method = method;
  if (churn) c.s_churn = 10, c.s_tmin = 0.05, c.s_tmax = 50, c.s_noise = 1.003;
  if (method == Solver::EulerAncestral) c.eta = 0.8, c.s_noise = 0.9;
  return c;
}

// The scalar reference of `c` for element `index` of x_T.
double reference(const Schedule& s, const NoiseLevels& lv, const SolverConfig& c, Prediction p, double x, bool clip,
                 uint64_t seed, uint64_t stream, uint64_t index) {
  oc::Noise z;
  z.seed = seed, z.stream = stream, z.index = index;
  switch (c.method) {
    case Solver::DpmPP2M: return oc::dpmpp(kWide, lv, 2, p, x, clip);
    case Solver::DpmPP3M: return oc::dpmpp(kWide, lv, 3, p, x, clip);
    case Solver::Heun: return oc::heun(kWide, lv, c, sigma_at_step(s, s.steps() - 1), p, x, clip, &z);
    case Solver::EulerAncestral: return oc::euler_ancestral(kWide, lv, c, p, x, clip, &z);
  }
  return 0;
}
}  // namespace

TEST_CASE("noise levels: log sigma interpolates the schedule and the step mapping inverts it", "[samplers]") {
  for (BetaSchedule kind : {BetaSchedule::Linear, BetaSchedule::Cosine}) {
    const Schedule s(kind, 1000);
    for (int t : {0, 1, 17, 500, 998, 999}) {
      const double want = std::sqrt((1 - s.abar()[static_cast<size_t>(t)]) / s.abar()[static_cast<size_t>(t)]);
      REQUIRE(sigma_at_step(s, t) == Approx(want).epsilon(1e-13));
      REQUIRE(step_of_sigma(s, want) == Approx(t).margin(1e-9));
    }
    for (double t : {0.25, 3.5, 411.9, 998.75}) {
      const int lo = static_cast<int>(t);
      const double w = t - lo, want = std::exp((1 - w) * std::log(sigma_at_step(s, lo)) + w * std::log(sigma_at_step(s, lo + 1)));
      REQUIRE(sigma_at_step(s, t) == Approx(want).epsilon(1e-13));
      REQUIRE(step_of_sigma(s, want) == Approx(t).margin(1e-9));
    }
    // Karras levels: the schedule's ends, rho = 7 spacing between, then 0.
    const NoiseLevels k = karras_levels(s, 10);
    REQUIRE(k.sigma.size() == 11);
    REQUIRE(k.sigma.front() == sigma_at_step(s, 999));
    REQUIRE(k.sigma[9] == sigma_at_step(s, 0));
    REQUIRE(k.sigma.back() == 0);
    REQUIRE(k.model_t.front() == 999);
    REQUIRE(k.model_t.back() == Approx(0).margin(1e-12));
    const double a = std::pow(k.sigma[0], 1 / 7.0), b = std::pow(k.sigma[9], 1 / 7.0);
    for (int i = 1; i < 9; ++i) REQUIRE(k.sigma[static_cast<size_t>(i)] == Approx(std::pow(a + i * (b - a) / 9, 7)).epsilon(1e-12));
    // Discrete levels are the respaced steps, told their own index.
    const NoiseLevels d = discrete_levels(s, 5);
    REQUIRE(d.model_t == std::vector<double>{999, 749, 500, 250, 0});
    REQUIRE(d.sigma[1] == Approx(sigma_at_step(s, 749)).epsilon(1e-13));
  }
  REQUIRE_THROWS_WITH(discrete_levels(Schedule(BetaSchedule::Linear, 100), 101), Catch::Contains("1 <= count <= T"));
}

TEST_CASE("solvers: the fused kernels equal float64 scalar references of the papers' updates", "[samplers]") {
  const Schedule full(BetaSchedule::Linear, 1000);
  const Shape shape{2, 3, 5, 4};
  const Tensor x_T = test::randn(shape, 31);
  const std::vector<double> x0 = x_T.to_vector();
  struct Case {
    Solver method;
    bool churn;
  };
  for (Case c : {Case{Solver::DpmPP2M, false}, Case{Solver::DpmPP3M, false}, Case{Solver::Heun, false},
                 Case{Solver::Heun, true}, Case{Solver::EulerAncestral, false}})
    for (bool karras : {true, false})
      for (Prediction p : {Prediction::Epsilon, Prediction::X0, Prediction::V})
        for (DType dtype : {DType::F64, DType::F32}) {
          DiffusionConfig dc;
          dc.prediction = p;
          GaussianDiffusion d(full, dc);
          const NoiseLevels lv = karras ? karras_levels(full, 12) : discrete_levels(full, 12);
          const SolverConfig cfg = config_for(c.method, c.churn);
          SampleOptions o;
          o.clip = true, o.seed = 77, o.stream = 5;
          const std::vector<double> got =
              solve(d, oc::model(full, kWide, p), x_T.to(dtype), lv, cfg, o).to_vector();
          double worst = 0;
          int clipped = 0;
          for (size_t i = 0; i < x0.size(); ++i) {
            const double want = reference(full, lv, cfg, p, x0[i], true, 77, 5, i);
            const double unclipped = reference(full, lv, cfg, p, x0[i], false, 77, 5, i);
            clipped += std::fabs(want - unclipped) > 1e-6;
            worst = std::max(worst, std::fabs(got[i] - want));
          }
          INFO(solver_name(c.method) << (c.churn ? " churn" : "") << (karras ? " karras " : " discrete ")
                                     << prediction_name(p) << " " << dtype_name(dtype) << ": max |kernel - reference| "
                                     << worst << ", clipping changed " << clipped << " of " << x0.size());
          // float64: the same formulas rearranged (1e-10); float32: values O(1) through 12-23 steps
          // whose coefficients reach ~10 (alpha ratios near the top), a few ulp each.
          REQUIRE(worst < (dtype == DType::F64 ? 1e-10 : 2e-4));
          REQUIRE(clipped > 0);
        }
}

TEST_CASE("solvers: epsilon, x0 and v models give the same samples", "[samplers]") {
  const Schedule full(BetaSchedule::Cosine, 1000);
  const Tensor x_T = test::randn({64, 2}, 32);
  for (Solver method : {Solver::DpmPP2M, Solver::DpmPP3M, Solver::Heun, Solver::EulerAncestral})
    for (bool churn : {false, true}) {
      if (churn && method != Solver::Heun) continue;
      std::vector<double> first;
      for (Prediction p : {Prediction::Epsilon, Prediction::X0, Prediction::V}) {
        DiffusionConfig dc;
        dc.prediction = p;
        SampleOptions o;
        o.clip = true, o.seed = 3;
        const std::vector<double> got =
            solve(GaussianDiffusion(full, dc), oc::model(full, kWide, p), x_T, karras_levels(full, 15),
                  config_for(method, churn), o)
                .to_vector();
        if (first.empty()) first = got;
        double worst = 0;
        for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(got[i] - first[i]));
        INFO(solver_name(method) << (churn ? " churn " : " ") << prediction_name(p) << " vs epsilon: " << worst);
        REQUIRE(worst < 1e-9);
      }
    }
}

TEST_CASE("solvers: bad settings are refused with what to change", "[samplers]") {
  SolverConfig c;
  c.s_churn = -1;
  REQUIRE_THROWS_WITH(validate(c), Catch::Contains("s_churn must be >= 0"));
  c = {};
  c.s_tmin = 2, c.s_tmax = 1;
  REQUIRE_THROWS_WITH(validate(c), Catch::Contains("s_tmin <= s_tmax"));
  c = {};
  c.eta = 1.5;
  REQUIRE_THROWS_WITH(validate(c), Catch::Contains("eta must be in [0, 1]"));
}

TEST_CASE("generate: solver methods, their step counts and bad settings", "[samplers]") {
  const GaussianDiffusion d(Schedule(BetaSchedule::Linear, 100), {});
  GenerateOptions o;
  o.method = SampleMethod::Heun, o.steps = 10;
  REQUIRE(generate_evaluations(d, o) == 19);  // 2K - 1
  o.method = SampleMethod::DpmPP3M;
  REQUIRE(generate_evaluations(d, o) == 10);
  o.method = SampleMethod::Ddim, o.steps = 0;
  REQUIRE(generate_evaluations(d, o) == 100);
  o.method = SampleMethod::EulerAncestral;
  REQUIRE_THROWS_WITH(generate_evaluations(d, o), Catch::Contains("sample.method euler_a needs sample.steps > 0"));
  o.steps = 150, o.sigmas = SigmaLevels::Discrete;
  REQUIRE_THROWS_WITH(generate_evaluations(d, o), Catch::Contains("sample.sigmas=karras"));
  o.sigmas = SigmaLevels::Karras;
  REQUIRE(generate_evaluations(d, o) == 150);
  // Unknown names are refused when the config is parsed (tests/test_typed_config.cpp).
  o.method = SampleMethod::Heun, o.solver.s_churn = -1;
  REQUIRE_THROWS_WITH(generate_evaluations(d, o), Catch::Contains("s_churn must be >= 0"));
}
