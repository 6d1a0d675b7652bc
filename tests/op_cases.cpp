// The op table (tests/op_cases.h): one case per differentiable entry of engine/ops.def.
#include "tests/op_cases.h"

#include <algorithm>
#include <cmath>
#include <tuple>

#include "diffusion/gaussian_diffusion.h"
#include "engine/ops.h"
#include "engine/philox.h"
#include "tests/op_references.h"
#include "tests/support.h"

namespace ddpm::test {

namespace {

using Configs = std::vector<OpConfig>;

OpCase make_case(OpKind kind, std::vector<OpConfig> configs) {
  OpCase c;
  c.kind = kind;
  c.configs = std::move(configs);
  return c;
}

OpInput grad_in(const Tensor& value) { return {value, true, true}; }
OpInput plain_in(const Tensor& value) { return {value, false, true}; }

// ---- elementwise ----

OpCase binary_case(OpKind kind, Tensor (*op)(const Tensor&, const Tensor&),
                   void (Backend::*forward)(const BinaryFwd&), ref::Binary which) {
  // (a, b): same shape, per channel, per sample, per (sample, channel), alternating kept and
  // broadcast axes, one element, a scalar, a size-1 map with 33 channels, an odd middle axis.
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{2, 3, 4, 5}, {2, 3, 4, 5}}, {{2, 3, 4, 5}, {5}}, {{2, 3, 4, 5}, {2, 1, 1, 1}}, {{2, 3, 4, 5}, {2, 1, 1, 5}},
      {{2, 3, 4, 5}, {3, 1, 5}},    {{2, 3, 4, 5}, {1}}, {{2, 3, 4, 5}, {}},           {{1, 1, 1, 33}, {33}},
      {{3, 5, 7}, {5, 1}}};
  Configs configs;
  uint64_t stream = 0;
  for (const auto& [as, bs] : shapes)
    configs.push_back({"a " + shape_str(as) + " b " + shape_str(bs),
                       {grad_in(randn(as, ++stream)), grad_in(randn(bs, ++stream))},
                       [op](const OpArgs& in) { return op(in[0], in[1]); },
                       [forward](Backend& b, const OpArgs& in, const Tensor& out) { (b.*forward)({in[0], in[1], out}); },
                       [which](const OpArgs& in) { return ref::binary(in[0], in[1], which); }});
  return make_case(kind, configs);
}

std::vector<double> map_values(const Tensor& x, double (*f)(double)) {
  std::vector<double> v = x.to_vector();
  std::transform(v.begin(), v.end(), v.begin(), f);
  return v;
}

OpCase scale_case() {
  Configs configs;
  uint64_t stream = 10;
  for (const auto& [shape, factor] : std::vector<std::pair<Shape, double>>{{{4, 6}, -2.5}, {{1, 1, 7, 33}, 0.37}, {{}, 3.0}})
    configs.push_back({shape_str(shape) + " factor " + std::to_string(factor),
                       {grad_in(randn(shape, ++stream, 3.0))},
                       [factor = factor](const OpArgs& in) { return scale(in[0], factor); },
                       [factor = factor](Backend& b, const OpArgs& in, const Tensor& out) { b.scale_forward({in[0], out, factor}); },
                       [factor = factor](const OpArgs& in) {
                         std::vector<double> v = in[0].to_vector();
                         for (double& e : v) e *= factor;
                         return v;
                       }});
  return make_case(OpKind::scale, configs);
}

// Unary elementwise ops with a closed form: silu, relu.
template <class Fwd>
OpCase unary_case(OpKind kind, Tensor (*op)(const Tensor&), void (Backend::*forward)(const Fwd&), double (*f)(double)) {
  Configs configs;
  uint64_t stream = 20;
  for (const Shape& shape : std::vector<Shape>{{4, 6}, {3, 1, 7, 33}, {1}}) {
    // Away from 0 by 0.05 at least, where relu has its kink (the central differences step over it otherwise).
    std::vector<double> v = randn(shape, ++stream, 3.0).to_vector();
    for (double& e : v) e = e < 0 ? std::min(e, -0.05) : std::max(e, 0.05);
    configs.push_back({shape_str(shape), {grad_in(Tensor::from_vector(v, shape, DType::F64))},
                       [op](const OpArgs& in) { return op(in[0]); },
                       [forward](Backend& b, const OpArgs& in, const Tensor& out) { (b.*forward)({in[0], out}); },
                       [f](const OpArgs& in) { return map_values(in[0], f); }});
  }
  return make_case(kind, configs);
}

// ---- nn ----

OpCase linear_case() {
  struct Shapes {
    Shape x;
    int64_t out;
    bool bias;
  };
  Configs configs;
  uint64_t stream = 30;
  for (const Shapes& s : std::vector<Shapes>{{{2, 3, 4}, 5, true}, {{2, 3, 4}, 5, false}, {{1, 7}, 33, true}, {{3, 1}, 1, true}}) {
    std::vector<OpInput> inputs;
    inputs.push_back(grad_in(randn(s.x, ++stream)));
    inputs.push_back(grad_in(randn({s.out, s.x.back()}, ++stream, 0.5)));
    if (s.bias) inputs.push_back(grad_in(randn({s.out}, ++stream)));
    configs.push_back({"x " + shape_str(s.x) + " -> " + std::to_string(s.out) + (s.bias ? " with bias" : ""), inputs,
                       [](const OpArgs& in) { return linear(in[0], in[1], in.size() > 2 ? in[2] : Tensor()); },
                       [](Backend& b, const OpArgs& in, const Tensor& out) {
                         b.linear_forward({in[0], in[1], in.size() > 2 ? in[2] : Tensor(), out});
                       },
                       [](const OpArgs& in) { return ref::linear(in[0], in[1], in.size() > 2 ? in[2] : Tensor()); }});
  }
  return make_case(OpKind::linear, configs);
}

