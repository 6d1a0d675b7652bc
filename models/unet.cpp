#include "models/unet.h"

#include <algorithm>
#include <string>

#include "engine/ops.h"
#include "models/sinusoidal_embedding.h"

namespace ddpm {

// GroupNorm+SiLU -> conv3x3 -> + time projection -> GroupNorm+SiLU -> dropout -> conv3x3 (zero
// init), plus the input (through a 1x1 conv when the channel count changes).
class ResBlock final : public Module {
 public:
  // fused: the UNet's switch (UNetConfig::fused), read at each forward.
  ResBlock(int64_t in, int64_t out, int64_t temb_dim, double dropout, int groups, int layer, double eps,
           const bool* fused)
      : out_(out), dropout_(dropout), layer_(layer), fused_(fused) {
    norm1_ = &add_module<GroupNorm>("norm1", in, groups, eps);
    conv1_ = &add_module<Conv2d>("conv1", in, out, 3);
    temb_proj_ = &add_module<Linear>("temb_proj", temb_dim, out);
    norm2_ = &add_module<GroupNorm>("norm2", out, groups, eps);
    conv2_ = &add_module<Conv2d>("conv2", out, out, 3, 1, -1, 0.0);
    if (in != out) shortcut_ = &add_module<Conv2d>("nin_shortcut", in, out, 1);
  }

  // x [N,H,W,in], temb_act = silu(temb) [N, temb_dim] -> [N,H,W,out]
  Tensor forward(const Tensor& x, const Tensor& temb_act, const DropoutKey& key) const {
    Tensor h = conv1_->forward(norm1_->forward(x, true));
    const Tensor temb = temb_proj_->forward(temb_act);  // [N, out]
    if (*fused_) {  // the add and the dropout inside the GroupNorm: neither h + temb nor its mask stored
      DropoutMask drop;
      if (training()) drop = {dropout_, key.seed, key.for_layer(layer_), key.offset_in(h)};
      h = norm2_->forward(h, true, temb, drop);
    } else {
      h = norm2_->forward(add(h, temb.reshape({x.dim(0), 1, 1, out_})), true);
      if (training()) h = dropout(h, dropout_, key.seed, key.for_layer(layer_), key.offset_in(h));
    }
    h = conv2_->forward(h);
    return add(shortcut_ ? shortcut_->forward(x) : x, h);
  }

 private:
  int64_t out_;
  double dropout_;
  int layer_;
  const bool* fused_;
  GroupNorm* norm1_;
  Conv2d* conv1_;
  Linear* temb_proj_;
  GroupNorm* norm2_;
  Conv2d* conv2_;
  Conv2d* shortcut_ = nullptr;
};

// x + proj_out(attention(q, k, v)) over the H*W positions, q/k/v/proj_out 1x1 (linear over C). q, k
// and v stay three layers (their names, layout and initial values); forward runs them as one op.
class AttnBlock final : public Module {
 public:
  // fused: the UNet's switch (UNetConfig::fused), read at each forward.
  AttnBlock(int64_t channels, int heads, int groups, double eps, const bool* fused) : heads_(heads), fused_(fused) {
    DDPM_CHECK(heads >= 1 && channels % heads == 0, "UNet: ", channels, " channels do not split into ", heads,
               " attention heads");
    norm_ = &add_module<GroupNorm>("norm", channels, groups, eps);
    q_ = &add_module<Linear>("q", channels, channels);
    k_ = &add_module<Linear>("k", channels, channels);
    v_ = &add_module<Linear>("v", channels, channels);
    proj_out_ = &add_module<Linear>("proj_out", channels, channels, 0.0);
  }

  Tensor forward(const Tensor& x) const {  // [N,H,W,C] -> [N,H,W,C]
    const Shape tokens{x.dim(0), x.dim(1) * x.dim(2), x.dim(3)};
    const Tensor h = norm_->forward(x).reshape(tokens);
    Tensor a;
    if (*fused_) {  // q, k, v in one op (one batched GEMM on CUDA) into qkv [3, N, T, C], read there
      const Tensor qkv = linear_qkv(h, {q_->weight_for(h), k_->weight_for(h), v_->weight_for(h)},
                                    {q_->bias_for(h), k_->bias_for(h), v_->bias_for(h)});
      a = attention_qkv(qkv, heads_);
    } else {
      a = attention(q_->forward(h), k_->forward(h), v_->forward(h), heads_);
    }
    return add(x, proj_out_->forward(a.reshape(x.shape())));
  }

