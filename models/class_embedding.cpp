#include "models/class_embedding.h"

#include "engine/ops.h"

namespace ddpm {

ClassEmbedding::ClassEmbedding(int num_classes, int64_t dim) : num_classes_(num_classes) {
  DDPM_CHECK(num_classes >= 1, "class embedding: num_classes must be at least 1, got ", num_classes);
  table_ = &add_module<Linear>("table", num_classes + 1, dim, 1.0, false);
}

Tensor ClassEmbedding::forward(const std::vector<int>& labels, DType dtype, Device device) const {
  const int64_t n = static_cast<int64_t>(labels.size()), rows = num_classes_ + 1;
  std::vector<double> one_hot(static_cast<size_t>(n * rows), 0.0);  // [N, num_classes + 1]
  for (int64_t i = 0; i < n; ++i) {
    const int label = labels[static_cast<size_t>(i)];
    DDPM_CHECK(label >= 0 && label <= num_classes_, "class embedding: label ", label, " (row ", i,
               ") is outside 0..", num_classes_, " (", num_classes_, " classes, then \"no class\")");
    one_hot[static_cast<size_t>(i * rows + label)] = 1.0;
  }
  return table_->forward(Tensor::from_vector(one_hot, {n, rows}, dtype, device));
}

Tensor add_class_embedding(const ClassEmbedding* embedding, const Tensor& temb, const std::vector<int>& labels,
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
