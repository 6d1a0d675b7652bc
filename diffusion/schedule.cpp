#include "diffusion/schedule.h"

#include <algorithm>
#include <cmath>

#include "engine/op_args.h"

namespace ddpm {

namespace {
std::vector<double> linspace(double from, double to, int n) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) v[static_cast<size_t>(i)] = n == 1 ? from : from + (to - from) * i / (n - 1);
  return v;
}

double cosine_abar(double s, int steps) {
  const double angle = (s / steps + 0.008) / 1.008 * M_PI / 2;
  return std::cos(angle) * std::cos(angle);
}
}  // namespace

std::vector<double> make_betas(BetaSchedule kind, int steps, bool scale_to_1000) {
  DDPM_CHECK(steps >= 2, "schedule: need at least 2 steps, got ", steps);
  const double scale = scale_to_1000 ? 1000.0 / steps : 1.0;
  const double start = 1e-4 * scale, end = 0.02 * scale;
  std::vector<double> betas;
  switch (kind) {
    case BetaSchedule::Linear: betas = linspace(start, end, steps); break;
    case BetaSchedule::Quadratic:
      betas = linspace(std::sqrt(start), std::sqrt(end), steps);
      for (double& b : betas) b *= b;
      break;
    case BetaSchedule::Sigmoid:
      betas = linspace(-6, 6, steps);
      for (double& b : betas) b = start + (end - start) / (1 + std::exp(-b));
      break;
    case BetaSchedule::Cosine:
      for (int t = 0; t < steps; ++t)
        betas.push_back(std::min(1 - cosine_abar(t + 1, steps) / cosine_abar(t, steps), 0.999));
      break;
  }
  for (double b : betas)
    DDPM_CHECK(b > 0 && b < 1, "schedule: ", beta_schedule_name(kind), " with ", steps,
               " steps gives beta = ", b, " outside (0, 1); use scale_to_1000 = false or more steps");
  return betas;
}

Schedule::Schedule(std::vector<double> betas, std::vector<int> timesteps)
    : betas_(std::move(betas)), timesteps_(std::move(timesteps)) {
  const size_t n = betas_.size();
  DDPM_CHECK(n >= 2, "schedule: need at least 2 steps, got ", n);
  for (double b : betas_) DDPM_CHECK(b > 0 && b < 1, "schedule: beta = ", b, " is outside (0, 1)");
  if (timesteps_.empty())
    for (size_t i = 0; i < n; ++i) timesteps_.push_back(static_cast<int>(i));
  DDPM_CHECK(timesteps_.size() == n, "schedule: ", timesteps_.size(), " timesteps for ", n, " betas");

  double running = 1.0;
  for (size_t t = 0; t < n; ++t) {
    const double beta = betas_[t], alpha = 1 - beta;
    abar_prev_.push_back(running);
    running *= alpha;
    alphas_.push_back(alpha);
    abar_.push_back(running);
    sqrt_abar_.push_back(std::sqrt(running));
    sqrt_one_minus_abar_.push_back(std::sqrt(1 - running));
    const double prev = abar_prev_.back();
    posterior_variance_.push_back(beta * (1 - prev) / (1 - running));
    coef1_.push_back(beta * std::sqrt(prev) / (1 - running));
    coef2_.push_back(std::sqrt(alpha) * (1 - prev) / (1 - running));
  }
  // beta_tilde_0 = 0: its log is replaced by log beta_tilde_1 (and so is fixed-large's variance).
  for (size_t t = 0; t < n; ++t) {
    posterior_log_variance_.push_back(std::log(posterior_variance_[t == 0 ? 1 : t]));
    large_variance_.push_back(t == 0 ? posterior_variance_[1] : betas_[t]);
    large_log_variance_.push_back(std::log(large_variance_.back()));
  }
}

Schedule Schedule::respaced(const std::vector<int>& keep) const {
  DDPM_CHECK(keep.size() >= 2, "respacing: need at least 2 steps, got ", keep.size());
  std::vector<double> betas;
  std::vector<int> timesteps;
  for (size_t k = 0; k < keep.size(); ++k) {
    const int s = keep[k];
    DDPM_CHECK(s >= 0 && s < steps() && (k == 0 || s > keep[k - 1]), "respacing: steps must be sorted, unique and in [0, ",
               steps(), "); got ", s, " at position ", k);
    const int prev = k == 0 ? -1 : keep[k - 1];
    betas.push_back(s == prev + 1 ? betas_[static_cast<size_t>(s)]
                                  : 1 - abar_[static_cast<size_t>(s)] / (prev < 0 ? 1.0 : abar_[static_cast<size_t>(prev)]));
    timesteps.push_back(timesteps_[static_cast<size_t>(s)]);
  }
  return Schedule(std::move(betas), std::move(timesteps));
}

Tensor Schedule::coefficient_table(DType dtype, Device device) const {
  const size_t n = betas_.size();
  std::vector<double> table(kCoefCount * n);
  auto row = [&](DiffusionCoef r, auto value) {
    for (size_t t = 0; t < n; ++t) table[r * n + t] = value(t);
  };
  row(kSqrtAbar, [&](size_t t) { return sqrt_abar_[t]; });
  row(kSqrtOneMinusAbar, [&](size_t t) { return sqrt_one_minus_abar_[t]; });
  row(kSqrtRecipAbar, [&](size_t t) { return 1 / sqrt_abar_[t]; });
  row(kSqrtRecipm1Abar, [&](size_t t) { return std::sqrt(1 / abar_[t] - 1); });
  row(kPosteriorCoef1, [&](size_t t) { return coef1_[t]; });
  row(kPosteriorCoef2, [&](size_t t) { return coef2_[t]; });
  row(kPosteriorLogVar, [&](size_t t) { return posterior_log_variance_[t]; });
  row(kLargeLogVar, [&](size_t t) { return large_log_variance_[t]; });
  row(kLogBeta, [&](size_t t) { return std::log(betas_[t]); });
  row(kAbar, [&](size_t t) { return abar_[t]; });
  row(kAbarPrev, [&](size_t t) { return abar_prev_[t]; });
  return Tensor::from_vector(table, {kCoefCount, static_cast<int64_t>(n)}, dtype, device);
}

std::vector<int> spaced_steps(int steps, int count) {
  DDPM_CHECK(count >= 2 && count <= steps, "respacing: cannot pick ", count, " steps out of ", steps,
             " (need 2 <= count <= T)");
  std::vector<int> out;
  for (int k = 0; k < count; ++k) out.push_back(static_cast<int>(std::lround(static_cast<double>(k) * (steps - 1) / (count - 1))));
  return out;
}

}  // namespace ddpm
