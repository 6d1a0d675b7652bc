// global_avg_pool, softmax_cross_entropy: checks, forward and backward recording.
#include <cmath>

#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/ops.h"

namespace ddpm {

Tensor global_avg_pool(const Tensor& x) {
  DDPM_CHECK(x.rank() == 4 && x.dim(1) * x.dim(2) > 0, "global_avg_pool: expected x [N,H,W,C] with H, W >= 1, got ",
             shape_str(x.shape()));
  Tensor out = Tensor::empty({x.dim(0), x.dim(3)}, x.dtype(), x.device());
  backend_for(x.device()).global_avg_pool_forward({x, out});
  return record(OpKind::global_avg_pool, out, {x}, [](const Tensor& g, std::vector<GradSlot>& s) {
    backend_for(g.device()).global_avg_pool_backward({g, s[0]});
  });
}

Tensor softmax_cross_entropy(const Tensor& logits, const Tensor& labels) {
  DDPM_CHECK(logits.rank() == 2 && logits.dim(1) >= 1, "softmax_cross_entropy: expected logits [N, K], got ",
             shape_str(logits.shape()));
  const int64_t n = logits.dim(0), k = logits.dim(1);
  check_shape("softmax_cross_entropy", "labels", labels, {n});
  DDPM_CHECK(labels.dtype() == DType::F32 && labels.device() == logits.device(),
             "softmax_cross_entropy: labels must be float32 class indices on the logits' device (",
             device_name(logits.device()), "), got ", labels.describe());
  // The labels are a handful of numbers; checking them here gives a clear error instead of NaN.
  const std::vector<double> values = labels.to_vector();
  for (size_t i = 0; i < values.size(); ++i)
    DDPM_CHECK(values[i] >= 0 && values[i] < static_cast<double>(k) && values[i] == std::floor(values[i]),
               "softmax_cross_entropy: label ", values[i], " of sample ", i, " is not a class index in [0, ", k,
               ") for logits ", shape_str(logits.shape()));
  Tensor out = Tensor::empty({n}, logits.dtype(), logits.device());
  const DType stats = logits.dtype() == DType::F64 ? DType::F64 : DType::F32;
  Tensor lse = Tensor::empty({n}, stats, logits.device());
  backend_for(logits.device()).softmax_cross_entropy_forward({logits, labels, out, lse});
  return record(OpKind::softmax_cross_entropy, out, {logits},
                [logits = logits.detach(), labels = labels.detach(), lse](const Tensor& g, std::vector<GradSlot>& s) {
                  backend_for(g.device()).softmax_cross_entropy_backward({g, logits, labels, lse, s[0]});
                });
}

}  // namespace ddpm
