// Few-step samplers over noise levels (diffusion/noise_levels.h), each step one fused solver_step
// kernel (engine/op_args.h) after the model call:
//   DPM-Solver++(2M) and (3M): Lu et al. 2022, "DPM-Solver++", multistep data-prediction solvers
//     of the probability-flow ODE, one model evaluation per level;
//   Heun: Karras et al. 2022 (EDM), Algorithm 2, second order, optional churn (S_churn, S_tmin,
//     S_tmax, S_noise), two evaluations per level but one for the last;
//   Euler ancestral: k-diffusion's split of each step into a deterministic Euler step to sigma_down
//     and fresh noise of sigma_up, eta scaling the noise.
// They work with epsilon, x0 or v models (the diffusion's prediction; a learned-range variance
// output is ignored) and call nothing but the ModelFn. The formulas: docs/math.md.
#pragma once
#include <limits>
#include <string>

#include "diffusion/noise_levels.h"
#include "diffusion/samplers.h"

namespace ddpm {

enum class Solver { DpmPP2M, DpmPP3M, Heun, EulerAncestral };
const char* solver_name(Solver s);

struct SolverConfig {
  Solver method = Solver::DpmPP2M;
  // Heun: churn gamma = min(s_churn / K, sqrt(2) - 1) at levels in [s_tmin, s_tmax] (K levels).
  double s_churn = 0.0, s_tmin = 0.0, s_tmax = std::numeric_limits<double>::infinity();
  double s_noise = 1.0;  // Heun's churn noise and Euler ancestral's noise are scaled by it
  double eta = 1.0;      // Euler ancestral: 0 is the deterministic Euler method, 1 k-diffusion's default
  // DPM-Solver++: lower orders next to the last step for short chains (< 15 levels), as Lu et
  // al.'s lower_order_final; the step to sigma = 0 is first order regardless.
  bool lower_order_final = true;
};
void validate(const SolverConfig& config);

// Model evaluations the solver makes over `levels` (progress totals).
int solver_evaluations(const SolverConfig& config, const NoiseLevels& levels);

// From x_T (VP-scaled, at levels.sigma[0]; not modified) down to the data. Noise: Philox (seed,
// stream + 1 + i) for the i-th kernel call that adds noise.
Tensor solve(const GaussianDiffusion& diffusion, const ModelFn& model, const Tensor& x_T, const NoiseLevels& levels,
             const SolverConfig& config, const SampleOptions& options);

}  // namespace ddpm
