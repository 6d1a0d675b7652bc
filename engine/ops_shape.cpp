// upsample2x, concat, dropout, timestep_embedding, channel_slice, convert: checks, forward and backward recording.
#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/ops.h"

namespace ddpm {

Tensor upsample2x(const Tensor& x) {
  DDPM_CHECK(x.rank() == 4, "upsample2x: expected x [N,H,W,C], got ", shape_str(x.shape()));
  Tensor out = Tensor::empty({x.dim(0), 2 * x.dim(1), 2 * x.dim(2), x.dim(3)}, x.dtype(), x.device());
  backend_for(x.device()).upsample2x_forward({x, out});
  return record(OpKind::upsample2x, out, {x}, [](const Tensor& g, std::vector<GradSlot>& s) {
    backend_for(g.device()).upsample2x_backward({g, s[0]});
  });
}

Tensor concat(const Tensor& a, const Tensor& b) {
  check_same_device_dtype("concat", a, b);
  bool ok = a.rank() >= 1 && a.rank() == b.rank();
  for (int i = 0; ok && i + 1 < a.rank(); ++i) ok = a.dim(i) == b.dim(i);
  DDPM_CHECK(ok, "concat: a ", shape_str(a.shape()), " and b ", shape_str(b.shape()),
             " must agree on every axis but the last (channels)");
  Shape out_shape = a.shape();
  out_shape.back() += b.dim(-1);
  Tensor out = Tensor::empty(out_shape, a.dtype(), a.device());
  backend_for(a.device()).concat_forward({a, b, out});
  return record(OpKind::concat, out, {a, b}, [](const Tensor& g, std::vector<GradSlot>& s) {
    backend_for(g.device()).concat_backward({g, s[0], s[1]});
  });
}

Tensor dropout(const Tensor& x, double p, uint64_t seed, uint64_t stream, uint64_t offset) {
  DDPM_CHECK(p >= 0 && p < 1, "dropout: p must be in [0, 1), got ", p);
  if (p == 0) return x;
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  backend_for(x.device()).dropout_forward({x, out, p, seed, stream, offset});
  return record(OpKind::dropout, out, {x}, [p, seed, stream, offset](const Tensor& g, std::vector<GradSlot>& s) {
    backend_for(g.device()).dropout_backward({g, p, seed, stream, offset, s[0]});
  });
}

Tensor timestep_embedding(const Tensor& t, int dim) {
  DDPM_CHECK(t.rank() == 1, "timestep_embedding: expected t [N], got ", shape_str(t.shape()));
  DDPM_CHECK(dim >= 4 && dim % 2 == 0, "timestep_embedding: dim must be even and at least 4, got ", dim);
  Tensor out = Tensor::empty({t.dim(0), dim}, t.dtype(), t.device());
  backend_for(t.device()).timestep_embedding_forward({t, out, dim});
  return record(OpKind::timestep_embedding, out, {t}, [t = t.detach(), dim](const Tensor& g, std::vector<GradSlot>& s) {
    backend_for(g.device()).timestep_embedding_backward({g, t, dim, s[0]});
  });
}

Tensor channel_slice(const Tensor& x, int64_t begin, int64_t end) {
  DDPM_CHECK(x.rank() >= 1 && begin >= 0 && begin < end && end <= x.dim(-1), "channel_slice: [", begin, ", ",
             end, ") is not a non-empty channel range of x ", shape_str(x.shape()));
  Shape out_shape = x.shape();
  out_shape.back() = end - begin;
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  backend_for(x.device()).channel_slice_forward({x, out, begin, end});
  return record(OpKind::channel_slice, out, {x}, [begin, end](const Tensor& g, std::vector<GradSlot>& s) {
    backend_for(g.device()).channel_slice_backward({g, begin, end, s[0]});
  });
}
Tensor convert(const Tensor& x, DType dtype) {
  if (x.dtype() == dtype) return x;
  Tensor out = Tensor::empty(x.shape(), dtype, x.device());
  backend_for(x.device()).cast({x, out});
  const DType from = x.dtype();
  return record(OpKind::convert, out, {x}, [from](const Tensor& g, std::vector<GradSlot>& s) {
    Tensor back = Tensor::empty(g.shape(), from, g.device());
    backend_for(g.device()).cast({g, back});
    deposit(s[0], back);
  });
}
}  // namespace ddpm