OpCase linear_qkv_case() {
  struct Shapes {
    Shape x;
    int64_t out;
    bool bias;
  };
  Configs configs;
  uint64_t stream = 300;
  for (const Shapes& s : std::vector<Shapes>{{{2, 3, 4}, 5, true}, {{2, 3, 4}, 5, false}, {{1, 7}, 33, true}, {{3, 1}, 1, true}}) {
    std::vector<OpInput> inputs;
    inputs.push_back(grad_in(randn(s.x, ++stream)));
    for (int g = 0; g < 3; ++g) inputs.push_back(grad_in(randn({s.out, s.x.back()}, ++stream, 0.5)));
    if (s.bias)
      for (int g = 0; g < 3; ++g) inputs.push_back(grad_in(randn({s.out}, ++stream)));
    auto bias = [](const OpArgs& in, int g) { return in.size() > 4 ? in[static_cast<size_t>(4 + g)] : Tensor(); };
    configs.push_back({"x " + shape_str(s.x) + " -> 3 x " + std::to_string(s.out) + (s.bias ? " with bias" : ""), inputs,
                       [bias](const OpArgs& in) {
                         return linear_qkv(in[0], {in[1], in[2], in[3]}, {bias(in, 0), bias(in, 1), bias(in, 2)});
                       },
                       [bias](Backend& b, const OpArgs& in, const Tensor& out) {
                         b.linear_qkv_forward({in[0], {in[1], in[2], in[3]}, {bias(in, 0), bias(in, 1), bias(in, 2)}, out});
                       },
                       [bias](const OpArgs& in) {  // the three linear references back to back
                         std::vector<double> all;
                         for (int g = 0; g < 3; ++g) {
                           const std::vector<double> one = ref::linear(in[0], in[static_cast<size_t>(1 + g)], bias(in, g));
                           all.insert(all.end(), one.begin(), one.end());
                         }
                         return all;
                       }});
  }
  return make_case(OpKind::linear_qkv, configs);
}

OpCase conv2d_case() {
  struct Geometry {
    int kh, kw, stride;
    Pad2d pad;
    bool bias;
  };
  std::vector<Geometry> geometries;
  // Square kernels: every combination of kernel {3, 1}, stride {1, 2}, pad {0, 1}, bias.
  for (int k : {3, 1})
    for (int stride : {1, 2})
      for (int pad : {0, 1})
        for (bool bias : {true, false}) geometries.push_back({k, k, stride, pad, bias});
  // Rectangular kernels and four-sided padding (Inception's 1x7 / 7x1, TF-style (0, 1, 0, 1)).
  for (const Geometry& g : std::vector<Geometry>{{1, 7, 1, {0, 0, 3, 3}, true}, {7, 1, 1, {3, 3, 0, 0}, true},
                                                 {1, 3, 1, {0, 0, 1, 1}, true}, {3, 1, 1, {1, 1, 0, 0}, true},
                                                 {3, 3, 2, {0, 1, 0, 1}, true}, {3, 3, 2, 0, true},
                                                 {2, 3, 2, {1, 0, 2, 0}, true}, {3, 2, 1, {0, 2, 1, 0}, true},
                                                 {3, 3, 1, {2, 0, 0, 2}, true}})
    geometries.push_back(g);
  Configs configs;
  uint64_t stream = 40;
  // 3 input channels take the CPU's dcol + col2im path for dx, 16 the stride-1 flipped-kernel one.
  for (int64_t cin : {3, 16})
    for (const Geometry& g : geometries) {
      const Shape xs{2, 6, 7, cin};
      std::vector<OpInput> inputs;
      inputs.push_back(grad_in(randn(xs, ++stream)));
      inputs.push_back(grad_in(randn({4, g.kh, g.kw, cin}, ++stream, 0.3)));
      if (g.bias) inputs.push_back(grad_in(randn({4}, ++stream)));
      const std::string name = "x " + shape_str(xs) + " kernel " + std::to_string(g.kh) + "x" + std::to_string(g.kw) +
                               " stride " + std::to_string(g.stride) + " pad (" + std::to_string(g.pad.top) + ", " +
                               std::to_string(g.pad.bottom) + ", " + std::to_string(g.pad.left) + ", " +
                               std::to_string(g.pad.right) + ")" + (g.bias ? " with bias" : "");
      const int stride = g.stride;
      const Pad2d pad = g.pad;
      configs.push_back({name, inputs,
                         [stride, pad](const OpArgs& in) {
                           return conv2d(in[0], in[1], in.size() > 2 ? in[2] : Tensor(), stride, pad);
                         },
                         [stride, pad](Backend& b, const OpArgs& in, const Tensor& out) {
                           b.conv2d_forward({in[0], in[1], in.size() > 2 ? in[2] : Tensor(), out, stride, pad});
                         },
                         [stride, pad](const OpArgs& in) {
                           return ref::conv2d(in[0], in[1], in.size() > 2 ? in[2] : Tensor(), stride, pad);
                         }});
    }
  OpCase c = make_case(OpKind::conv2d, configs);
  // conv2d is linear in each input: central differences are exact up to rounding, so a large step
  // keeps that rounding small.
  c.tol.grad_rtol = 1e-8, c.tol.grad_atol = 1e-10, c.tol.grad_step = 1e-2;
  return c;
}

