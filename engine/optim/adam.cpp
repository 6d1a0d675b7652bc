#include "engine/optim/adam.h"

#include <cmath>

#include "engine/backend.h"
#include "engine/optim/ema.h"

namespace ddpm {

Adam::Adam(const ParameterSet& params, AdamConfig config)
    : params_(params),
      config_(config),
      m_(Tensor::zeros(params.values().shape(), params.values().dtype(), params.values().device())),
      v_(Tensor::zeros(params.values().shape(), params.values().dtype(), params.values().device())) {
  DDPM_CHECK(config.beta1 >= 0 && config.beta1 < 1 && config.beta2 >= 0 && config.beta2 < 1 && config.eps > 0 &&
                 config.weight_decay >= 0,
             "adam: invalid hyper-parameters (need 0 <= beta1, beta2 < 1, eps > 0, weight_decay >= 0), got betas (",
             config.beta1, ", ", config.beta2, "), eps ", config.eps, ", weight_decay ", config.weight_decay);
}

// The arguments both forms of the step share: the buffers and the fixed hyper-parameters.
adam_step_args Adam::common_args(const Ema* ema) const {
  adam_step_args args;
  args.params = params_.values();
  args.grads = params_.grads();
  args.m = m_;
  args.v = v_;
  args.params_copy = params_.compute_values();  // mixed precision: rewritten in the same pass
  if (ema) {
    check_shape("adam", "ema shadow", ema->shadow(), params_.values().shape());
    args.ema = ema->shadow();
    args.ema_decay = ema->decay();
  }
  args.beta1 = config_.beta1;
  args.beta2 = config_.beta2;
  args.eps = config_.eps;
  args.weight_decay = config_.weight_decay;
  args.decoupled_weight_decay = config_.decoupled_weight_decay;
  return args;
}

void Adam::step(double lr, double grad_scale, const Ema* ema) {
  DDPM_CHECK(lr >= 0, "adam: the learning rate must be >= 0, got ", lr);
  ++steps_;
  adam_step_args args = common_args(ema);
  args.lr = lr;
  args.step = steps_;
  args.grad_scale = grad_scale;
  backend_for(params_.values().device()).adam_step(args);
}

void Adam::step_on_device(const Tensor& scalars, const Tensor& grad_sum_squares, double clip_norm, const Ema* ema) {
  adam_step_args args = common_args(ema);
  args.scalars = scalars;
  if (clip_norm > 0) {
    args.grad_sum_squares = grad_sum_squares;
    args.clip_norm = clip_norm;
  }
  backend_for(params_.values().device()).adam_step(args);
}

std::vector<double> Adam::step_scalars(double lr, int64_t step) const {
  DDPM_CHECK(lr >= 0, "adam: the learning rate must be >= 0, got ", lr);
  DDPM_CHECK(step >= 1, "adam: the step count is 1-based, got ", step);
  // The CPU kernel's expressions (kernels/cpu/optim.cpp), so either form computes the same doubles.
  const double s = static_cast<double>(step);
  return {lr, 1.0 - std::pow(config_.beta1, s), 1.0 - std::pow(config_.beta2, s)};
}

void Adam::set_steps(int64_t steps) {
  DDPM_CHECK(steps >= 0, "adam: negative step count ", steps);
  steps_ = steps;
}

double grad_norm(const ParameterSet& params) {
  double total = 0;
  backend_for(params.grads().device()).sum_squares({params.grads(), &total});
  return std::sqrt(total);
}

double clip_grad_norm(const ParameterSet& params, double max_norm) {
  DDPM_CHECK(max_norm > 0, "clip_grad_norm: max_norm must be positive, got ", max_norm);
  const double norm = grad_norm(params);
  if (norm > max_norm) {
    const Tensor& g = params.grads();
    backend_for(g.device()).scale_forward({g, g, max_norm / norm});
  }
  return norm;
}

void grad_sum_squares(const ParameterSet& params, const Tensor& out) {
  sum_squares_args args{params.grads(), nullptr};
  args.out = out;
  backend_for(params.grads().device()).sum_squares(args);
}

}  // namespace ddpm
