// pytorch-fid's Inception-v3 (the FID variant of TensorFlow's 2015-12-05 graph), forward only:
// 2048-d pool features and 1008-way logits. Built from the file scripts/convert_inception.py
// writes (PyTorch's names, convolution weights as [Cout, KH, KW, Cin], BatchNorm unfolded); each
// BatchNorm (eps 0.001) is folded into its convolution here, in float64, at load time.
//
// What differs from torchvision's Inception-v3 (pytorch-fid's FIDInception* blocks): the pooling
// branch of Mixed_5b..5d, 6b..6e and 7b averages over the in-bounds taps only
// (count_include_pad = False), and Mixed_7c's pooling branch takes a 3x3 max instead.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/device.h"
#include "engine/io/safetensors.h"
#include "engine/pad2d.h"
#include "engine/tensor.h"

namespace ddpm {

// One BasicConv2d (convolution without bias, BatchNorm, ReLU) of the network.
struct InceptionConvSpec {
  std::string name;  // e.g. "Mixed_6b.branch7x7_2"
  int64_t cin, cout;
  int kh, kw, stride;
  Pad2d pad;
};

// Every convolution of the network, in the order the forward runs them.
const std::vector<InceptionConvSpec>& inception_conv_specs();

// The tensors a converted file must hold, with their shapes (all float32): per convolution
// NAME.conv.weight [Cout, KH, KW, Cin] and NAME.bn.{weight, bias, running_mean, running_var} [Cout];
// fc.weight [1008, 2048], fc.bias [1008].
std::vector<std::pair<std::string, Shape>> inception_expected_tensors();

class InceptionV3 {
 public:
  static constexpr int64_t kFeatureDim = 2048, kClasses = 1008, kInputSize = 299;
  static constexpr double kBatchNormEps = 0.001;

  // Checks every name, shape and dtype of `file` (throwing at the first mismatch with what to do;
  // `source` names the file in errors), folds the BatchNorms and moves the weights to `device`
  // in `dtype` (float32 or float64 on the CPU; float32 or bfloat16 on CUDA).
  InceptionV3(const NamedTensors& file, const std::string& source, Device device, DType dtype = DType::F32);

  struct Output {
    Tensor features;  // [N, 2048]: the average pool over the final 8x8 map
    Tensor logits;    // [N, 1008]: fc(features)
  };
  // images [N, H, W, 1 or 3] in [-1, 1], on the network's device and in its dtype. Resized to
  // 299x299 (bilinear, align_corners = False) unless already that size; 1 channel is repeated to
  // 3. Runs without recording gradients.
  Output forward(const Tensor& images) const;

  Device device() const { return device_; }
  DType dtype() const { return dtype_; }

 private:
  struct FoldedConv {
    Tensor weight, bias;  // [Cout, KH, KW, Cin], [Cout]: conv * BN scale, BN shift
    int stride;
    Pad2d pad;
  };
  Tensor conv(const std::string& name, const Tensor& x) const;  // conv + folded BN + ReLU
  Tensor mixed_a(const std::string& name, const Tensor& x) const;
  Tensor mixed_b(const std::string& name, const Tensor& x) const;
  Tensor mixed_c(const std::string& name, const Tensor& x) const;
  Tensor mixed_d(const std::string& name, const Tensor& x) const;
  Tensor mixed_e(const std::string& name, const Tensor& x, bool max_pool_branch) const;

  std::map<std::string, FoldedConv> convs_;
  Tensor fc_weight_, fc_bias_;  // [1008, 2048], [1008]
  Device device_;
  DType dtype_;
};

}  // namespace ddpm
