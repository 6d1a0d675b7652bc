// relu, max_pool2d, avg_pool2d, resize_bilinear: checks, forward and backward recording.
#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/ops.h"

namespace ddpm {

namespace {
// Output extent of a pooling axis, floor mode (PyTorch's default).
int64_t pooled(int64_t size, int kernel, int stride, int pad) { return (size + 2 * pad - kernel) / stride + 1; }

// The checks both poolings share; returns the output shape.
Shape pool_shape(const char* op, const Tensor& x, int kernel, int stride, int pad) {
  DDPM_CHECK(x.rank() == 4, op, ": expected x [N, H, W, C], got ", shape_str(x.shape()));
  DDPM_CHECK(kernel >= 1 && stride >= 1 && pad >= 0 && 2 * pad <= kernel, op, ": need kernel >= 1, stride >= 1 and ",
             "0 <= pad <= kernel / 2 (every window must hold an input pixel), got kernel ", kernel, ", stride ", stride,
             ", pad ", pad);
  DDPM_CHECK(x.dim(1) + 2 * pad >= kernel && x.dim(2) + 2 * pad >= kernel, op, ": kernel ", kernel,
             " is larger than the padded input ", x.dim(1) + 2 * pad, "x", x.dim(2) + 2 * pad, " of x ",
             shape_str(x.shape()));
  return {x.dim(0), pooled(x.dim(1), kernel, stride, pad), pooled(x.dim(2), kernel, stride, pad), x.dim(3)};
}
}  // namespace

Tensor relu(const Tensor& x) {
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  backend_for(x.device()).relu_forward({x, out});
  return record(OpKind::relu, out, {x}, [x = x.detach()](const Tensor& g, std::vector<GradSlot>& s) {
    backend_for(g.device()).relu_backward({g, x, s[0]});
  });
}

Tensor max_pool2d(const Tensor& x, int kernel, int stride, int pad) {
  const Shape out_shape = pool_shape("max_pool2d", x, kernel, stride, pad);
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  backend_for(x.device()).max_pool2d_forward({x, out, kernel, stride, pad});
  return record(OpKind::max_pool2d, out, {x},
                [x = x.detach(), kernel, stride, pad](const Tensor& g, std::vector<GradSlot>& s) {
                  backend_for(g.device()).max_pool2d_backward({g, x, kernel, stride, pad, s[0]});
                });
}

Tensor avg_pool2d(const Tensor& x, int kernel, int stride, int pad, bool count_include_pad) {
  const Shape out_shape = pool_shape("avg_pool2d", x, kernel, stride, pad);
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  backend_for(x.device()).avg_pool2d_forward({x, out, kernel, stride, pad, count_include_pad});
  return record(OpKind::avg_pool2d, out, {x},
                [kernel, stride, pad, count_include_pad](const Tensor& g, std::vector<GradSlot>& s) {
                  backend_for(g.device()).avg_pool2d_backward({g, kernel, stride, pad, count_include_pad, s[0]});
                });
}

Tensor resize_bilinear(const Tensor& x, int64_t out_h, int64_t out_w) {
  DDPM_CHECK(x.rank() == 4, "resize_bilinear: expected x [N, H, W, C], got ", shape_str(x.shape()));
  DDPM_CHECK(out_h >= 1 && out_w >= 1, "resize_bilinear: the output size must be at least 1x1, got ", out_h, "x",
             out_w);
  DDPM_CHECK(x.dim(1) >= 1 && x.dim(2) >= 1, "resize_bilinear: x ", shape_str(x.shape()), " has no pixels to resize");
  Tensor out = Tensor::empty({x.dim(0), out_h, out_w, x.dim(3)}, x.dtype(), x.device());
  backend_for(x.device()).resize_bilinear_forward({x, out});
  return record(OpKind::resize_bilinear, out, {x}, [](const Tensor& g, std::vector<GradSlot>& s) {
    backend_for(g.device()).resize_bilinear_backward({g, s[0]});
  });
}

}  // namespace ddpm