OpCase group_norm_case() {
  struct Shapes {
    Shape x;
    int groups;
    bool fuse_silu;
  };
  // NHWC maps, a rank-2 input, one group, one channel per group, 3 channels per group.
  const std::vector<Shapes> shapes = {{{2, 3, 5, 8}, 4, false}, {{2, 3, 5, 8}, 4, true}, {{3, 6}, 2, false},
                                      {{3, 6}, 3, true},        {{2, 3, 5, 8}, 1, false}, {{2, 3, 5, 8}, 8, true},
                                      {{2, 4, 6}, 6, false},    {{1, 1, 3, 9}, 3, true}};
  Configs configs;
  uint64_t stream = 100;
  for (const Shapes& s : shapes) {
    const int64_t c = s.x.back();
    // A non-zero mean and gamma away from zero, so that every term of the gradient matters.
    Tensor x = add(randn(s.x, ++stream, 2.0), Tensor::full({c}, 0.7, DType::F64));
    Tensor gamma = add(randn({c}, ++stream, 0.5), Tensor::ones({c}, DType::F64));
    const int groups = s.groups;
    const bool fuse = s.fuse_silu;
    configs.push_back({"x " + shape_str(s.x) + ", " + std::to_string(groups) + " groups" + (fuse ? ", fused SiLU" : ""),
                       {grad_in(x), grad_in(gamma), grad_in(randn({c}, ++stream, 0.5))},
                       [groups, fuse](const OpArgs& in) { return group_norm(in[0], in[1], in[2], groups, 1e-5, fuse); },
                       [groups, fuse](Backend& b, const OpArgs& in, const Tensor& out) {
                         const DType stats = in[0].dtype() == DType::F64 ? DType::F64 : DType::F32;
                         Tensor mean = Tensor::empty({in[0].dim(0), groups}, stats, in[0].device());
                         Tensor rstd = Tensor::empty({in[0].dim(0), groups}, stats, in[0].device());
                         b.group_norm_forward({in[0], in[1], in[2], out, mean, rstd, groups, 1e-5, fuse});
                       },
                       [groups, fuse](const OpArgs& in) { return ref::group_norm(in[0], in[1], in[2], groups, 1e-5, fuse).out; }});
  }
  // With a sample bias [N, C] (x + b normalized) and/or dropout on the output (the UNet's fused
  // residual block): NHWC maps with and without the SiLU, a rank-2 input, one channel per group (the
  // bias cancels: its gradient is zero), dropout at an odd Philox offset.
  struct Fused {
    Shapes s;
    bool bias;
    double p;
  };
  for (const Fused& f : std::vector<Fused>{{{{2, 3, 5, 8}, 4, false}, true, 0.0}, {{{2, 3, 5, 8}, 4, true}, true, 0.0},
                                           {{{3, 6}, 2, false}, true, 0.0},        {{{2, 4, 6}, 6, true}, true, 0.0},
                                           {{{2, 3, 5, 8}, 4, true}, true, 0.3},   {{{2, 3, 5, 8}, 4, false}, false, 0.5}}) {
    const Shapes& s = f.s;
    const int64_t c = s.x.back();
    Tensor x = add(randn(s.x, ++stream, 2.0), Tensor::full({c}, 0.7, DType::F64));
    Tensor gamma = add(randn({c}, ++stream, 0.5), Tensor::ones({c}, DType::F64));
    const int groups = s.groups;
    const bool fuse = s.fuse_silu, bias = f.bias;
    const DropoutMask drop{f.p, 17, 3, 5};
    std::vector<OpInput> inputs{grad_in(x), grad_in(gamma), grad_in(randn({c}, ++stream, 0.5))};
    if (bias) inputs.push_back(grad_in(randn({s.x[0], c}, ++stream, 1.5)));
    auto bias_of = [](const OpArgs& in) { return in.size() > 3 ? in[3] : Tensor(); };
    configs.push_back(
        {"x " + shape_str(s.x) + ", " + std::to_string(groups) + " groups" + (bias ? ", sample bias" : "") +
             (fuse ? ", fused SiLU" : "") + (f.p > 0 ? ", dropout " + std::to_string(f.p) : ""),
         inputs,
         [groups, fuse, drop, bias_of](const OpArgs& in) {
           return group_norm(in[0], in[1], in[2], groups, 1e-5, fuse, bias_of(in), drop);
         },
         [groups, fuse, drop, bias_of](Backend& b, const OpArgs& in, const Tensor& out) {
           const DType stats = in[0].dtype() == DType::F64 ? DType::F64 : DType::F32;
           Tensor mean = Tensor::empty({in[0].dim(0), groups}, stats, in[0].device());
           Tensor rstd = Tensor::empty({in[0].dim(0), groups}, stats, in[0].device());
           b.group_norm_forward({in[0], in[1], in[2], out, mean, rstd, groups, 1e-5, fuse, bias_of(in), drop});
         },
         [groups, fuse, drop, bias_of](const OpArgs& in) {  // the reference on x + b, then the mask, formed here
           std::vector<double> xb = in[0].to_vector();
           const int64_t ch = in[0].shape().back(), per_sample = in[0].numel() / in[0].dim(0);
           if (bias_of(in).defined()) {
             const std::vector<double> b = in[3].to_vector();
             for (int64_t i = 0; i < in[0].numel(); ++i) xb[static_cast<size_t>(i)] += b[static_cast<size_t>(i / per_sample * ch + i % ch)];
           }
           std::vector<double> out =
               ref::group_norm(Tensor::from_vector(xb, in[0].shape(), DType::F64), in[1], in[2], groups, 1e-5, fuse).out;
           if (drop.p > 0)
             for (size_t i = 0; i < out.size(); ++i)
               out[i] = philox::uniform(drop.seed, drop.stream, drop.offset + i) >= static_cast<float>(drop.p) ? out[i] / (1 - drop.p) : 0.0;
           return out;
         }});
  }
  OpCase c = make_case(OpKind::group_norm, configs);
  c.tol.grad_atol = 1e-7;
  // Over two elements per group grad_x nearly cancels (each element's term against its partner's).
  c.tol.floor = 1.0;
  return c;
}

