// conv2d (NHWC, im2col + GEMM on the CPU): forward against a naive float64 loop nest, float64
// gradient checks, the GradSlot write/accumulate rule, chunked im2col and shape errors.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/nn/layers.h"
#include "engine/nn/parameters.h"
#include "engine/ops.h"
#include "kernels/cpu/conv2d.h"
#include "tests/support.h"


namespace {

using ddpm::DType;
using ddpm::Shape;
using ddpm::Tensor;

struct Config {
  int k, stride, pad;
  bool bias;
  std::string name() const {
    return std::to_string(k) + "x" + std::to_string(k) + " stride " + std::to_string(stride) + " pad " +
           std::to_string(pad) + (bias ? " with bias" : " without bias");
  }
};

// Every combination of kernel {3, 1}, stride {1, 2}, pad {0, 1}, bias {yes, no}.
std::vector<Config> all_configs() {
  std::vector<Config> configs;
  for (int k : {3, 1})
    for (int stride : {1, 2})
      for (int pad : {0, 1})
        for (bool bias : {true, false}) configs.push_back({k, stride, pad, bias});
  return configs;
}

// The definition, as a loop nest: x [N,H,W,Cin], w [Cout,KH,KW,Cin], b [Cout] or empty.
std::vector<double> reference_conv2d(const std::vector<double>& x, const Shape& xs, const std::vector<double>& w,
                                     const Shape& ws, const std::vector<double>& b, int stride, int pad) {
  const int64_t n = xs[0], h = xs[1], wd = xs[2], cin = xs[3];
  const int64_t cout = ws[0], kh = ws[1], kw = ws[2];
  const int64_t oh = (h + 2 * pad - kh) / stride + 1, ow = (wd + 2 * pad - kw) / stride + 1;
  std::vector<double> out(static_cast<size_t>(n * oh * ow * cout));
  for (int64_t s = 0; s < n; ++s)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox)
        for (int64_t co = 0; co < cout; ++co) {
          double acc = b.empty() ? 0.0 : b[static_cast<size_t>(co)];
          for (int64_t ky = 0; ky < kh; ++ky)
            for (int64_t kx = 0; kx < kw; ++kx)
              for (int64_t ci = 0; ci < cin; ++ci) {
                const int64_t iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                acc += x[static_cast<size_t>(((s * h + iy) * wd + ix) * cin + ci)] *
                       w[static_cast<size_t>(((co * kh + ky) * kw + kx) * cin + ci)];
              }
          out[static_cast<size_t>(((s * oh + oy) * ow + ox) * cout + co)] = acc;
        }
  return out;
}

// Small odd-sized problem: batch 2, 5x7 image, cin -> 4 channels.
struct Problem {
  Tensor x, w, b;  // float64
  explicit Problem(const Config& c, uint64_t stream = 0, int64_t cin = 3)
      : x(ddpm::test::randn({2, 5, 7, cin}, stream + 1)),
        w(ddpm::test::randn({4, c.k, c.k, cin}, stream + 2, 0.3)),
        b(c.bias ? ddpm::test::randn({4}, stream + 3) : Tensor()) {}
  std::vector<double> reference(const Config& c) const {
    return reference_conv2d(x.to_vector(), x.shape(), w.to_vector(), w.shape(),
                            b.defined() ? b.to_vector() : std::vector<double>{}, c.stride, c.pad);
  }
};

Tensor nan_like(const Tensor& t) {
  return Tensor::full(t.shape(), std::numeric_limits<double>::quiet_NaN(), t.dtype());
}

}  // namespace

