#include "models/classifier.h"

#include "engine/ops.h"

namespace ddpm {

namespace {
// x + conv2(GroupNorm+SiLU(conv1(GroupNorm+SiLU(x)))); conv2 starts at zero, so every block
// starts as the identity and the network as a shallow one.
class ClassifierBlock final : public Module {
 public:
  ClassifierBlock(int64_t channels, int groups) {
    norm1_ = &add_module<GroupNorm>("norm1", channels, groups);
    conv1_ = &add_module<Conv2d>("conv1", channels, channels, 3);
    norm2_ = &add_module<GroupNorm>("norm2", channels, groups);
    conv2_ = &add_module<Conv2d>("conv2", channels, channels, 3, 1, -1, 0.0);
  }
  Tensor forward(const Tensor& x) const {  // [N, H, W, C] -> same
    Tensor h = conv1_->forward(norm1_->forward(x, true));
    return add(x, conv2_->forward(norm2_->forward(h, true)));
  }

 private:
  GroupNorm *norm1_, *norm2_;
  Conv2d *conv1_, *conv2_;
};
}  // namespace

class ClassifierStage final : public Module {
 public:
  ClassifierStage(int64_t in, int64_t out, bool downsample, int blocks, int groups) {
    if (downsample) downsample_ = &add_module<Conv2d>("downsample", in, out, 3, 2, 1);
    blocks_ = &add_module<ModuleList<ClassifierBlock>>("blocks");
    for (int b = 0; b < blocks; ++b) blocks_->append(out, groups);
  }
  Tensor forward(const Tensor& x) const {  // [N, H, W, in] -> [N, H', W', out], H' = ceil(H / 2) after a downsample
    Tensor h = downsample_ ? downsample_->forward(x) : x;
    for (size_t b = 0; b < blocks_->size(); ++b) h = (*blocks_)[b].forward(h);
    return h;
  }

 private:
  Conv2d* downsample_ = nullptr;
  ModuleList<ClassifierBlock>* blocks_;
};

Classifier::Classifier(const ClassifierConfig& config) : config_(config) {
  DDPM_CHECK(config.in_channels >= 1 && config.classes >= 2 && !config.channels.empty() && config.blocks >= 0,
             "Classifier: need in_channels >= 1, classes >= 2, at least one stage and blocks >= 0; got in_channels ",
             config.in_channels, ", classes ", config.classes, ", ", config.channels.size(), " stages, blocks ",
             config.blocks);
  for (int c : config.channels)
    DDPM_CHECK(c >= 1 && config.groups >= 1 && c % config.groups == 0, "Classifier: ", c,
               " channels do not split into ", config.groups, " GroupNorm groups (classifier.groups)");
  conv_in_ = &add_module<Conv2d>("conv_in", config.in_channels, config.channels[0], 3);
  stages_ = &add_module<ModuleList<ClassifierStage>>("stages");
  for (size_t s = 0; s < config.channels.size(); ++s)
    stages_->append(config.channels[s > 0 ? s - 1 : 0], config.channels[s], s > 0, config.blocks, config.groups);
  norm_out_ = &add_module<GroupNorm>("norm_out", config.channels.back(), config.groups);
  head_ = &add_module<Linear>("head", config.channels.back(), config.classes);
}

ClassifierOutput Classifier::forward(const Tensor& x) const {
  DDPM_CHECK(x.rank() == 4 && x.dim(3) == config_.in_channels, "Classifier: expected images [N, H, W, ",
             config_.in_channels, "], got ", shape_str(x.shape()));
  Tensor h = conv_in_->forward(x);
  for (size_t s = 0; s < stages_->size(); ++s) h = (*stages_)[s].forward(h);
  ClassifierOutput out;
  out.features = global_avg_pool(norm_out_->forward(h, true));
  out.logits = head_->forward(out.features);
  return out;
}

}  // namespace ddpm
