#include "diffusion/noise_levels.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"

namespace ddpm {

double alpha_of_sigma(double sigma) { return 1 / std::sqrt(1 + sigma * sigma); }
double vp_sigma_of_sigma(double sigma) { return sigma / std::sqrt(1 + sigma * sigma); }

namespace {
double log_sigma(const Schedule& s, int step) { return std::log(sigma_of_abar(s.abar()[static_cast<size_t>(step)])); }
}  // namespace

double sigma_at_step(const Schedule& schedule, double step) {
  const int last = schedule.steps() - 1;
  DDPM_CHECK(step >= 0 && step <= last, "noise levels: step ", step, " is outside [0, ", last, "]");
  const int lo = std::min(static_cast<int>(std::floor(step)), std::max(last - 1, 0));
  if (lo == last) return std::exp(log_sigma(schedule, lo));
  const double w = step - lo;
  return std::exp((1 - w) * log_sigma(schedule, lo) + w * log_sigma(schedule, lo + 1));
}

double step_of_sigma(const Schedule& schedule, double sigma) {
  DDPM_CHECK(sigma > 0, "noise levels: sigma must be > 0, got ", sigma);
  const int last = schedule.steps() - 1;
  const double target = std::log(sigma);
  if (last == 0 || target <= log_sigma(schedule, 0)) return 0;
  if (target >= log_sigma(schedule, last)) return last;
  // sigma rises strictly with the step (beta > 0): find lo with log sigma_lo <= target < log sigma_{lo+1}.
  int lo = 0, hi = last;
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    (log_sigma(schedule, mid) <= target ? lo : hi) = mid;
  }
  const double a = log_sigma(schedule, lo), b = log_sigma(schedule, lo + 1);
  return lo + (target - a) / (b - a);
}

double model_step_at(const Schedule& schedule, double step) {
  const std::vector<int>& map = schedule.timesteps();
  const int lo = std::min(static_cast<int>(std::floor(step)), schedule.steps() - 1);
  if (lo == schedule.steps() - 1) return map[static_cast<size_t>(lo)];
  const double w = step - lo;
  return (1 - w) * map[static_cast<size_t>(lo)] + w * map[static_cast<size_t>(lo + 1)];
}

NoiseLevels discrete_levels(const Schedule& schedule, int count) {
  const int steps = schedule.steps();
  DDPM_CHECK(count >= 1 && count <= steps, "noise levels: cannot take ", count, " of the schedule's ", steps,
             " steps (need 1 <= count <= T; use karras levels for more)");
  const std::vector<int> keep = count == 1 ? std::vector<int>{steps - 1} : spaced_steps(steps, count);
  NoiseLevels levels;
  for (auto k = keep.rbegin(); k != keep.rend(); ++k) {
    levels.sigma.push_back(sigma_of_abar(schedule.abar()[static_cast<size_t>(*k)]));
    levels.model_t.push_back(schedule.timesteps()[static_cast<size_t>(*k)]);
  }
  levels.sigma.push_back(0);
  return levels;
}

NoiseLevels karras_levels(const Schedule& schedule, int count, double rho) {
  DDPM_CHECK(count >= 1, "noise levels: need at least one Karras level, got ", count);
  DDPM_CHECK(rho > 0, "noise levels: rho must be > 0, got ", rho);
  const double smin = sigma_at_step(schedule, 0), smax = sigma_at_step(schedule, schedule.steps() - 1);
  const double a = std::pow(smax, 1 / rho), b = std::pow(smin, 1 / rho);
  NoiseLevels levels;
  for (int i = 0; i < count; ++i) {
    // The ends exactly, not through pow(pow(.)): the model is told steps T-1 and 0 there.
    const double sigma = i == 0 ? smax : i == count - 1 ? smin : std::pow(a + i * (b - a) / (count - 1), rho);
    levels.sigma.push_back(sigma);
    levels.model_t.push_back(model_step_at(schedule, step_of_sigma(schedule, sigma)));
  }
  levels.sigma.push_back(0);
  return levels;
}

}  // namespace ddpm