TEST_CASE("conv2d forward matches the naive loop nest in float64", "[conv2d]") {
  for (const Config& c : all_configs()) {
    INFO(c.name());
    Problem p(c);
    Tensor out = ddpm::conv2d(p.x, p.w, p.b, c.stride, c.pad);
    const int64_t oh = (5 + 2 * c.pad - c.k) / c.stride + 1, ow = (7 + 2 * c.pad - c.k) / c.stride + 1;
    REQUIRE(out.shape() == Shape{2, oh, ow, 4});
    ddpm::test::require_close(out.to_vector(), p.reference(c), 1e-12, 1e-12, "conv2d " + c.name());
  }
}

TEST_CASE("conv2d forward in float32 is close to the float64 reference", "[conv2d]") {
  for (const Config& c : all_configs()) {
    INFO(c.name());
    Problem p(c, 10);
    // The reference sees the float32-rounded inputs, so only float32 arithmetic separates the two:
    // at most 27 products of O(1) terms, about 27 * 2^-24 * |terms| < 1e-5.
    Tensor x = p.x.to(DType::F32), w = p.w.to(DType::F32), b = c.bias ? p.b.to(DType::F32) : Tensor();
    Tensor out = ddpm::conv2d(x, w, b, c.stride, c.pad);
    REQUIRE(out.dtype() == DType::F32);
    std::vector<double> expected = reference_conv2d(x.to_vector(), x.shape(), w.to_vector(), w.shape(),
                                                    b.defined() ? b.to_vector() : std::vector<double>{},
                                                    c.stride, c.pad);
    ddpm::test::require_close(out.to_vector(), expected, 1e-5, 1e-5, "float32 conv2d " + c.name());
  }
}

TEST_CASE("conv2d gradients of x, weight and bias match central differences", "[conv2d]") {
  // 3 input channels take the dcol + col2im path for dx; 16 take the stride-1 flipped-kernel
  // convolution (kernels/cpu/conv2d.cpp).
  for (int64_t cin : {3, 16})
  for (const Config& c : all_configs()) {
    INFO(c.name() << ", " << cin << " input channels");
    Problem p(c, 20, cin);
    std::vector<Tensor> inputs{p.x, p.w};
    if (c.bias) inputs.push_back(p.b);
    // conv2d is linear in each input, so central differences are exact up to rounding and a large
    // step keeps that rounding small.
    ddpm::test::check_gradients(
        [&](const std::vector<Tensor>& in) {
          return ddpm::conv2d(in[0], in[1], in.size() > 2 ? in[2] : Tensor(), c.stride, c.pad);
        },
        inputs, 1e-8, 1e-10, 1e-2);
  }
}

TEST_CASE("conv2d backward twice doubles the leaves' gradients", "[conv2d]") {
  const Config c{3, 2, 1, true};
  Problem p(c, 30);
  Tensor x = p.x.clone().set_requires_grad(true), w = p.w.clone().set_requires_grad(true),
         b = p.b.clone().set_requires_grad(true);
  Tensor upstream = ddpm::test::randn({2, 3, 4, 4}, 31);
  ddpm::backward(ddpm::conv2d(x, w, b, c.stride, c.pad), upstream);
  const std::vector<double> gx = x.grad().to_vector(), gw = w.grad().to_vector(), gb = b.grad().to_vector();
  ddpm::backward(ddpm::conv2d(x, w, b, c.stride, c.pad), upstream);
  auto doubled = [](std::vector<double> v) {
    for (double& e : v) e *= 2;
    return v;
  };
  ddpm::test::require_close(x.grad().to_vector(), doubled(gx), 1e-12, 1e-12, "grad x");
  ddpm::test::require_close(w.grad().to_vector(), doubled(gw), 1e-12, 1e-12, "grad weight");
  ddpm::test::require_close(b.grad().to_vector(), doubled(gb), 1e-12, 1e-12, "grad bias");
}

