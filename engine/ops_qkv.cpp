// linear_qkv and attention_qkv: attention's q, k, v projections as one op whose output [3, ..., C]
// holds q, k and v back to back, and the attention that reads them there as views. Together they
// replace three linear ops (three GEMMs and three bias passes each way on CUDA) by one batched GEMM,
// with the parameters left as three layers (names, layout and checkpoints unchanged).
#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/ops.h"

namespace ddpm {

namespace {
Tensor saved(const Tensor& t) { return t.defined() ? t.detach() : Tensor(); }

// Slice g of t [3, ...] as a contiguous [...] tensor sharing t's storage (no graph).
Tensor slice_view(const Tensor& t, int64_t g) {
  auto view = std::make_shared<TensorImpl>();
  view->storage = t.impl().storage;
  view->shape = Shape(t.shape().begin() + 1, t.shape().end());
  view->dtype = t.dtype();
  view->device = t.device();
  view->offset = t.impl().offset + static_cast<size_t>(g) * static_cast<size_t>(numel(view->shape)) * dtype_size(t.dtype());
  return Tensor(std::move(view));
}
}  // namespace

Tensor linear_qkv(const Tensor& x, const std::array<Tensor, 3>& weights, const std::array<Tensor, 3>& biases) {
  const char* names[3] = {"q", "k", "v"};
  DDPM_CHECK(x.rank() >= 1 && weights[0].defined() && weights[0].rank() == 2,
             "linear_qkv: expected x [..., in] and weights [out, in], got x ", shape_str(x.shape()), " and q weight ",
             weights[0].defined() ? shape_str(weights[0].shape()) : std::string("undefined"));
  const int64_t in = weights[0].dim(1), out_features = weights[0].dim(0);
  DDPM_CHECK(x.dim(-1) == in, "linear_qkv: x ", shape_str(x.shape()), " has ", x.dim(-1), " features but weight ",
             shape_str(weights[0].shape()), " expects ", in);
  const bool with_bias = biases[0].defined();
  for (int g = 0; g < 3; ++g) {
    DDPM_CHECK(weights[g].defined(), "linear_qkv: the ", names[g], " weight is undefined");
    check_same_device_dtype("linear_qkv", x, weights[g]);
    check_shape("linear_qkv", names[g], weights[g], {out_features, in});
    DDPM_CHECK(biases[g].defined() == with_bias, "linear_qkv: give all three biases or none (the ", names[g],
               " bias is ", biases[g].defined() ? "defined" : "undefined", ", the q bias is not)");
    if (with_bias) {
      check_same_device_dtype("linear_qkv", x, biases[g]);
      check_shape("linear_qkv", names[g], biases[g], {out_features});
    }
  }
  Shape out_shape{3};
  out_shape.insert(out_shape.end(), x.shape().begin(), x.shape().end());
  out_shape.back() = out_features;
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  backend_for(x.device()).linear_qkv_forward({x, {weights[0], weights[1], weights[2]}, {biases[0], biases[1], biases[2]}, out});
  return record(OpKind::linear_qkv, out, {x, weights[0], weights[1], weights[2], biases[0], biases[1], biases[2]},
                [x = saved(x), w0 = saved(weights[0]), w1 = saved(weights[1]), w2 = saved(weights[2])](
                    const Tensor& g, std::vector<GradSlot>& s) {
                  backend_for(g.device()).linear_qkv_backward({g, x, {w0, w1, w2}, s[0], {s[1], s[2], s[3]}, {s[4], s[5], s[6]}});
                });
}

Tensor attention_qkv(const Tensor& qkv, int heads) {
  DDPM_CHECK(qkv.rank() == 4 && qkv.dim(0) == 3, "attention_qkv: expected qkv [3, N, T, C], got ",
             shape_str(qkv.shape()));
  DDPM_CHECK(heads >= 1 && qkv.dim(3) % heads == 0, "attention_qkv: ", qkv.dim(3), " channels of qkv ",
             shape_str(qkv.shape()), " do not split into ", heads, " heads");
  const Tensor q = slice_view(qkv, 0), k = slice_view(qkv, 1), v = slice_view(qkv, 2);
  Tensor out = Tensor::empty(q.shape(), qkv.dtype(), qkv.device());
  backend_for(qkv.device()).attention_forward({q, k, v, out, heads});
  return record(OpKind::attention_qkv, out, {qkv},
                [qkv = qkv.detach(), o = out.detach(), heads](const Tensor& g, std::vector<GradSlot>& s) {
                  if (!s[0].wanted()) return;
                  // The three gradients are disjoint slices of one slot: each is written (or added)
                  // exactly as the slot asks, so the slot's rule holds for the whole tensor.
                  GradSlot dq{slice_view(s[0].tensor, 0), s[0].accumulate}, dk{slice_view(s[0].tensor, 1), s[0].accumulate},
                      dv{slice_view(s[0].tensor, 2), s[0].accumulate};
                  backend_for(g.device()).attention_backward(
                      {g, slice_view(qkv, 0), slice_view(qkv, 1), slice_view(qkv, 2), o, heads, dq, dk, dv});
                });
}

}  // namespace ddpm
