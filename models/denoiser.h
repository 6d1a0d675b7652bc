// What the trainer, samplers and evaluator see of a network: model(x_t, t) with dropout addressed
// by a Philox key. Both the UNet and the 2-D MLP implement it.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/nn/module.h"
#include "engine/tensor.h"
#include "models/class_labels.h"

namespace ddpm {

// Dropout draws of one forward pass: layer j uses Philox stream stream * 256 + j of `seed`. A shard
// of a batch whose row 0 is row `first_example` of the whole draws the masks of those rows.
struct DropoutKey {
  uint64_t seed = 0, stream = 0, first_example = 0;
  uint64_t for_layer(int layer) const { return stream * 256 + static_cast<uint64_t>(layer); }
  // Philox address of element 0 of activation h [N, ...].
  uint64_t offset_in(const Tensor& h) const { return first_example * static_cast<uint64_t>(h.numel() / h.dim(0)); }
};

// The sinusoidal embedding of t [N] -> [N, dim] in `dtype`. It is computed in float32 (float64
// for float64 models) and converted after: step indices above 256 are not bfloat16 numbers.
Tensor time_features(const Tensor& t, int dim, DType dtype);

class Denoiser : public Module {
 public:
  // x [N, H, W, C] (NHWC; 2-D points are [N, 1, 1, 2]), t [N] step indices as reals
  // -> [N, H, W, out_channels]. labels: for a class-conditional model (num_classes() > 0) one class
  // index per row, num_classes() meaning "no class" (or those rows one-hot on the device,
  // models/class_labels.h); empty for an unconditional model.
  virtual Tensor forward(const Tensor& x, const Tensor& t, const DropoutKey& key,
                         const ClassLabels& labels = {}) = 0;
  // 0 for an unconditional model; else the number of classes (models/class_embedding.h).
  virtual int num_classes() const { return 0; }
};

}  // namespace ddpm