OpCase attention_case() {
  Configs configs;
  uint64_t stream = 120;
  // heads 1, 2, 4 over 6 tokens; one token (softmax of one key); 3 heads of 2 channels over 5 tokens.
  for (const auto& [shape, heads] :
       std::vector<std::pair<Shape, int>>{{{2, 6, 8}, 1}, {{2, 6, 8}, 2}, {{2, 6, 8}, 4}, {{1, 1, 3}, 1}, {{2, 5, 6}, 3}}) {
    const int h = heads;
    configs.push_back({shape_str(shape) + ", " + std::to_string(h) + " heads",
                       {grad_in(randn(shape, ++stream)), grad_in(randn(shape, ++stream)), grad_in(randn(shape, ++stream))},
                       [h](const OpArgs& in) { return attention(in[0], in[1], in[2], h); },
                       [h](Backend& b, const OpArgs& in, const Tensor& out) { b.attention_forward({in[0], in[1], in[2], out, h}); },
                       [h](const OpArgs& in) { return ref::attention(in[0], in[1], in[2], h); }});
  }
  OpCase c = make_case(OpKind::attention, configs);
  c.tol.grad_atol = 1e-7;
  // Over one token grad_q and grad_k are exactly zero, sums of O(1) terms that cancel.
  c.tol.floor = 1.0;
  return c;
}

// attention_qkv: the attention reference on the three slices of one [3, N, T, C] input.
OpCase attention_qkv_case() {
  Configs configs;
  uint64_t stream = 320;
  for (const auto& [shape, heads] : std::vector<std::pair<Shape, int>>{{{3, 2, 6, 8}, 2}, {{3, 1, 1, 3}, 1}, {{3, 2, 5, 6}, 3}}) {
    const int h = heads;
    configs.push_back({shape_str(shape) + ", " + std::to_string(h) + " heads", {grad_in(randn(shape, ++stream))},
                       [h](const OpArgs& in) { return attention_qkv(in[0], h); }, nullptr,
                       [h](const OpArgs& in) {
                         const Shape one(in[0].shape().begin() + 1, in[0].shape().end());
                         const std::vector<double> all = in[0].to_vector();
                         const auto n = static_cast<std::ptrdiff_t>(all.size() / 3);
                         auto part = [&](int g) {
                           return Tensor::from_vector(std::vector<double>(all.begin() + g * n, all.begin() + (g + 1) * n), one,
                                                      DType::F64);
                         };
                         return ref::attention(part(0), part(1), part(2), h);
                       }});
  }
  OpCase c = make_case(OpKind::attention_qkv, configs);
  c.tol.grad_atol = 1e-7;
  c.tol.floor = 1.0;  // as attention: over one token grad_q and grad_k are sums that cancel to zero
  return c;
}

// ---- shape ops ----

OpCase upsample2x_case() {
  Configs configs;
  uint64_t stream = 140;
  for (const Shape& shape : std::vector<Shape>{{2, 3, 2, 3}, {1, 1, 1, 5}, {1, 3, 1, 33}})
    configs.push_back({shape_str(shape), {grad_in(randn(shape, ++stream))},
                       [](const OpArgs& in) { return upsample2x(in[0]); },
                       [](Backend& b, const OpArgs& in, const Tensor& out) { b.upsample2x_forward({in[0], out}); },
                       [](const OpArgs& in) {
                         const Tensor& x = in[0];
                         const std::vector<double> xv = x.to_vector();
                         const int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2), c = x.dim(3);
                         std::vector<double> out;
                         for (int64_t s = 0; s < n; ++s)
                           for (int64_t oy = 0; oy < 2 * h; ++oy)
                             for (int64_t ox = 0; ox < 2 * w; ++ox)
                               for (int64_t k = 0; k < c; ++k)
                                 out.push_back(xv[static_cast<size_t>(((s * h + oy / 2) * w + ox / 2) * c + k)]);
                         return out;
                       }});
  return make_case(OpKind::upsample2x, configs);
}

OpCase concat_case() {
  Configs configs;
  uint64_t stream = 150;
  for (const auto& [as, bs] : std::vector<std::pair<Shape, Shape>>{
           {{2, 3, 2, 3}, {2, 3, 2, 5}}, {{1, 4}, {1, 1}}, {{3, 5, 1}, {3, 5, 33}}, {{2}, {3}}})
    configs.push_back({"a " + shape_str(as) + " b " + shape_str(bs),
                       {grad_in(randn(as, ++stream)), grad_in(randn(bs, ++stream))},
                       [](const OpArgs& in) { return concat(in[0], in[1]); },
                       [](Backend& b, const OpArgs& in, const Tensor& out) { b.concat_forward({in[0], in[1], out}); },
                       [](const OpArgs& in) {
                         const std::vector<double> av = in[0].to_vector(), bv = in[1].to_vector();
                         const size_t ca = static_cast<size_t>(in[0].dim(-1)), cb = static_cast<size_t>(in[1].dim(-1));
                         std::vector<double> out;
                         for (size_t r = 0; r < av.size() / ca; ++r) {
                           out.insert(out.end(), av.begin() + r * ca, av.begin() + (r + 1) * ca);
                           out.insert(out.end(), bv.begin() + r * cb, bv.begin() + (r + 1) * cb);
                         }
                         return out;
                       }});
  return make_case(OpKind::concat, configs);
}

