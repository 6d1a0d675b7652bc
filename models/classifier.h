// The image classifier of `ddpm classifier`: a small pre-activation ResNet whose pooled
// penultimate vector is a feature space for sample-quality metrics ("classifier-FD").
//
//   conv_in (3x3, channels[0])
//   stage s: [s > 0: downsample, a 3x3 stride-2 conv to channels[s]] + `blocks` residual blocks
//            x + conv2(GroupNorm+SiLU(conv1(GroupNorm+SiLU(x)))), conv2 zero-initialized
//   norm_out (GroupNorm+SiLU) -> global average pool = features [N, channels.back()]
//   head (linear) -> logits [N, classes]
// NHWC throughout; parameter names are dotted paths (stages.1.blocks.0.conv1.weight).
#pragma once
#include <vector>

#include "engine/nn/layers.h"

namespace ddpm {

struct ClassifierConfig {
  int in_channels = 1;
  int classes = 10;
  std::vector<int> channels{16, 32, 64};  // one stage per entry; each stage after the first halves H and W
  int blocks = 1;                          // residual blocks per stage
  int groups = 8;                          // GroupNorm groups (must divide every channel count)
};

struct ClassifierOutput {
  Tensor features;  // [N, channels.back()], the pooled penultimate activations
  Tensor logits;    // [N, classes]
};

class ClassifierStage;

class Classifier final : public Module {
 public:
  explicit Classifier(const ClassifierConfig& config);
  ClassifierOutput forward(const Tensor& x) const;  // x [N, H, W, in_channels] in [-1, 1]
  const ClassifierConfig& config() const { return config_; }
  int64_t feature_dim() const { return config_.channels.back(); }

 private:
  ClassifierConfig config_;
  Conv2d* conv_in_;
  ModuleList<ClassifierStage>* stages_;
  GroupNorm* norm_out_;
  Linear* head_;
};

}  // namespace ddpm
