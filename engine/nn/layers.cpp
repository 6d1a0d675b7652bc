#include "engine/nn/layers.h"

#include <cmath>

#include "engine/ops.h"

namespace ddpm {

namespace {
// A parameter in the dtype of the activations it meets (mixed precision: float32 master weights,
// bfloat16 compute); the conversion is differentiable, so gradients reach the master weights.
// Under ParameterSet::keep_compute_copy the parameter's copy in that dtype is read instead: no
// cast, and its gradient waits in the copy's buffer for ParameterSet::fold_compute_grads.
Tensor as_compute(const Tensor& param, const Tensor& x) {
  if (!param.defined()) return param;
  const std::shared_ptr<TensorImpl>& copy = param.impl().compute_copy;
  if (copy && copy->dtype == x.dtype() && param.dtype() != x.dtype()) return Tensor(copy);
  return convert(param, x.dtype());
}
}  // namespace

InitSpec variance_scaling(double init_scale, int64_t fan_in, int64_t fan_out) {
  if (init_scale == 0) return {InitSpec::Zeros, 0};
  double fan_avg = 0.5 * static_cast<double>(fan_in + fan_out);
  return {InitSpec::Uniform, std::sqrt(3.0 * init_scale / fan_avg)};
}

Linear::Linear(int64_t in_features, int64_t out_features, double init_scale, bool bias) {
  weight_ = register_parameter("weight", {out_features, in_features},
                               variance_scaling(init_scale, in_features, out_features));
  if (bias) bias_ = register_parameter("bias", {out_features}, {InitSpec::Zeros, 0});
}

Tensor Linear::forward(const Tensor& x) const { return linear(x, as_compute(weight_, x), as_compute(bias_, x)); }
Tensor Linear::weight_for(const Tensor& x) const { return as_compute(weight_, x); }
Tensor Linear::bias_for(const Tensor& x) const { return as_compute(bias_, x); }

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, int kernel, int stride, int pad, double init_scale)
    : Conv2d(in_channels, out_channels,
             Conv2dOptions{kernel, kernel, stride, Pad2d(pad < 0 ? kernel / 2 : pad), init_scale, true}) {}

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, const Conv2dOptions& options)
    : stride_(options.stride), pad_(options.pad) {
  const int64_t taps = static_cast<int64_t>(options.kernel_h) * options.kernel_w;
  weight_ = register_parameter("weight", {out_channels, options.kernel_h, options.kernel_w, in_channels},
                               variance_scaling(options.init_scale, in_channels * taps, out_channels * taps));
  if (options.bias) bias_ = register_parameter("bias", {out_channels}, {InitSpec::Zeros, 0});
}

Tensor Conv2d::forward(const Tensor& x) const {
  return conv2d(x, as_compute(weight_, x), as_compute(bias_, x), stride_, pad_);
}

GroupNorm::GroupNorm(int64_t channels, int groups, double eps) : groups_(groups), eps_(eps) {
  DDPM_CHECK(groups >= 1 && channels % groups == 0, "GroupNorm: ", channels,
             " channels do not split into ", groups, " groups");
  gamma_ = register_parameter("weight", {channels}, {InitSpec::Ones, 0});
  beta_ = register_parameter("bias", {channels}, {InitSpec::Zeros, 0});
}

Tensor GroupNorm::forward(const Tensor& x, bool fuse_silu) const {
  return group_norm(x, as_compute(gamma_, x), as_compute(beta_, x), groups_, eps_, fuse_silu);
}

Tensor GroupNorm::forward(const Tensor& x, bool fuse_silu, const Tensor& sample_bias, const DropoutMask& dropout) const {
  return group_norm(x, as_compute(gamma_, x), as_compute(beta_, x), groups_, eps_, fuse_silu, sample_bias, dropout);
}

}  // namespace ddpm