TEST_CASE("conv2d backward writes or adds per GradSlot and never reads a written slot", "[conv2d]") {
  ddpm::Backend& cpu = ddpm::cpu_backend();
  for (const Config& c : all_configs()) {
    if (!c.bias) continue;
    INFO(c.name());
    Problem p(c, 40);
    Tensor out = ddpm::conv2d(p.x, p.w, p.b, c.stride, c.pad);
    Tensor g = ddpm::test::randn(out.shape(), 41);
    // Written slots start as NaN: any read of them would poison the result.
    Tensor dx = nan_like(p.x), dw = nan_like(p.w), db = nan_like(p.b);
    cpu.conv2d_backward({g, p.x, p.w, c.stride, c.pad, {dx, false}, {dw, false}, {db, false}});
    for (const Tensor& t : {dx, dw, db})
      for (double v : t.to_vector()) REQUIRE(std::isfinite(v));
    // Accumulating slots start from known values and must end at value + gradient.
    Tensor ax = ddpm::test::randn(p.x.shape(), 42), aw = ddpm::test::randn(p.w.shape(), 43),
           ab = ddpm::test::randn(p.b.shape(), 44);
    const std::vector<double> x0 = ax.to_vector(), w0 = aw.to_vector(), b0 = ab.to_vector();
    cpu.conv2d_backward({g, p.x, p.w, c.stride, c.pad, {ax, true}, {aw, true}, {ab, true}});
    auto plus = [](std::vector<double> a, const std::vector<double>& b) {
      for (size_t i = 0; i < a.size(); ++i) a[i] += b[i];
      return a;
    };
    ddpm::test::require_close(ax.to_vector(), plus(x0, dx.to_vector()), 1e-12, 1e-12, "accumulated grad x");
    ddpm::test::require_close(aw.to_vector(), plus(w0, dw.to_vector()), 1e-12, 1e-12, "accumulated grad weight");
    ddpm::test::require_close(ab.to_vector(), plus(b0, db.to_vector()), 1e-12, 1e-12, "accumulated grad bias");
  }
}

TEST_CASE("conv2d splits the batch into im2col chunks without changing the result", "[conv2d]") {
  ddpm::Backend& cpu = ddpm::cpu_backend();
  const Config c{3, 1, 1, true};
  // Batch 5 with a 3x3x3 kernel: one sample's column matrix is 5*7*27 doubles = 7560 bytes.
  Tensor x = ddpm::test::randn({5, 5, 7, 3}, 51), w = ddpm::test::randn({4, 3, 3, 3}, 52, 0.3),
         b = ddpm::test::randn({4}, 53);
  auto run = [&](int64_t chunk_bytes) {
    const int64_t previous = ddpm::cpu::set_conv2d_chunk_bytes(chunk_bytes);
    Tensor out = ddpm::conv2d(x, w, b, c.stride, c.pad);
    Tensor g = ddpm::test::randn(out.shape(), 54);
    Tensor dx = nan_like(x), dw = nan_like(w), db = nan_like(b);
    cpu.conv2d_backward({g, x, w, c.stride, c.pad, {dx, false}, {dw, false}, {db, false}});
    ddpm::cpu::set_conv2d_chunk_bytes(previous);
    return std::vector<std::vector<double>>{out.to_vector(), dx.to_vector(), dw.to_vector(), db.to_vector()};
  };
  const auto whole = run(0);             // the default bound: one chunk
  const auto pairs = run(2 * 7560);      // chunks of 2, 2, 1 samples
  const auto singles = run(1);           // below one sample: still one sample per chunk
  ddpm::test::require_close(whole[0], reference_conv2d(x.to_vector(), x.shape(), w.to_vector(), w.shape(),
                                                       b.to_vector(), c.stride, c.pad),
                            1e-12, 1e-12, "unchunked forward");
  const char* what[] = {"forward", "grad x", "grad weight", "grad bias"};
  for (size_t i = 0; i < whole.size(); ++i) {
    ddpm::test::require_close(pairs[i], whole[i], 1e-12, 1e-12, std::string("chunks of 2: ") + what[i]);
    ddpm::test::require_close(singles[i], whole[i], 1e-12, 1e-12, std::string("chunks of 1: ") + what[i]);
  }
}