OpCase channel_slice_case() {
  Configs configs;
  uint64_t stream = 160;
  // The middle, everything, the last channel, the first, and a 16-wide run at an odd offset.
  for (const auto& [shape, range] : std::vector<std::pair<Shape, std::pair<int64_t, int64_t>>>{
           {{2, 3, 7}, {1, 4}}, {{2, 3, 7}, {0, 7}}, {{2, 3, 7}, {6, 7}}, {{5, 1}, {0, 1}}, {{1, 1, 1, 33}, {5, 21}}}) {
    const int64_t begin = range.first, end = range.second;
    configs.push_back({shape_str(shape) + " [" + std::to_string(begin) + ", " + std::to_string(end) + ")",
                       {grad_in(randn(shape, ++stream))},
                       [begin, end](const OpArgs& in) { return channel_slice(in[0], begin, end); },
                       [begin, end](Backend& b, const OpArgs& in, const Tensor& out) {
                         b.channel_slice_forward({in[0], out, begin, end});
                       },
                       [begin, end](const OpArgs& in) {
                         const std::vector<double> xv = in[0].to_vector();
                         const int64_t c = in[0].dim(-1);
                         std::vector<double> out;
                         for (int64_t i = 0; i < in[0].numel(); ++i)
                           if (i % c >= begin && i % c < end) out.push_back(xv[static_cast<size_t>(i)]);
                         return out;
                       }});
  }
  return make_case(OpKind::channel_slice, configs);
}

OpCase dropout_case() {
  Configs configs;
  uint64_t stream = 170;
  // p, offset (a shard's first element in the whole batch).
  for (const auto& [shape, p, offset] : std::vector<std::tuple<Shape, double, uint64_t>>{
           {{2, 3, 4}, 0.3, 0}, {{1, 1, 7, 33}, 0.5, 13}, {{3}, 0.1, 0}}) {
    const double pp = p;
    const uint64_t off = offset;
    configs.push_back({shape_str(shape) + " p " + std::to_string(p) + " offset " + std::to_string(offset),
                       {grad_in(randn(shape, ++stream))},
                       [pp, off](const OpArgs& in) { return dropout(in[0], pp, 77, 5, off); },
                       [pp, off](Backend& b, const OpArgs& in, const Tensor& out) {
                         b.dropout_forward({in[0], out, pp, 77, 5, off});
                       },
                       [pp, off](const OpArgs& in) {
                         std::vector<double> v = in[0].to_vector();
                         for (size_t i = 0; i < v.size(); ++i)
                           v[i] = philox::uniform(77, 5, off + i) >= static_cast<float>(pp) ? v[i] / (1 - pp) : 0.0;
                         return v;
                       }});
  }
  return make_case(OpKind::dropout, configs);
}

OpCase timestep_embedding_case() {
  Configs configs;
  for (const auto& [steps, dim] : std::vector<std::pair<std::vector<double>, int>>{
           {{0.5, 3, 40}, 6}, {{0, 1, 17, 999}, 8}, {{250.25}, 4}, {{7, 2.5}, 34}}) {
    const int d = dim;
    const int64_t n = static_cast<int64_t>(steps.size());
    configs.push_back({"t [" + std::to_string(n) + "] dim " + std::to_string(d),
                       {grad_in(Tensor::from_vector(steps, {n}, DType::F64))},
                       [d](const OpArgs& in) { return timestep_embedding(in[0], d); },
                       [d](Backend& b, const OpArgs& in, const Tensor& out) { b.timestep_embedding_forward({in[0], out, d}); },
                       [d](const OpArgs& in) {
                         const int half = d / 2;
                         std::vector<double> out;
                         for (double t : in[0].to_vector()) {
                           for (int i = 0; i < half; ++i) out.push_back(std::sin(t * std::pow(10000.0, -double(i) / (half - 1))));
                           for (int i = 0; i < half; ++i) out.push_back(std::cos(t * std::pow(10000.0, -double(i) / (half - 1))));
                         }
                         return out;
                       }});
  }
  OpCase c = make_case(OpKind::timestep_embedding, configs);
  // sin(t f) at t = 999 in float32: the argument itself carries 2^-24 * 999 of rounding.
  c.tol.cpu_f32 = 1e-4, c.tol.cuda_f32 = 1e-4;
  return c;
}

// ---- reductions ----

// Sums of x over the axes from `keep` on, times `factor`, as [numel of the kept axes].
std::vector<double> reduce_ref(const Tensor& x, int keep, double factor, const Tensor& y = {}) {
  const std::vector<double> xv = x.to_vector(), yv = y.defined() ? y.to_vector() : std::vector<double>();
  int64_t kept = 1;
  for (int i = 0; i < keep; ++i) kept *= x.dim(i);
  const size_t per = xv.size() / static_cast<size_t>(kept);
  std::vector<double> out(static_cast<size_t>(kept), 0.0);
  for (size_t i = 0; i < xv.size(); ++i) {
    const double d = y.defined() ? (xv[i] - yv[i]) * (xv[i] - yv[i]) : xv[i];
    out[i / per] += d * factor;
  }
  return out;
}

