#include "models/class_embedding.h"

#include "engine/ops.h"

namespace ddpm {

ClassEmbedding::ClassEmbedding(int num_classes, int64_t dim) : num_classes_(num_classes) {
  DDPM_CHECK(num_classes >= 1, "class embedding: num_classes must be at least 1, got ", num_classes);
  table_ = &add_module<Linear>("table", num_classes + 1, dim, 1.0, false);
}

std::vector<double> one_hot_rows(const std::vector<int>& labels, int num_classes) {
  const int64_t n = static_cast<int64_t>(labels.size()), rows = num_classes + 1;
  std::vector<double> one_hot(static_cast<size_t>(n * rows), 0.0);  // [N, num_classes + 1]
  for (int64_t i = 0; i < n; ++i) {
    const int label = labels[static_cast<size_t>(i)];
    DDPM_CHECK(label >= 0 && label <= num_classes, "class embedding: label ", label, " (row ", i,
               ") is outside 0..", num_classes, " (", num_classes, " classes, then \"no class\")");
    one_hot[static_cast<size_t>(i * rows + label)] = 1.0;
  }
  return one_hot;
}

Tensor ClassEmbedding::forward(const ClassLabels& labels, DType dtype, Device device) const {
  const int64_t rows = num_classes_ + 1;
  if (labels.one_hot.defined()) {  // rows already on the device (0 and 1 are exact in every dtype)
    const Tensor& h = labels.one_hot;
    DDPM_CHECK(h.rank() == 2 && h.dim(1) == rows && h.device() == device, "class embedding: one-hot rows must be [N, ",
               rows, "] on ", device_name(device), ", got ", h.describe());
    return table_->forward(h.dtype() == dtype ? h : convert(h, dtype));
  }
  const int64_t n = labels.size();
  return table_->forward(Tensor::from_vector(one_hot_rows(labels.indices, num_classes_), {n, rows}, dtype, device));
}

Tensor add_class_embedding(const ClassEmbedding* embedding, const Tensor& temb, const ClassLabels& labels,
                           const char* model) {
  if (!embedding) {
    DDPM_CHECK(labels.empty(), model, ": this model is unconditional (num_classes 0) but was given ", labels.size(),
               " class labels");
    return temb;
  }
  DDPM_CHECK(static_cast<int64_t>(labels.size()) == temb.dim(0), model, ": a class-conditional model needs one label "
             "per example (the \"no class\" label ", embedding->num_classes(), " for unconditional rows); got ",
             labels.size(), " labels for ", temb.dim(0), " examples");
  return add(temb, embedding->forward(labels, temb.dtype(), temb.device()));
}

}  // namespace ddpm
