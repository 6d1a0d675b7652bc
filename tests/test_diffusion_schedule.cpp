// Schedules and their derived tables against MATH.md's oracle values and the definitions.
#include <catch2/catch.hpp>
#include <cmath>

#include "diffusion/schedule.h"

using namespace ddpm;

TEST_CASE("linear schedule, T = 1000: MATH.md oracle values", "[diffusion][schedule]") {
  Schedule s(BetaSchedule::Linear, 1000);
  REQUIRE(s.abar()[0] == Approx(0.9999).epsilon(1e-15));
  REQUIRE(s.abar()[999] == Approx(4.035829765e-05).epsilon(1e-9));
  REQUIRE(s.posterior_variance()[1] == Approx(5.453187661e-05).epsilon(1e-9));
  REQUIRE(s.posterior_log_variance_clipped()[1] == Approx(-9.8167251353).epsilon(1e-10));
  // beta_tilde_0 = 0, so index 0 of the clipped log (and of fixed-large) repeats beta_tilde_1.
  REQUIRE(s.posterior_variance()[0] == 0.0);
  REQUIRE(s.posterior_log_variance_clipped()[0] == s.posterior_log_variance_clipped()[1]);
  REQUIRE(s.large_variance()[0] == s.posterior_variance()[1]);
  REQUIRE(s.large_variance()[5] == s.betas()[5]);
  REQUIRE(std::isfinite(s.large_log_variance()[0]));
}

TEST_CASE("cosine schedule, T = 1000: MATH.md oracle values", "[diffusion][schedule]") {
  Schedule s(BetaSchedule::Cosine, 1000);
  REQUIRE(s.betas()[0] == Approx(4.128422e-05).epsilon(1e-6));
  REQUIRE(s.betas()[998] == Approx(0.749999).epsilon(1e-6));
  REQUIRE(s.betas()[999] == 0.999);
  int clamped = 0;
  for (double b : s.betas()) clamped += b == 0.999;
  REQUIRE(clamped == 1);
  REQUIRE(s.abar()[999] == Approx(2.428767e-09).epsilon(1e-6));
}

TEST_CASE("derived tables follow their definitions for every schedule", "[diffusion][schedule]") {
  for (BetaSchedule kind : {BetaSchedule::Linear, BetaSchedule::Cosine, BetaSchedule::Quadratic, BetaSchedule::Sigmoid}) {
    Schedule s(kind, 50);
    double abar = 1;
    for (int t = 0; t < 50; ++t) {
      const size_t i = static_cast<size_t>(t);
      const double beta = s.betas()[i], prev = abar;
      abar *= 1 - beta;
      REQUIRE(s.abar()[i] == Approx(abar).epsilon(1e-14));
      REQUIRE(s.abar_prev()[i] == Approx(prev).epsilon(1e-14));
      REQUIRE(s.sqrt_one_minus_abar()[i] == Approx(std::sqrt(1 - abar)).epsilon(1e-14));
      REQUIRE(s.posterior_mean_coef1()[i] == Approx(beta * std::sqrt(prev) / (1 - abar)).epsilon(1e-14));
      REQUIRE(s.posterior_mean_coef2()[i] == Approx(std::sqrt(1 - beta) * (1 - prev) / (1 - abar)).epsilon(1e-14));
    }
  }
  // Quadratic and sigmoid span [1e-4, 0.02]; scale_to_1000 multiplies both ends by 1000/T.
  const auto q = make_betas(BetaSchedule::Quadratic, 10);
  REQUIRE(q.front() == Approx(1e-4));
  REQUIRE(q.back() == Approx(0.02));
  REQUIRE(std::sqrt(q[5]) - std::sqrt(q[4]) == Approx(std::sqrt(q[1]) - std::sqrt(q[0])));
  const auto scaled = make_betas(BetaSchedule::Linear, 100, true);
  REQUIRE(scaled.front() == Approx(1e-3));
  REQUIRE(scaled.back() == Approx(0.2));
  const auto sig = make_betas(BetaSchedule::Sigmoid, 101);
  REQUIRE(sig[50] == Approx(1e-4 + 0.5 * (0.02 - 1e-4)));
  REQUIRE_THROWS_WITH(parse_beta_schedule("cosin"), Catch::Contains("cosine") && Catch::Contains("cosin"));
  REQUIRE_THROWS_WITH(Schedule(BetaSchedule::Linear, 1), Catch::Contains("at least 2"));
}

TEST_CASE("respacing keeps abar on the kept steps and maps to the original indices", "[diffusion][schedule]") {
  Schedule full(BetaSchedule::Linear, 1000);
  const std::vector<int> keep = spaced_steps(1000, 50);
  REQUIRE(keep.front() == 0);
  REQUIRE(keep.back() == 999);
  Schedule r = full.respaced(keep);
  REQUIRE(r.steps() == 50);
  REQUIRE(r.timesteps() == keep);
  for (size_t k = 0; k < keep.size(); ++k)
    REQUIRE(r.abar()[k] == Approx(full.abar()[static_cast<size_t>(keep[k])]).epsilon(1e-12));
  // Every step kept: the identical schedule, bit for bit.
  std::vector<int> all(1000);
  for (int i = 0; i < 1000; ++i) all[static_cast<size_t>(i)] = i;
  Schedule same = full.respaced(all);
  REQUIRE(same.betas() == full.betas());
  REQUIRE(same.posterior_mean_coef1() == full.posterior_mean_coef1());
  REQUIRE_THROWS_WITH(full.respaced({5, 3}), Catch::Contains("sorted"));
  REQUIRE_THROWS_WITH(spaced_steps(10, 11), Catch::Contains("11"));
}