OpCase sum_case() {
  Configs configs;
  uint64_t stream = 180;
  for (const Shape& shape : std::vector<Shape>{{3, 4, 5}, {1, 7, 1}})
    for (int keep = 0; keep <= static_cast<int>(shape.size()); ++keep)
      for (bool is_mean : {false, true}) {  // mean is sum with factor 1 / count (OpKind::sum too)
        int64_t count = 1;
        for (size_t i = static_cast<size_t>(keep); i < shape.size(); ++i) count *= shape[i];
        const double factor = is_mean ? 1.0 / static_cast<double>(count) : 1.0;
        configs.push_back({std::string(is_mean ? "mean " : "sum ") + shape_str(shape) + " keep " + std::to_string(keep),
                           {grad_in(randn(shape, ++stream))},
                           [keep, is_mean](const OpArgs& in) { return is_mean ? mean(in[0], keep) : sum(in[0], keep); },
                           [keep, factor](Backend& b, const OpArgs& in, const Tensor& out) {
                             b.sum_forward({in[0], out, keep, factor});
                           },
                           [keep, factor](const OpArgs& in) { return reduce_ref(in[0], keep, factor); }});
      }
  return make_case(OpKind::sum, configs);
}

OpCase mse_case() {
  Configs configs;
  uint64_t stream = 200;
  for (const Shape& shape : std::vector<Shape>{{3, 4, 5}, {2, 1, 33}})
    for (int keep = 0; keep < static_cast<int>(shape.size()); ++keep) {
      int64_t count = 1;
      for (size_t i = static_cast<size_t>(keep); i < shape.size(); ++i) count *= shape[i];
      const double factor = 1.0 / static_cast<double>(count);
      configs.push_back({shape_str(shape) + " keep " + std::to_string(keep),
                         {grad_in(randn(shape, ++stream)), grad_in(randn(shape, ++stream))},
                         [keep](const OpArgs& in) { return mse(in[0], in[1], keep); },
                         [keep](Backend& b, const OpArgs& in, const Tensor& out) { b.mse_forward({in[0], in[1], out, keep}); },
                         [keep, factor](const OpArgs& in) { return reduce_ref(in[0], keep, factor, in[1]); }});
    }
  return make_case(OpKind::mse, configs);
}

// ---- diffusion ----

OpCase vlb_term_case() {
  Configs configs;
  for (Prediction p : {Prediction::Epsilon, Prediction::X0, Prediction::V})
    for (VarianceType v : {VarianceType::FixedSmall, VarianceType::FixedLarge, VarianceType::LearnedRange}) {
      DiffusionConfig dc;
      dc.prediction = p, dc.variance = v;
      dc.loss = v == VarianceType::LearnedRange ? LossType::Hybrid : LossType::Mse;
      GaussianDiffusion d(Schedule(BetaSchedule::Linear, 100), dc);
      // x0 on the 256-level grid of [-1, 1]; t = 0 is the decoder term.
      std::vector<double> grid = Tensor::uniform({4, 2, 2, 3}, 9, 1, 0, 256, DType::F64).to_vector();
      for (double& e : grid) e = -1 + 2 * std::floor(e) / 255;
      const Tensor x0 = Tensor::from_vector(grid, {4, 2, 2, 3}, DType::F64);
      const std::vector<int> t{0, 1, 30, 99};
      auto noised = d.q_sample(x0, t, 3, 4);
      const Tensor steps = Tensor::from_vector(std::vector<double>{0, 1, 30, 99}, {4}, DType::F64);
      // Outputs near what a decent model predicts, so the decoder's probabilities stay off the floor.
      const Tensor target = p == Prediction::Epsilon ? noised.noise : p == Prediction::X0 ? x0 : noised.v_target;
      std::vector<OpInput> inputs{grad_in(add(target, randn(x0.shape(), 5, 0.05)))};
      const bool learned = v == VarianceType::LearnedRange;
      if (learned) inputs.push_back(grad_in(Tensor::uniform(x0.shape(), 6, 1, -0.9, 0.9, DType::F64)));
      const size_t k = inputs.size();  // x0, x_t, t, coefs follow the differentiable inputs
      for (const Tensor& t_in : {x0, noised.x_t, steps, d.coefs(DType::F64, Device::CPU)}) inputs.push_back(plain_in(t_in));
      auto var = [k](const OpArgs& in) { return k == 2 ? in[1] : Tensor(); };
      configs.push_back({std::string(prediction_name(p)) + " / " + variance_name(v) + " x0 [4, 2, 2, 3]", inputs,
                         [p, v, k, var](const OpArgs& in) {
                           return vlb_term(in[0], var(in), in[k], in[k + 1], in[k + 2], in[k + 3], p, v, false);
                         },
                         [p, v, k, var](Backend& b, const OpArgs& in, const Tensor& out) {
                           b.vlb_term_forward({in[0], var(in), in[k], in[k + 1], in[k + 2], in[k + 3], out, p, v, false});
                         },
                         nullptr});
    }
  OpCase c = make_case(OpKind::vlb_term, configs);
  c.forward_checked_in = "tests/test_diffusion_oracle.cpp (against MATH.md's oracle)";
  c.tol.grad_rtol = 1e-5;
  // Sums of 12 terms of mixed size per sample, log-probabilities of the decoder's bins.
  c.tol.cpu_f32 = 1e-4, c.tol.cuda_f32 = 1e-4;
  c.cuda_dtypes = {DType::F32};  // bfloat16 is not a loss dtype: the trainer evaluates losses in float32
  return c;
}

