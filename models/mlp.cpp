#include "models/mlp.h"

#include "engine/ops.h"

namespace ddpm {

MlpDenoiser::MlpDenoiser(const MlpConfig& c) : config_(c) {
  DDPM_CHECK(c.hidden >= 1 && c.blocks >= 0 && c.time_embedding >= 4 && c.time_embedding % 2 == 0,
             "MLP: need hidden >= 1, blocks >= 0 and an even time_embedding >= 4");
  input_ = &add_module<Linear>("input", c.in_channels, c.hidden);
  temb_ = &add_module<Linear>("temb", c.time_embedding, c.hidden);
  blocks_ = &add_module<ModuleList<Linear>>("blocks");
  for (int i = 0; i < c.blocks; ++i) blocks_->append(c.hidden, c.hidden);
  output_ = &add_module<Linear>("output", c.hidden, c.out_channels, 0.0);
  if (c.num_classes > 0) class_emb_ = &add_module<ClassEmbedding>("class_emb", c.num_classes, c.hidden);
}

Tensor MlpDenoiser::forward(const Tensor& x, const Tensor& t, const DropoutKey&, const ClassLabels& labels) {
  DDPM_CHECK(x.rank() == 4 && x.dim(1) == 1 && x.dim(2) == 1 && x.dim(3) == config_.in_channels,
             "MLP: expected points [N, 1, 1, ", config_.in_channels, "], got ", shape_str(x.shape()));
  const int64_t n = x.dim(0);
  // h [N, hidden] = input(x) + temb(embedding(t)) (+ the class's vector), then h += block(silu(h))
  Tensor h = add(input_->forward(x.reshape({n, config_.in_channels})),
                 add_class_embedding(class_emb_, temb_->forward(time_features(t, config_.time_embedding, x.dtype())),
                                     labels, "MLP"));
  for (size_t i = 0; i < blocks_->size(); ++i) h = add(h, (*blocks_)[i].forward(silu(h)));
  return output_->forward(silu(h)).reshape({n, 1, 1, config_.out_channels});
}

}  // namespace ddpm
