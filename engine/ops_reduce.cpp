// sum, mean, mse: reductions over the trailing axes from `keep` on.
#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/ops.h"

namespace ddpm {

namespace {
Shape kept_shape(const char* op, const Tensor& x, int keep) {
  DDPM_CHECK(keep >= 0 && keep <= x.rank(), op, ": keep = ", keep, " is outside [0, ", x.rank(),
             "] for ", shape_str(x.shape()));
  return Shape(x.shape().begin(), x.shape().begin() + keep);
}

// mean records as OpKind::sum: the same kernels with factor 1 / count.
Tensor reduce_sum(const char* op, const Tensor& x, int keep, double factor) {
  Tensor out = Tensor::empty(kept_shape(op, x, keep), x.dtype(), x.device());
  backend_for(x.device()).sum_forward({x, out, keep, factor});
  return record(OpKind::sum, out, {x}, [keep, factor](const Tensor& g, std::vector<GradSlot>& s) {
    backend_for(g.device()).sum_backward({g, keep, factor, s[0]});
  });
}
}  // namespace

Tensor sum(const Tensor& x, int keep) { return reduce_sum("sum", x, keep, 1.0); }

Tensor mean(const Tensor& x, int keep) {
  Shape kept = kept_shape("mean", x, keep);
  int64_t count = x.numel() / std::max<int64_t>(numel(kept), 1);
  DDPM_CHECK(count > 0, "mean: nothing to average in ", shape_str(x.shape()));
  return reduce_sum("mean", x, keep, 1.0 / static_cast<double>(count));
}

Tensor mse(const Tensor& a, const Tensor& b, int keep) {
  check_same_device_dtype("mse", a, b);
  check_shape("mse", "b", b, a.shape());
  Tensor out = Tensor::empty(kept_shape("mse", a, keep), a.dtype(), a.device());
  backend_for(a.device()).mse_forward({a, b, out, keep});
  return record(OpKind::mse, out, {a, b}, [a = a.detach(), b = b.detach(), keep](const Tensor& g, std::vector<GradSlot>& s) {
    backend_for(g.device()).mse_backward({g, a, b, keep, s[0], s[1]});
  });
}

}  // namespace ddpm
