// Basic layers over the ops. Weights use DDPM's initialization: uniform variance scaling with
// fan_avg, bound = sqrt(3 * init_scale / ((fan_in + fan_out) / 2)); init_scale = 0 gives zeros
// (DDPM zero-initializes the last layer of each residual branch and the output). Biases start at 0.
#pragma once
#include "engine/dropout_mask.h"
#include "engine/nn/module.h"
#include "engine/pad2d.h"

namespace ddpm {

InitSpec variance_scaling(double init_scale, int64_t fan_in, int64_t fan_out);

class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, double init_scale = 1.0, bool bias = true);
  Tensor forward(const Tensor& x) const;  // [..., in] -> [..., out]
  const Tensor& weight() const { return weight_; }
  // The weight and bias as forward(x) uses them (in x's dtype), for ops that fuse several layers.
  Tensor weight_for(const Tensor& x) const;
  Tensor bias_for(const Tensor& x) const;

 private:
  Tensor weight_, bias_;  // [out, in], [out]
};

// A KH x KW convolution with any stride and four-sided zero padding.
struct Conv2dOptions {
  int kernel_h = 3, kernel_w = 3;
  int stride = 1;
  Pad2d pad;
  double init_scale = 1.0;
  bool bias = true;
};

class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, int kernel, int stride = 1, int pad = -1,
         double init_scale = 1.0);  // square kernel; pad -1: "same" padding, kernel / 2
  Conv2d(int64_t in_channels, int64_t out_channels, const Conv2dOptions& options);
  Tensor forward(const Tensor& x) const;  // [N,H,W,Cin] -> [N,OH,OW,Cout]

 private:
  Tensor weight_, bias_;  // [Cout, KH, KW, Cin], [Cout] (undefined without bias)
  int stride_;
  Pad2d pad_;
};

class GroupNorm : public Module {
 public:
  GroupNorm(int64_t channels, int groups = 32, double eps = 1e-6);
  Tensor forward(const Tensor& x, bool fuse_silu = false) const;  // [N, ..., C] -> same
  // GroupNorm of x + sample_bias [N, C] (broadcast over the spatial axes), the sum never stored,
  // and the dropout op's mask applied to the result when dropout.p > 0.
  Tensor forward(const Tensor& x, bool fuse_silu, const Tensor& sample_bias, const DropoutMask& dropout = {}) const;

 private:
  Tensor gamma_, beta_;  // [C], [C]
  int groups_;
  double eps_;
};

}  // namespace ddpm
