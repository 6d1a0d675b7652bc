// A small MLP denoiser for 2-D toy data: points as [N, 1, 1, 2], a sinusoidal time embedding added
// after the input layer, residual SiLU blocks, a zero-initialized output layer.
#pragma once
#include "engine/nn/layers.h"
#include "models/class_embedding.h"
#include "models/denoiser.h"

namespace ddpm {

struct MlpConfig {
  int in_channels = 2;
  int out_channels = 2;  // 4 for a learned-range variance
  int hidden = 128;
  int blocks = 3;
  int time_embedding = 64;
  int num_classes = 0;  // > 0: class-conditional, a class embedding added with the time embedding
};

class MlpDenoiser final : public Denoiser {
 public:
  explicit MlpDenoiser(const MlpConfig& config);
  Tensor forward(const Tensor& x, const Tensor& t, const DropoutKey& key,
                 const ClassLabels& labels = {}) override;
  int num_classes() const override { return config_.num_classes; }

 private:
  MlpConfig config_;
  Linear* input_;
  Linear* temb_;
  ModuleList<Linear>* blocks_;
  Linear* output_;
  ClassEmbedding* class_emb_ = nullptr;  // [hidden] per class; only when num_classes > 0
};

}  // namespace ddpm
