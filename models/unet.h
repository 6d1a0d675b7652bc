// The DDPM UNet (Ho et al. 2020): sinusoidal time embedding and MLP, residual blocks with a time
// projection, self-attention at chosen resolutions, GroupNorm everywhere, zero-initialized output
// layers. NHWC throughout. Parameter names follow the reference implementation's layout, with
// underscores where it nests one level deeper (conv_in, temb_dense.0, down.0.block.0.conv1.weight,
// down.0.downsample, mid_attn_1, up.3.upsample, norm_out, conv_out).
#pragma once
#include <vector>

#include "engine/nn/layers.h"
#include "models/class_embedding.h"
#include "models/denoiser.h"

namespace ddpm {

struct UNetConfig {
  int resolution = 32;  // input height = width
  int in_channels = 3;
  int out_channels = 3;  // 2 * in_channels for a learned-range variance
  int base_channels = 128;
  std::vector<int> channel_mult{1, 2, 2, 2};
  int num_res_blocks = 2;
  std::vector<int> attention_resolutions{16};
  int heads = 1;
  double dropout = 0.1;
  int groups = 32;
  // Options that published checkpoints (diffusers' UNet2DModel) need; the defaults are DDPM's.
  double norm_eps = 1e-6;        // GroupNorm epsilon everywhere
  int head_channels = 0;         // > 0: attention heads of this many channels each (instead of `heads`)
  bool flip_sin_to_cos = false;  // time features [cos, sin] instead of [sin, cos]
  int freq_shift = 1;            // time frequencies exp(-ln(10000) i / (base_channels/2 - freq_shift))
  int downsample_padding = 1;    // 1: pad 1 on every side; 0: pad only bottom and right (TF "SAME")
  int num_classes = 0;  // > 0: class-conditional, a class embedding added to the time embedding
  // Fused ops: attention's q, k, v projections as one op (linear_qkv + attention_qkv), and each
  // residual block's time-embedding add and dropout inside its second GroupNorm (group_norm's
  // sample_bias and dropout). false runs the ops they replace (same parameters, same results): for
  // parity tests and benchmarks.
  bool fused = true;
};

class ResBlock;
class AttnBlock;

class UNet final : public Denoiser {
 public:
  explicit UNet(const UNetConfig& config);
  Tensor forward(const Tensor& x, const Tensor& t, const DropoutKey& key,
                 const ClassLabels& labels = {}) override;
  int num_classes() const override { return config_.num_classes; }
  const UNetConfig& config() const { return config_; }
  void set_fused(bool on) { config_.fused = on; }  // see UNetConfig::fused

 private:
  struct Level;
  UNetConfig config_;
  Conv2d* conv_in_;
  ModuleList<Linear>* temb_dense_;
  ModuleList<Level>* down_;
  ResBlock* mid_block_1_;
  AttnBlock* mid_attn_1_;
  ResBlock* mid_block_2_;
  ModuleList<Level>* up_;
  GroupNorm* norm_out_;
  Conv2d* conv_out_;
  ClassEmbedding* class_emb_ = nullptr;  // [4 ch] per class; only when num_classes > 0
};

}  // namespace ddpm