 private:
  int heads_;
  const bool* fused_;
  GroupNorm* norm_;
  Linear *q_, *k_, *v_, *proj_out_;
};

// One resolution of the down or up path: residual blocks, their attention, and the resampling conv.
namespace {
// A GroupNorm with one channel per group normalizes every channel on its own, so it subtracts again
// the per-channel constant that the time-embedding add (temb_proj and conv1's bias) contributes:
// that block could never see t, and those parameters would get exactly zero gradient.
void check_keeps_time_signal(const std::string& block, int64_t channels, int groups, int64_t base_channels) {
  if (channels / groups > 1) return;
  int64_t suggestion = 1;  // the most groups that keep at least 4 channels per group everywhere
  for (int64_t g = base_channels / 4; g >= 1; --g)
    if (base_channels % g == 0) {
      suggestion = g;
      break;
    }
  detail::fail("UNet: ", block, ".norm2 (the GroupNorm after the time-embedding add) would have ", channels,
               " channels in ", groups, " groups, one channel per group, which removes the time embedding: ", block,
               ".temb_proj and ", block, ".conv1.bias would never learn. Use fewer groups, e.g. model.groups = ",
               suggestion, " (", base_channels / suggestion, " channels per group at ", base_channels, " channels)");
}
}  // namespace

struct UNet::Level final : Module {
  ModuleList<ResBlock>* block = &add_module<ModuleList<ResBlock>>("block");
  ModuleList<AttnBlock>* attn = &add_module<ModuleList<AttnBlock>>("attn");
  Conv2d* resample = nullptr;  // stride-2 conv (down) or the conv after nearest 2x upsampling (up)