TEST_CASE("conv2d rejects mismatched shapes with messages that name the op and shapes", "[conv2d]") {
  Tensor x = Tensor::zeros({2, 5, 7, 3}), w = Tensor::zeros({4, 3, 3, 3});
  using Catch::Contains;

  Tensor w_wrong_cin = Tensor::zeros({4, 3, 3, 2});
  REQUIRE_THROWS_AS(ddpm::conv2d(x, w_wrong_cin), ddpm::Error);
  REQUIRE_THROWS_WITH(ddpm::conv2d(x, w_wrong_cin), Contains("conv2d") && Contains("[2, 5, 7, 3]") &&
                                                         Contains("[4, 3, 3, 2]") && Contains("channels"));

  Tensor x_rank3 = Tensor::zeros({5, 7, 3});
  REQUIRE_THROWS_AS(ddpm::conv2d(x_rank3, w), ddpm::Error);
  REQUIRE_THROWS_WITH(ddpm::conv2d(x_rank3, w),
                      Contains("conv2d") && Contains("[5, 7, 3]") && Contains("[N,H,W,Cin]"));

  Tensor b_wrong = Tensor::zeros({3});
  REQUIRE_THROWS_AS(ddpm::conv2d(x, w, b_wrong), ddpm::Error);
  REQUIRE_THROWS_WITH(ddpm::conv2d(x, w, b_wrong), Contains("conv2d") && Contains("bias") &&
                                                       Contains("[4]") && Contains("[3]"));
}

namespace {

// A rectangular kernel with four-sided padding (e.g. Inception's 1x7 / 7x1 and TF-style (0,1,0,1)).
struct RectConfig {
  int kh, kw, stride;
  ddpm::Pad2d pad;
  std::string name() const {
    return std::to_string(kh) + "x" + std::to_string(kw) + " stride " + std::to_string(stride) + " pad (t " +
           std::to_string(pad.top) + ", b " + std::to_string(pad.bottom) + ", l " + std::to_string(pad.left) +
           ", r " + std::to_string(pad.right) + ")";
  }
};

std::vector<RectConfig> rect_configs() {
  return {{1, 7, 1, {0, 0, 3, 3}}, {7, 1, 1, {3, 3, 0, 0}}, {1, 3, 1, {0, 0, 1, 1}}, {3, 1, 1, {1, 1, 0, 0}},
          {3, 3, 2, {0, 1, 0, 1}}, {3, 3, 2, 0},            {2, 3, 2, {1, 0, 2, 0}}, {3, 2, 1, {0, 2, 1, 0}},
          {3, 3, 1, {2, 0, 0, 2}}};
}

// The definition with four-sided padding: x [N,H,W,Cin], w [Cout,KH,KW,Cin], b [Cout].
std::vector<double> reference_conv2d_padded(const Tensor& xt, const Tensor& wt, const Tensor& bt, int stride,
                                            ddpm::Pad2d pad) {
  const std::vector<double> x = xt.to_vector(), w = wt.to_vector(), b = bt.to_vector();
  const int64_t n = xt.dim(0), h = xt.dim(1), wd = xt.dim(2), cin = xt.dim(3);
  const int64_t cout = wt.dim(0), kh = wt.dim(1), kw = wt.dim(2);
  const int64_t oh = (h + pad.top + pad.bottom - kh) / stride + 1, ow = (wd + pad.left + pad.right - kw) / stride + 1;
  std::vector<double> out(static_cast<size_t>(n * oh * ow * cout));
  for (int64_t s = 0; s < n; ++s)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox)
        for (int64_t co = 0; co < cout; ++co) {
          double acc = b[static_cast<size_t>(co)];
          for (int64_t ky = 0; ky < kh; ++ky)
            for (int64_t kx = 0; kx < kw; ++kx) {
              const int64_t iy = oy * stride - pad.top + ky, ix = ox * stride - pad.left + kx;
              if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
              for (int64_t ci = 0; ci < cin; ++ci)
                acc += x[static_cast<size_t>(((s * h + iy) * wd + ix) * cin + ci)] *
                       w[static_cast<size_t>(((co * kh + ky) * kw + kx) * cin + ci)];
            }
          out[static_cast<size_t>(((s * oh + oy) * ow + ox) * cout + co)] = acc;
        }
  return out;
}

}  // namespace

