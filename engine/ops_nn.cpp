// linear, conv2d, group_norm, attention: checks, forward and backward recording.
#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/ops.h"

namespace ddpm {

namespace {
Tensor saved(const Tensor& t) { return t.defined() ? t.detach() : Tensor(); }
}  // namespace

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  DDPM_CHECK(x.rank() >= 1 && weight.rank() == 2, "linear: expected x [..., in] and weight [out, in], got x ",
             shape_str(x.shape()), " and weight ", shape_str(weight.shape()));
  check_same_device_dtype("linear", x, weight);
  const int64_t in = weight.dim(1), out_features = weight.dim(0);
  DDPM_CHECK(x.dim(-1) == in, "linear: x ", shape_str(x.shape()), " has ", x.dim(-1),
             " features but weight ", shape_str(weight.shape()), " expects ", in);
  if (bias.defined()) {
    check_same_device_dtype("linear", x, bias);
    check_shape("linear", "bias", bias, {out_features});
  }
  Shape out_shape = x.shape();
  out_shape.back() = out_features;
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  backend_for(x.device()).linear_forward({x, weight, bias, out});
  return record(OpKind::linear, out, {x, weight, bias},
                [x = saved(x), w = saved(weight)](const Tensor& g, std::vector<GradSlot>& s) {
                  backend_for(g.device()).linear_backward({g, x, w, s[0], s[1], s[2]});
                });
}

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, int stride, Pad2d pad) {
  DDPM_CHECK(x.rank() == 4 && weight.rank() == 4, "conv2d: expected x [N,H,W,Cin] and weight [Cout,KH,KW,Cin], got x ",
             shape_str(x.shape()), " and weight ", shape_str(weight.shape()));
  check_same_device_dtype("conv2d", x, weight);
  DDPM_CHECK(stride >= 1 && !pad.any_negative(), "conv2d: stride must be >= 1 and every pad >= 0, got stride ",
             stride, ", pad (top ", pad.top, ", bottom ", pad.bottom, ", left ", pad.left, ", right ", pad.right, ")");
  const int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2), cin = x.dim(3);
  const int64_t cout = weight.dim(0), kh = weight.dim(1), kw = weight.dim(2);
  DDPM_CHECK(weight.dim(3) == cin, "conv2d: x ", shape_str(x.shape()), " has ", cin,
             " channels but weight ", shape_str(weight.shape()), " expects ", weight.dim(3));
  const int64_t padded_h = h + pad.top + pad.bottom, padded_w = w + pad.left + pad.right;
  DDPM_CHECK(padded_h >= kh && padded_w >= kw, "conv2d: kernel ", kh, "x", kw, " is larger than the padded input ",
             padded_h, "x", padded_w);
  if (bias.defined()) {
    check_same_device_dtype("conv2d", x, bias);
    check_shape("conv2d", "bias", bias, {cout});
  }
  const int64_t oh = (padded_h - kh) / stride + 1, ow = (padded_w - kw) / stride + 1;
  Tensor out = Tensor::empty({n, oh, ow, cout}, x.dtype(), x.device());
  backend_for(x.device()).conv2d_forward({x, weight, bias, out, stride, pad});
  return record(OpKind::conv2d, out, {x, weight, bias},
                [x = saved(x), w = saved(weight), stride, pad](const Tensor& g, std::vector<GradSlot>& s) {
                  backend_for(g.device()).conv2d_backward({g, x, w, stride, pad, s[0], s[1], s[2]});
                });
}

Tensor group_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, int groups, double eps,
                  bool fuse_silu, const Tensor& sample_bias, const DropoutMask& dropout) {
  DDPM_CHECK(x.rank() >= 2, "group_norm: expected x [N, ..., C], got ", shape_str(x.shape()));
  const int64_t c = x.dim(-1);
  DDPM_CHECK(groups >= 1 && c % groups == 0, "group_norm: ", c, " channels of x ", shape_str(x.shape()),
             " do not split into ", groups, " groups");
  DDPM_CHECK(eps > 0, "group_norm: eps must be positive, got ", eps);
  check_same_device_dtype("group_norm", x, gamma);
  check_same_device_dtype("group_norm", x, beta);
  check_shape("group_norm", "gamma", gamma, {c});
  check_shape("group_norm", "beta", beta, {c});
  DDPM_CHECK(dropout.p >= 0 && dropout.p < 1, "group_norm: dropout p must be in [0, 1), got ", dropout.p);
  if (sample_bias.defined()) {
    check_same_device_dtype("group_norm", x, sample_bias);
    check_shape("group_norm", "sample_bias", sample_bias, {x.dim(0), c});
  }
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  // Statistics are float32 even for bfloat16 activations (float64 for float64 inputs).
  const DType stats = x.dtype() == DType::F64 ? DType::F64 : DType::F32;
  Tensor mean = Tensor::empty({x.dim(0), groups}, stats, x.device());
  Tensor rstd = Tensor::empty({x.dim(0), groups}, stats, x.device());
  backend_for(x.device()).group_norm_forward(
      {x, gamma, beta, out, mean, rstd, groups, eps, fuse_silu, sample_bias, dropout});
  return record(OpKind::group_norm, out, {x, gamma, beta, sample_bias},
                [x = saved(x), gamma = saved(gamma), beta = saved(beta), mean, rstd, groups, fuse_silu,
                 bias = saved(sample_bias), dropout](const Tensor& g, std::vector<GradSlot>& s) {
                  backend_for(g.device()).group_norm_backward(
                      {g, x, gamma, beta, mean, rstd, groups, fuse_silu, s[0], s[1], s[2], bias, s[3], dropout});
                });
}

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads) {
  DDPM_CHECK(q.rank() == 3, "attention: expected q, k, v [N, T, C], got q ", shape_str(q.shape()));
  check_shape("attention", "k", k, q.shape());
  check_shape("attention", "v", v, q.shape());
  check_same_device_dtype("attention", q, k);
  check_same_device_dtype("attention", q, v);
  DDPM_CHECK(heads >= 1 && q.dim(2) % heads == 0, "attention: ", q.dim(2), " channels of q ",
             shape_str(q.shape()), " do not split into ", heads, " heads");
  Tensor out = Tensor::empty(q.shape(), q.dtype(), q.device());
  backend_for(q.device()).attention_forward({q, k, v, out, heads});
  return record(OpKind::attention, out, {q, k, v},
                [q = saved(q), k = saved(k), v = saved(v), o = out.detach(), heads](
                    const Tensor& g, std::vector<GradSlot>& s) {
                  backend_for(g.device()).attention_backward({g, q, k, v, o, heads, s[0], s[1], s[2]});
                });
}

}  // namespace ddpm
