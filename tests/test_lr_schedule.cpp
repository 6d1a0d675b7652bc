// The learning-rate schedule (tools/lr_schedule.h) against its closed form, written out here
// independently: lr * min(1, s / W), times (1 + cos(pi (s - W) / (S - W))) / 2 after the warm-up
// when decaying.
#include <catch2/catch.hpp>
#include <cmath>

#include "tools/lr_schedule.h"

using namespace ddpm;
using Catch::Contains;

TEST_CASE("lr_at: linear warm-up, then constant", "[lr]") {
  const double lr = 3e-4;
  const LrSchedule s(lr, 100, 1000, false);
  CHECK(s.lr_at(0) == 0);
  for (int64_t step : {1, 2, 37, 50, 99})
    CHECK(s.lr_at(step) == Approx(lr * static_cast<double>(step) / 100.0).epsilon(1e-15));
  for (int64_t step : {100, 101, 500, 1000, 5000}) CHECK(s.lr_at(step) == lr);
  // Without warm-up every step is at the peak.
  const LrSchedule flat(lr, 0, 1000, false);
  for (int64_t step : {1, 2, 1000}) CHECK(flat.lr_at(step) == lr);
}

TEST_CASE("lr_at: warm-up, then half a cosine down to zero at the last step", "[lr]") {
  const double lr = 1e-3, pi = std::acos(-1.0);
  const int64_t warmup = 10, total = 110;
  const LrSchedule s(lr, warmup, total, true);
  CHECK(s.lr_at(5) == Approx(lr * 0.5).epsilon(1e-15));
  CHECK(s.lr_at(warmup) == lr);  // the peak: the cosine starts after it
  CHECK(s.lr_at(60) == Approx(lr * 0.5).epsilon(1e-12));  // halfway through the decay
  CHECK(std::fabs(s.lr_at(total)) < 1e-18);                // zero at the last step
  for (int64_t step = warmup + 1; step <= total; step += 7) {
    const double progress = static_cast<double>(step - warmup) / static_cast<double>(total - warmup);
    CHECK(s.lr_at(step) == Approx(lr * (1 + std::cos(pi * progress)) / 2).epsilon(1e-12).margin(1e-18));
  }
  for (int64_t step = warmup + 1; step <= total; ++step) CHECK(s.lr_at(step) <= s.lr_at(step - 1));
}

TEST_CASE("lr_at: the schedule of a config, and bad settings", "[lr][errors]") {
  const Config c = load_config("", {"train.lr=0.002", "train.warmup=4", "train.steps=20"});
  const LrSchedule s(c.train, false);
  CHECK(s.lr_at(2) == Approx(0.001).epsilon(1e-15));
  CHECK(s.lr_at(20) == 0.002);
  CHECK_THROWS_WITH(LrSchedule(0.0, 0, 10, false), Contains("train.lr > 0"));
  CHECK_THROWS_WITH(LrSchedule(1e-3, -1, 10, false), Contains("train.warmup >= 0"));
  CHECK_THROWS_WITH(LrSchedule(1e-3, 10, 10, true), Contains("warmup < train.steps"));
}
