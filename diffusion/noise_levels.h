// Noise levels for the samplers that step between arbitrary noise levels (diffusion/solvers.h).
// A level is Karras et al.'s sigma = sqrt((1 - abar) / abar) = exp(-lambda), lambda = log(alpha /
// sigma_vp) being DPM-Solver's half log-SNR, with alpha = sqrt(abar) = 1 / sqrt(1 + sigma^2) and
// sigma_vp = sqrt(1 - abar) = sigma alpha. States stay VP-scaled (x = alpha x0 + sigma_vp eps, what
// the model sees); Karras et al.'s state is x / alpha.
#pragma once
#include <cmath>
#include <vector>

#include "diffusion/schedule.h"

namespace ddpm {

// Descending levels sigma[0] > ... > sigma[K-1] > sigma[K] = 0 (the data), and the model's step
// index at each positive level, fractional where a level falls between table steps.
struct NoiseLevels {
  std::vector<double> sigma;
  std::vector<double> model_t;  // [K]
  int count() const { return static_cast<int>(model_t.size()); }  // K, the positive levels
};

inline double sigma_of_abar(double abar) { return std::sqrt((1 - abar) / abar); }
double alpha_of_sigma(double sigma);     // sqrt(abar) = 1 / sqrt(1 + sigma^2)
double vp_sigma_of_sigma(double sigma);  // sqrt(1 - abar) = sigma / sqrt(1 + sigma^2)

// The schedule as a continuous function of the (table) step index: log sigma linear between
// neighbouring steps (the interpolation k-diffusion's discrete-model wrappers use), exact at every
// step. step_of_sigma inverts it; outside [sigma_0, sigma_{T-1}] it clamps to 0 or T-1.
double sigma_at_step(const Schedule& schedule, double step);
double step_of_sigma(const Schedule& schedule, double sigma);
// The model's step index at a fractional table index: the schedule's timesteps() interpolated
// linearly (the identity for a schedule that is not respaced).
double model_step_at(const Schedule& schedule, double step);

// `count` of the schedule's own steps, spread as for respaced sampling (spaced_steps; all of them
// when count = T; the last step alone when count = 1), then 0.
NoiseLevels discrete_levels(const Schedule& schedule, int count);
// Karras et al. (2022), eq. 5: sigma_i = (smax^(1/rho) + i/(count-1) (smin^(1/rho) - smax^(1/rho)))^rho,
// i = 0..count-1, smin, smax = the schedule's sigma at steps 0 and T-1, then 0. The model is told
// step_of_sigma(sigma_i).
NoiseLevels karras_levels(const Schedule& schedule, int count, double rho = 7.0);

}  // namespace ddpm
