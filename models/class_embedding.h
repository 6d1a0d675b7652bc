// The learned class embedding of class-conditional denoisers (model.num_classes > 0): one vector
// per class plus a last "no class" row, added to the time embedding. "No class" is what label
// dropout trains on and what the unconditional half of classifier-free guidance asks for, so one
// network is both the conditional and the unconditional model (Ho and Salimans 2022).
#pragma once
#include <vector>

#include "engine/nn/layers.h"
#include "models/class_labels.h"

namespace ddpm {

class ClassEmbedding final : public Module {
 public:
  ClassEmbedding(int num_classes, int64_t dim);
  // labels: N class indices in [0, num_classes] (num_classes = "no class") -> [N, dim] in `dtype`
  // on `device`. A bias-free linear layer over one-hot rows, weight [dim, num_classes + 1]: column
  // k is class k's vector, and 1 * w + 0 * (the others) picks it exactly in floating point.
  Tensor forward(const ClassLabels& labels, DType dtype, Device device) const;
  int num_classes() const { return num_classes_; }

 private:
  int num_classes_;
  Linear* table_;
};

// temb + embedding(labels) for a conditional model (embedding non-null), temb itself for an
// unconditional one. Checks that a conditional model gets one label per row and an unconditional
// one none; `model` names the network in the errors. temb [N, dim].
Tensor add_class_embedding(const ClassEmbedding* embedding, const Tensor& temb, const ClassLabels& labels,
                           const char* model);

}  // namespace ddpm