TEST_CASE("conv2d with rectangular kernels and four-sided padding matches the loop nest", "[conv2d]") {
  for (const RectConfig& c : rect_configs()) {
    INFO(c.name());
    Tensor x = ddpm::test::randn({2, 6, 7, 3}, 61), w = ddpm::test::randn({4, c.kh, c.kw, 3}, 62, 0.3),
           b = ddpm::test::randn({4}, 63);
    Tensor out = ddpm::conv2d(x, w, b, c.stride, c.pad);
    const int64_t oh = (6 + c.pad.top + c.pad.bottom - c.kh) / c.stride + 1;
    const int64_t ow = (7 + c.pad.left + c.pad.right - c.kw) / c.stride + 1;
    REQUIRE(out.shape() == Shape{2, oh, ow, 4});
    ddpm::test::require_close(out.to_vector(), reference_conv2d_padded(x, w, b, c.stride, c.pad), 1e-12, 1e-12,
                              "conv2d " + c.name());
  }
}

TEST_CASE("conv2d gradients with rectangular kernels and four-sided padding match central differences",
          "[conv2d]") {
  // 3 input channels: dcol + col2im; 16: the stride-1 flipped-kernel path (both see asymmetric pads).
  for (int64_t cin : {3, 16})
    for (const RectConfig& c : rect_configs()) {
      INFO(c.name() << ", " << cin << " input channels");
      std::vector<Tensor> inputs{ddpm::test::randn({2, 6, 7, cin}, 71), ddpm::test::randn({4, c.kh, c.kw, cin}, 72, 0.3),
                                 ddpm::test::randn({4}, 73)};
      ddpm::test::check_gradients(
          [&](const std::vector<Tensor>& in) { return ddpm::conv2d(in[0], in[1], in[2], c.stride, c.pad); }, inputs,
          1e-8, 1e-10, 1e-2);
    }
}

TEST_CASE("Conv2d module takes rectangular kernels, four-sided padding and no bias", "[conv2d]") {
  ddpm::Conv2dOptions options;
  options.kernel_h = 1;
  options.kernel_w = 7;
  options.pad = ddpm::Pad2d(0, 0, 3, 3);
  options.bias = false;
  ddpm::Conv2d conv(5, 6, options);
  ddpm::ParameterSet params(conv, 7, ddpm::Device::CPU, DType::F64);
  REQUIRE(params.count() == 6 * 1 * 7 * 5);  // the weight only
  Tensor x = ddpm::test::randn({1, 4, 9, 5}, 81);
  Tensor out = conv.forward(x);
  REQUIRE(out.shape() == Shape{1, 4, 9, 6});
  ddpm::test::require_close(out.to_vector(),
                            reference_conv2d_padded(x, params.find("weight").value, Tensor::zeros({6}, DType::F64),
                                                    1, options.pad),
                            1e-12, 1e-12, "Conv2d 1x7 module");
}

TEST_CASE("conv2d rejects negative padding", "[conv2d]") {
  Tensor x = Tensor::zeros({1, 5, 7, 3}), w = Tensor::zeros({4, 3, 3, 3});
  REQUIRE_THROWS_WITH(ddpm::conv2d(x, w, Tensor(), 1, ddpm::Pad2d(0, -1, 0, 0)),
                      Catch::Contains("conv2d") && Catch::Contains("pad") && Catch::Contains("bottom -1"));
}
