// The class labels a conditional denoiser is given: one class index per row (num_classes meaning
// "no class"), or the same as one-hot rows already on the device. The one-hot form is a captured
// training step's input (tools/train_step_graph.h): a CUDA graph cannot upload labels inside its
// replay, so they are written into a persistent tensor before it.
#pragma once
#include <initializer_list>
#include <vector>

#include "engine/tensor.h"

namespace ddpm {

struct ClassLabels {
  std::vector<int> indices;
  Tensor one_hot;  // [N, num_classes + 1] (any float dtype), used when defined

  ClassLabels() = default;
  ClassLabels(std::vector<int> labels) : indices(std::move(labels)) {}  // NOLINT: implicit, as the indices were
  ClassLabels(std::initializer_list<int> labels) : indices(labels) {}
  static ClassLabels rows(Tensor one_hot_rows) {
    ClassLabels l;
    l.one_hot = std::move(one_hot_rows);
    return l;
  }
  bool empty() const { return !one_hot.defined() && indices.empty(); }
  int64_t size() const { return one_hot.defined() ? one_hot.dim(0) : static_cast<int64_t>(indices.size()); }
};

// The one-hot rows [N, num_classes + 1] of `labels` as float64 values, row-major (what
// ClassEmbedding multiplies by its table). Throws naming a label outside 0..num_classes.
std::vector<double> one_hot_rows(const std::vector<int>& labels, int num_classes);

}  // namespace ddpm
