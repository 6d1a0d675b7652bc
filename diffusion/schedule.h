// Noise schedules and every table derived from them, in float64 (docs/math.md, "Schedule"). Code step
// t = 0..T-1 is the paper's step t+1.
#pragma once
#include <string>
#include <vector>

#include "diffusion/types.h"
#include "engine/tensor.h"

namespace ddpm {

// beta_0..beta_{T-1}. Linear, quadratic and sigmoid span [1e-4, 0.02]; with scale_to_1000 both ends
// are multiplied by 1000 / T (the improved-DDPM convention that keeps abar_{T-1} comparable for
// T != 1000). Cosine: abar(s) = cos^2((s/T + 0.008) / 1.008 * pi/2), beta_t = min(1 -
// abar(t+1)/abar(t), 0.999); scale_to_1000 does not apply to it.
std::vector<double> make_betas(BetaSchedule kind, int steps, bool scale_to_1000 = false);

class Schedule {
 public:
  // timesteps[k]: the step index the model is told at entry k (identity when empty: a full chain).
  explicit Schedule(std::vector<double> betas, std::vector<int> timesteps = {});
  Schedule(BetaSchedule kind, int steps, bool scale_to_1000 = false)
      : Schedule(make_betas(kind, steps, scale_to_1000)) {}

  int steps() const { return static_cast<int>(betas_.size()); }
  const std::vector<int>& timesteps() const { return timesteps_; }

  const std::vector<double>& betas() const { return betas_; }
  const std::vector<double>& alphas() const { return alphas_; }
  const std::vector<double>& abar() const { return abar_; }            // prod_{i<=t} alpha_i
  const std::vector<double>& abar_prev() const { return abar_prev_; }  // abar_{t-1}, 1 at t = 0
  const std::vector<double>& sqrt_abar() const { return sqrt_abar_; }
  const std::vector<double>& sqrt_one_minus_abar() const { return sqrt_one_minus_abar_; }
  const std::vector<double>& posterior_variance() const { return posterior_variance_; }  // beta_tilde
  // log beta_tilde with beta_tilde_0 (= 0) replaced by beta_tilde_1.
  const std::vector<double>& posterior_log_variance_clipped() const { return posterior_log_variance_; }
  const std::vector<double>& posterior_mean_coef1() const { return coef1_; }  // x_0 coefficient
  const std::vector<double>& posterior_mean_coef2() const { return coef2_; }  // x_t coefficient
  // Fixed-large variance [beta_tilde_1, beta_1, beta_2, ...] and its log.
  const std::vector<double>& large_variance() const { return large_variance_; }
  const std::vector<double>& large_log_variance() const { return large_log_variance_; }

  // The schedule over a subset of steps (sorted, unique, within 0..T-1): abar restricted to it,
  // beta'_k = 1 - abar_{S_k} / abar_{S_{k-1}}. Where S_k follows S_{k-1} directly the original
  // beta is kept as is, so respacing to every step reproduces the full chain bit for bit.
  Schedule respaced(const std::vector<int>& keep) const;

  // The per-step coefficient table [kCoefCount, T] that the fused kernels read (engine/op_args.h
  // DiffusionCoef rows), cast once to `dtype` on `device`.
  Tensor coefficient_table(DType dtype, Device device) const;

 private:
  std::vector<double> betas_, alphas_, abar_, abar_prev_, sqrt_abar_, sqrt_one_minus_abar_;
  std::vector<double> posterior_variance_, posterior_log_variance_, coef1_, coef2_;
  std::vector<double> large_variance_, large_log_variance_;
  std::vector<int> timesteps_;
};

// `count` steps spread evenly over 0..T-1, always including 0 and T-1 (for respaced sampling).
std::vector<int> spaced_steps(int steps, int count);

}  // namespace ddpm
