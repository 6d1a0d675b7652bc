// add, sub, mul, scale, silu: checks, forward and backward recording.
#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/ops.h"

namespace ddpm {

namespace {
void check_broadcast(const char* op, const Tensor& a, const Tensor& b) {
  check_same_device_dtype(op, a, b);
  bool ok = b.rank() <= a.rank();
  for (int i = 1; ok && i <= b.rank(); ++i) ok = b.dim(-i) == 1 || b.dim(-i) == a.dim(-i);
  DDPM_CHECK(ok, op, ": b ", shape_str(b.shape()), " does not broadcast to a ", shape_str(a.shape()),
             " (each trailing dim of b must be 1 or equal a's; b's rank at most a's)");
}

using BinaryForward = void (Backend::*)(const BinaryFwd&);
using BinaryBackward = void (Backend::*)(const BinaryBwd&);

Tensor binary(OpKind kind, const Tensor& a, const Tensor& b, BinaryForward fwd, BinaryBackward bwd) {
  check_broadcast(op_name(kind), a, b);
  Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device());
  Backend& backend = backend_for(a.device());
  (backend.*fwd)({a, b, out});
  // Only mul needs the inputs in its backward; saving them for add/sub costs nothing extra.
  return record(kind, out, {a, b}, [a = a.detach(), b = b.detach(), bwd](const Tensor& g, std::vector<GradSlot>& s) {
    (backend_for(g.device()).*bwd)({g, a, b, s[0], s[1]});
  });
}
}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  return binary(OpKind::add, a, b, &Backend::add_forward, &Backend::add_backward);
}
Tensor sub(const Tensor& a, const Tensor& b) {
  return binary(OpKind::sub, a, b, &Backend::sub_forward, &Backend::sub_backward);
}
Tensor mul(const Tensor& a, const Tensor& b) {
  return binary(OpKind::mul, a, b, &Backend::mul_forward, &Backend::mul_backward);
}

Tensor scale(const Tensor& x, double factor) {
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  backend_for(x.device()).scale_forward({x, out, factor});
  return record(OpKind::scale, out, {x}, [factor](const Tensor& g, std::vector<GradSlot>& s) {
    backend_for(g.device()).scale_backward({g, factor, s[0]});
  });
}

Tensor silu(const Tensor& x) {
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  backend_for(x.device()).silu_forward({x, out});
  return record(OpKind::silu, out, {x}, [x = x.detach()](const Tensor& g, std::vector<GradSlot>& s) {
    backend_for(g.device()).silu_backward({g, x, s[0]});
  });
}

}  // namespace ddpm
