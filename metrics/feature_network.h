// A network that maps images to the feature vectors (and, optionally, class logits) that sample
// quality metrics compare: Inception-v3 (pytorch-fid's FID variant) or a classifier the engine
// trained itself. The metrics never see which one it is.
#pragma once
#include <cstdint>
#include <string>

#include "engine/tensor.h"

namespace ddpm {

struct FeatureBatch {
  Tensor features;  // [N, D] float32 on the CPU
  Tensor logits;    // [N, K] float32 on the CPU, or undefined when the network has no classifier head
};

class FeatureNetwork {
 public:
  virtual ~FeatureNetwork() = default;
  // What eval.json records as the feature space, e.g. "inception-v3-fid sha256:<hex>" or
  // "classifier sha256:<hex of the checkpoint's weights file>".
  virtual std::string name() const = 0;
  virtual int64_t feature_dim() const = 0;
  virtual bool has_logits() const = 0;
  // images [N, H, W, C] float32 in [-1, 1] (any device); the network resizes or repeats channels
  // as it needs. Runs without gradients.
  virtual FeatureBatch run(const Tensor& images) = 0;
};

}  // namespace ddpm
