// Adam and AdamW over a ParameterSet's flat buffers (one kernel pass per step), and global-norm
// gradient clipping.
#pragma once
#include <vector>

#include "engine/nn/parameters.h"

namespace ddpm {

class Ema;
struct adam_step_args;  // engine/op_args.h

// The learning rate is not here: step() takes it, from the caller's schedule (tools/lr_schedule.h).
struct AdamConfig {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.0;
  bool decoupled_weight_decay = false;  // true: AdamW (Loshchilov and Hutter); false: L2 in the gradient
};

class Adam {
 public:
  Adam(const ParameterSet& params, AdamConfig config);
  // One update from the current gradients, at learning rate `lr` (schedules live in the caller).
  // grad_scale multiplies the gradients first (the clipping coefficient). With `ema`, the same
  // pass over the buffers also updates the EMA shadow from the new parameters. Under mixed
  // precision (ParameterSet::keep_compute_copy) it also rewrites the parameters' compute copy.
  void step(double lr, double grad_scale = 1.0, const Ema* ema = nullptr);
  int64_t steps() const { return steps_; }
  const AdamConfig& config() const { return config_; }
  // Moments, for checkpoints: flat, the same layout as the parameter buffer (write through the
  // handles to restore them).
  const Tensor& first_moment() const { return m_; }
  const Tensor& second_moment() const { return v_; }
  void set_steps(int64_t steps);  // the bias-correction count, when resuming

  // The same update with its step-dependent values read on the device, for a captured training
  // step (tools/train_step_graph.h): `scalars` float64 [3] = adam_step_scalars(lr, step) and, with
  // clip_norm > 0, the clipping factor from `grad_sum_squares` (float64 [1], grad_sum_squares()),
  // fused into the pass. Same numbers as clip_grad_norm then step(lr). The step count is the
  // caller's: call count_step() on the host for every update (replays do not run host code).
  void step_on_device(const Tensor& scalars, const Tensor& grad_sum_squares, double clip_norm, const Ema* ema);
  void count_step() { ++steps_; }
  // {lr, 1 - beta1^step, 1 - beta2^step} as step(lr) computes them for the step-th update.
  std::vector<double> step_scalars(double lr, int64_t step) const;

 private:
  adam_step_args common_args(const Ema* ema) const;
  const ParameterSet& params_;
  AdamConfig config_;
  Tensor m_, v_;
  int64_t steps_ = 0;
};

// The L2 norm of all gradients together.
double grad_norm(const ParameterSet& params);
// Scales every gradient by max_norm / norm when the norm exceeds max_norm; returns the norm
// measured before clipping.
double clip_grad_norm(const ParameterSet& params, double max_norm);
// The sum of squares of all gradients into `out` (float64 [1] on the gradients' device), without
// a read-back: grad_norm is its square root.
void grad_sum_squares(const ParameterSet& params, const Tensor& out);

}  // namespace ddpm