// ---- vision ----

OpCase pool_case(bool is_max) {
  struct Geometry {
    int kernel, stride, pad;
  };
  // Inception's poolings (3/2/0 and 3/1/1) and others: a window larger than the stride, even
  // kernels, a kernel of 1.
  const std::vector<Geometry> geometries = {{3, 2, 0}, {3, 1, 1}, {2, 2, 0}, {2, 1, 1}, {4, 3, 2}, {1, 1, 0}};
  Configs configs;
  uint64_t stream = 220;
  for (const Geometry& g : geometries)
    for (bool include : is_max ? std::vector<bool>{true} : std::vector<bool>{true, false}) {
      const int k = g.kernel, s = g.stride, pad = g.pad;
      const std::string name = "x [2, 7, 6, 3] kernel " + std::to_string(k) + " stride " + std::to_string(s) + " pad " +
                               std::to_string(pad) + (is_max ? "" : include ? " counting padding" : " in-bounds taps");
      // Random inputs have no ties, so max pooling is differentiable there (the step is below the gaps).
      std::vector<OpInput> inputs{grad_in(randn({2, 7, 6, 3}, ++stream))};
      if (is_max)
        configs.push_back({name, inputs, [k, s, pad](const OpArgs& in) { return max_pool2d(in[0], k, s, pad); },
                           [k, s, pad](Backend& b, const OpArgs& in, const Tensor& out) {
                             b.max_pool2d_forward({in[0], out, k, s, pad});
                           },
                           [k, s, pad](const OpArgs& in) { return ref::pool(in[0], k, s, pad, ref::Pool::Max); }});
      else
        configs.push_back({name, inputs, [k, s, pad, include](const OpArgs& in) { return avg_pool2d(in[0], k, s, pad, include); },
                           [k, s, pad, include](Backend& b, const OpArgs& in, const Tensor& out) {
                             b.avg_pool2d_forward({in[0], out, k, s, pad, include});
                           },
                           [k, s, pad, include](const OpArgs& in) {
                             return ref::pool(in[0], k, s, pad, include ? ref::Pool::AvgIncludePad : ref::Pool::AvgExcludePad);
                           }});
    }
  OpCase c = make_case(is_max ? OpKind::max_pool2d : OpKind::avg_pool2d, configs);
  if (!is_max) c.tol.grad_rtol = 1e-8, c.tol.grad_atol = 1e-10, c.tol.grad_step = 1e-2;  // linear
  return c;
}

OpCase resize_bilinear_case() {
  Configs configs;
  uint64_t stream = 240;
  // Up, down, odd factors both ways, to a single pixel, the same size, from a single pixel.
  for (const auto& [xs, size] : std::vector<std::pair<Shape, std::pair<int64_t, int64_t>>>{
           {{2, 5, 4, 2}, {13, 11}}, {{2, 5, 4, 2}, {3, 2}}, {{2, 5, 4, 2}, {5, 9}}, {{2, 5, 4, 2}, {1, 1}},
           {{1, 7, 5, 3}, {7, 5}},   {{1, 1, 1, 3}, {3, 2}}, {{2, 7, 5, 3}, {29, 31}}, {{2, 7, 5, 3}, {7, 13}},
           {{2, 7, 5, 3}, {10, 5}}}) {
    const int64_t oh = size.first, ow = size.second;
    configs.push_back({"x " + shape_str(xs) + " -> " + std::to_string(oh) + "x" + std::to_string(ow),
                       {grad_in(randn(xs, ++stream))},
                       [oh, ow](const OpArgs& in) { return resize_bilinear(in[0], oh, ow); },
                       [](Backend& b, const OpArgs& in, const Tensor& out) { b.resize_bilinear_forward({in[0], out}); },
                       [oh, ow](const OpArgs& in) { return ref::resize_bilinear(in[0], oh, ow); }});
  }
  OpCase c = make_case(OpKind::resize_bilinear, configs);
  c.tol.grad_rtol = 1e-8, c.tol.grad_atol = 1e-10, c.tol.grad_step = 1e-2;  // linear
  return c;
}

// ---- classification ----

OpCase global_avg_pool_case() {
  Configs configs;
  uint64_t stream = 260;
  for (const Shape& shape : std::vector<Shape>{{2, 3, 4, 5}, {3, 1, 1, 4}, {1, 5, 3, 33}})
    configs.push_back({shape_str(shape), {grad_in(randn(shape, ++stream))},
                       [](const OpArgs& in) { return global_avg_pool(in[0]); },
                       [](Backend& b, const OpArgs& in, const Tensor& out) { b.global_avg_pool_forward({in[0], out}); },
                       [](const OpArgs& in) {
                         const Tensor& x = in[0];
                         const std::vector<double> xv = x.to_vector();
                         const int64_t n = x.dim(0), pixels = x.dim(1) * x.dim(2), c = x.dim(3);
                         std::vector<double> out(static_cast<size_t>(n * c), 0.0);
                         for (int64_t s = 0; s < n; ++s)
                           for (int64_t p = 0; p < pixels; ++p)
                             for (int64_t k = 0; k < c; ++k)
                               out[static_cast<size_t>(s * c + k)] += xv[static_cast<size_t>((s * pixels + p) * c + k)] / double(pixels);
                         return out;
                       }});
  return make_case(OpKind::global_avg_pool, configs);
}