  void add_resample(const char* name, int64_t channels, int stride, Pad2d pad = 1) {
    Conv2dOptions options;
    options.stride = stride;
    options.pad = pad;
    resample = &add_module<Conv2d>(name, channels, channels, options);
  }
};

UNet::UNet(const UNetConfig& c) : config_(c) {
  const int levels = static_cast<int>(c.channel_mult.size());
  DDPM_CHECK(levels >= 1 && c.base_channels >= 1 && c.num_res_blocks >= 1 && c.resolution >= 1,
             "UNet: need channel_mult, base_channels, num_res_blocks and resolution to be positive");
  DDPM_CHECK(c.resolution % (1 << (levels - 1)) == 0, "UNet: resolution ", c.resolution, " does not halve ", levels - 1,
             " times evenly; use fewer channel_mult entries or another resolution");
  const int64_t ch = c.base_channels, temb_dim = 4 * ch;
  auto wants_attention = [&](int res) {
    return std::find(c.attention_resolutions.begin(), c.attention_resolutions.end(), res) != c.attention_resolutions.end();
  };
  // Heads of one attention block: `heads`, or channels / head_channels when that is set.
  auto heads_for = [&](int64_t channels) {
    DDPM_CHECK(c.head_channels <= 0 || channels % c.head_channels == 0, "UNet: ", channels,
               " channels do not split into heads of head_channels = ", c.head_channels);
    return c.head_channels > 0 ? static_cast<int>(channels / c.head_channels) : c.heads;
  };
  DDPM_CHECK(c.norm_eps > 0, "UNet: norm_eps must be positive, got ", c.norm_eps);
  DDPM_CHECK(c.downsample_padding == 0 || c.downsample_padding == 1, "UNet: downsample_padding must be 1 (every side) ",
             "or 0 (bottom and right only), got ", c.downsample_padding);
  int layer = 0;

  conv_in_ = &add_module<Conv2d>("conv_in", c.in_channels, ch, 3);
  temb_dense_ = &add_module<ModuleList<Linear>>("temb_dense");
  temb_dense_->append(ch, temb_dim);
  temb_dense_->append(temb_dim, temb_dim);

  std::vector<int64_t> skips{ch};
  int64_t cur = ch;
  int res = c.resolution;
  down_ = &add_module<ModuleList<Level>>("down");
  for (int i = 0; i < levels; ++i) {
    Level& level = down_->append();
    const int64_t out = ch * c.channel_mult[static_cast<size_t>(i)];
    for (int j = 0; j < c.num_res_blocks; ++j) {
      check_keeps_time_signal("down." + std::to_string(i) + ".block." + std::to_string(j), out, c.groups, ch);
      level.block->append(cur, out, temb_dim, c.dropout, c.groups, layer++, c.norm_eps, &config_.fused);
      cur = out;
      if (wants_attention(res)) level.attn->append(cur, heads_for(cur), c.groups, c.norm_eps, &config_.fused);
      skips.push_back(cur);
    }
    if (i != levels - 1) {
      level.add_resample("downsample", cur, 2, c.downsample_padding ? Pad2d(1) : Pad2d(0, 1, 0, 1));
      skips.push_back(cur);
      res /= 2;
    }
  }

  check_keeps_time_signal("mid_block_1", cur, c.groups, ch);
  mid_block_1_ = &add_module<ResBlock>("mid_block_1", cur, cur, temb_dim, c.dropout, c.groups, layer++, c.norm_eps,
                                              &config_.fused);
  mid_attn_1_ = &add_module<AttnBlock>("mid_attn_1", cur, heads_for(cur), c.groups, c.norm_eps, &config_.fused);
  mid_block_2_ = &add_module<ResBlock>("mid_block_2", cur, cur, temb_dim, c.dropout, c.groups, layer++, c.norm_eps,
                                              &config_.fused);

  // The up path is built from the top level down but stored by level index, like the down path.
  up_ = &add_module<ModuleList<Level>>("up");
  std::vector<Level*> up_levels(static_cast<size_t>(levels));
  for (int i = 0; i < levels; ++i) up_levels[static_cast<size_t>(i)] = &up_->append();
  for (int i = levels - 1; i >= 0; --i) {
    Level& level = *up_levels[static_cast<size_t>(i)];
    const int64_t out = ch * c.channel_mult[static_cast<size_t>(i)];
    for (int j = 0; j < c.num_res_blocks + 1; ++j) {
      check_keeps_time_signal("up." + std::to_string(i) + ".block." + std::to_string(j), out, c.groups, ch);
      level.block->append(cur + skips.back(), out, temb_dim, c.dropout, c.groups, layer++, c.norm_eps,
                          &config_.fused);
      skips.pop_back();
      cur = out;
      if (wants_attention(res)) level.attn->append(cur, heads_for(cur), c.groups, c.norm_eps, &config_.fused);
    }
    if (i != 0) {
      level.add_resample("upsample", cur, 1);
      res *= 2;
    }
  }
  norm_out_ = &add_module<GroupNorm>("norm_out", cur, c.groups, c.norm_eps);
  conv_out_ = &add_module<Conv2d>("conv_out", cur, c.out_channels, 3, 1, -1, 0.0);
  // Registered last, so the other parameters keep their names, order and initial values.
  if (c.num_classes > 0) class_emb_ = &add_module<ClassEmbedding>("class_emb", c.num_classes, temb_dim);
}

Tensor UNet::forward(const Tensor& x, const Tensor& t, const DropoutKey& key, const ClassLabels& labels) {
  const UNetConfig& c = config_;
  DDPM_CHECK(x.rank() == 4 && x.dim(1) == c.resolution && x.dim(2) == c.resolution && x.dim(3) == c.in_channels,
             "UNet: expected x [N, ", c.resolution, ", ", c.resolution, ", ", c.in_channels, "], got ",
             shape_str(x.shape()));
  check_shape("UNet", "t", t, {x.dim(0)});
  // temb [N, 4ch]; the residual blocks all take silu(temb).
  const Tensor features = c.flip_sin_to_cos || c.freq_shift != 1
                              ? sinusoidal_embedding(t, c.base_channels, c.flip_sin_to_cos, c.freq_shift, x.dtype())
                              : time_features(t, c.base_channels, x.dtype());
  Tensor temb = (*temb_dense_)[1].forward(silu((*temb_dense_)[0].forward(features)));
  temb = add_class_embedding(class_emb_, temb, labels, "UNet");  // + the class's vector (conditional)
  const Tensor temb_act = silu(temb);

  std::vector<Tensor> skips{conv_in_->forward(x)};
  Tensor h = skips.back();
  for (size_t i = 0; i < down_->size(); ++i) {
    const Level& level = (*down_)[i];
    for (size_t j = 0; j < level.block->size(); ++j) {
      h = (*level.block)[j].forward(h, temb_act, key);
      if (level.attn->size()) h = (*level.attn)[j].forward(h);
      skips.push_back(h);
    }
    if (level.resample) {
      h = level.resample->forward(h);
      skips.push_back(h);
    }
  }
  h = mid_block_2_->forward(mid_attn_1_->forward(mid_block_1_->forward(h, temb_act, key)), temb_act, key);
  for (size_t i = up_->size(); i-- > 0;) {
    const Level& level = (*up_)[i];
    for (size_t j = 0; j < level.block->size(); ++j) {
      h = (*level.block)[j].forward(concat(h, skips.back()), temb_act, key);
      skips.pop_back();
      if (level.attn->size()) h = (*level.attn)[j].forward(h);
    }
    if (level.resample) h = level.resample->forward(upsample2x(h));
  }
  return conv_out_->forward(norm_out_->forward(h, true));
}

}  // namespace ddpm