OpCase softmax_cross_entropy_case() {
  Configs configs;
  uint64_t stream = 270;
  for (const auto& [k, labels] : std::vector<std::pair<int64_t, std::vector<float>>>{
           {5, {0, 4, 2, 2}}, {1, {0, 0, 0}}, {33, {32, 7}}}) {
    const int64_t n = static_cast<int64_t>(labels.size());
    const Tensor y = Tensor::from_vector(labels, {n});
    configs.push_back({"logits " + shape_str({n, k}), {grad_in(randn({n, k}, ++stream, 2.0)), {y, false, false}},
                       [](const OpArgs& in) { return softmax_cross_entropy(in[0], in[1]); },
                       [](Backend& b, const OpArgs& in, const Tensor& out) {
                         const DType stats = in[0].dtype() == DType::F64 ? DType::F64 : DType::F32;
                         Tensor lse = Tensor::empty({in[0].dim(0)}, stats, in[0].device());
                         b.softmax_cross_entropy_forward({in[0], in[1], out, lse});
                       },
                       [](const OpArgs& in) {
                         // -log softmax(row)[y], the textbook way (fine for moderate logits).
                         const std::vector<double> lv = in[0].to_vector(), yv = in[1].to_vector();
                         const size_t cols = static_cast<size_t>(in[0].dim(1));
                         std::vector<double> out;
                         for (size_t r = 0; r < yv.size(); ++r) {
                           double total = 0;
                           for (size_t j = 0; j < cols; ++j) total += std::exp(lv[r * cols + j]);
                           out.push_back(std::log(total) - lv[r * cols + static_cast<size_t>(yv[r])]);
                         }
                         return out;
                       }});
  }
  OpCase c = make_case(OpKind::softmax_cross_entropy, configs);
  c.tol.floor = 1.0;  // one class: the loss log(e^x) - x is zero, its terms O(1)
  return c;
}

// ---- composites ----

// float64 <-> float32 and bfloat16 -> float32: every run converts to a different dtype.
DType other_dtype(DType dt) { return dt == DType::F64 ? DType::F32 : dt == DType::F32 ? DType::F64 : DType::F32; }

OpCase convert_case() {
  Configs configs;
  uint64_t stream = 280;
  for (const Shape& shape : std::vector<Shape>{{3, 5}, {1, 1, 33}, {}})
    configs.push_back({shape_str(shape), {grad_in(randn(shape, ++stream))},
                       [](const OpArgs& in) { return convert(in[0], other_dtype(in[0].dtype())); },
                       nullptr,
                       [](const OpArgs& in) { return in[0].to(other_dtype(in[0].dtype())).to_vector(); }});
  OpCase c = make_case(OpKind::convert, configs);
  // float64 -> float32 is the identity up to rounding: differences over a step of 1e-2 see at
  // most 2^-24 |x| / 1e-2 of it.
  c.tol.grad_rtol = 1e-4, c.tol.grad_atol = 1e-5, c.tol.grad_step = 1e-2;
  return c;
}

OpCase reshape_case() {
  Configs configs;
  uint64_t stream = 290;
  for (const auto& [from, to] : std::vector<std::pair<Shape, Shape>>{{{2, 6}, {3, 4}}, {{1, 7, 1}, {7}}, {{2, 3, 5}, {6, 1, 5}}}) {
    const Shape target = to;
    configs.push_back({shape_str(from) + " -> " + shape_str(to), {grad_in(randn(from, ++stream))},
                       [target](const OpArgs& in) { return in[0].reshape(target); }, nullptr,
                       [](const OpArgs& in) { return in[0].to_vector(); }});
  }
  return make_case(OpKind::reshape, configs);
}

double silu_of(double x) { return x / (1 + std::exp(-x)); }
double relu_of(double x) { return std::max(x, 0.0); }

std::vector<OpCase> build() {
  return {binary_case(OpKind::add, &add, &Backend::add_forward, ref::Binary::Add),
          binary_case(OpKind::sub, &sub, &Backend::sub_forward, ref::Binary::Sub),
          binary_case(OpKind::mul, &mul, &Backend::mul_forward, ref::Binary::Mul),
          scale_case(),
          unary_case(OpKind::silu, &silu, &Backend::silu_forward, &silu_of),
          linear_case(),
          linear_qkv_case(),
          conv2d_case(),
          group_norm_case(),
          attention_case(),
          attention_qkv_case(),
          upsample2x_case(),
          concat_case(),
          dropout_case(),
          timestep_embedding_case(),
          sum_case(),
          mse_case(),
          channel_slice_case(),
          vlb_term_case(),
          unary_case(OpKind::relu, &relu, &Backend::relu_forward, &relu_of),
          pool_case(true),
          pool_case(false),
          resize_bilinear_case(),
          global_avg_pool_case(),
          softmax_cross_entropy_case(),
          convert_case(),
          reshape_case()};
}

}  // namespace

const std::vector<OpCase>& op_cases() {
  static const std::vector<OpCase> cases = build();
  return cases;
}

const OpCase* find_op_case(OpKind kind) {
  for (const OpCase& c : op_cases())
    if (c.kind == kind) return &c;
  return nullptr;
}

Tensor as_run_input(const OpInput& input, DType dtype, Device device) {
  const Tensor v = input.follows_dtype ? input.value.to(dtype) : input.value;
  return v.to(device);
}

}  // namespace ddpm::test
