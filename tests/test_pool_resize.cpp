// max_pool2d, avg_pool2d, resize_bilinear and relu (NHWC): forwards against loop nests written
// here (and hand-computed values), float64 central-difference gradients, the GradSlot rule and
// shape errors.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/ops.h"
#include "tests/support.h"

namespace {

using ddpm::DType;
using ddpm::Shape;
using ddpm::Tensor;

struct PoolConfig {
  int kernel, stride, pad;
  std::string name() const {
    return "kernel " + std::to_string(kernel) + " stride " + std::to_string(stride) + " pad " + std::to_string(pad);
  }
};
// Inception's poolings (3/2/0 and 3/1/1) and others: a window larger than the stride, even kernels.
const std::vector<PoolConfig> kPoolConfigs = {{3, 2, 0}, {3, 1, 1}, {2, 2, 0}, {2, 1, 1}, {4, 3, 2}, {1, 1, 0}};

// The definition as a loop nest over x [N, H, W, C].
enum class Pool { Max, AvgIncludePad, AvgExcludePad };
std::vector<double> reference_pool(const Tensor& xt, const PoolConfig& c, Pool kind) {
  const std::vector<double> x = xt.to_vector();
  const int64_t n = xt.dim(0), h = xt.dim(1), w = xt.dim(2), ch = xt.dim(3);
  const int64_t oh = (h + 2 * c.pad - c.kernel) / c.stride + 1, ow = (w + 2 * c.pad - c.kernel) / c.stride + 1;
  std::vector<double> out;
  for (int64_t s = 0; s < n; ++s)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox)
        for (int64_t k = 0; k < ch; ++k) {
          double best = -std::numeric_limits<double>::infinity(), sum = 0;
          int64_t taps = 0;
          for (int64_t dy = 0; dy < c.kernel; ++dy)
            for (int64_t dx = 0; dx < c.kernel; ++dx) {
              const int64_t iy = oy * c.stride - c.pad + dy, ix = ox * c.stride - c.pad + dx;
              if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
              const double v = x[static_cast<size_t>(((s * h + iy) * w + ix) * ch + k)];
              best = std::max(best, v);
              sum += v;
              ++taps;
            }
          out.push_back(kind == Pool::Max ? best
                        : kind == Pool::AvgIncludePad ? sum / (c.kernel * c.kernel)
                                                      : sum / static_cast<double>(taps));
        }
  return out;
}

// PyTorch's align_corners=False source index, written out per output: [out, in] weights of an axis.
std::vector<std::vector<double>> axis_matrix(int64_t in, int64_t out) {
  std::vector<std::vector<double>> m(static_cast<size_t>(out), std::vector<double>(static_cast<size_t>(in), 0.0));
  for (int64_t o = 0; o < out; ++o) {
    const double src = std::max(0.0, (o + 0.5) * static_cast<double>(in) / static_cast<double>(out) - 0.5);
    const int64_t i0 = std::min<int64_t>(static_cast<int64_t>(std::floor(src)), in - 1);
    const int64_t i1 = std::min<int64_t>(i0 + 1, in - 1);
    const double f = src - static_cast<double>(i0);
    m[static_cast<size_t>(o)][static_cast<size_t>(i0)] += 1 - f;
    m[static_cast<size_t>(o)][static_cast<size_t>(i1)] += f;
  }
  return m;
}

// out = A_y x A_x^T per sample and channel.
std::vector<double> reference_resize(const Tensor& xt, int64_t oh, int64_t ow) {
  const std::vector<double> x = xt.to_vector();
  const int64_t n = xt.dim(0), h = xt.dim(1), w = xt.dim(2), ch = xt.dim(3);
  const auto ay = axis_matrix(h, oh), ax = axis_matrix(w, ow);
  std::vector<double> out(static_cast<size_t>(n * oh * ow * ch), 0.0);
  for (int64_t s = 0; s < n; ++s)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox)
        for (int64_t iy = 0; iy < h; ++iy)
          for (int64_t ix = 0; ix < w; ++ix) {
            const double wt = ay[static_cast<size_t>(oy)][static_cast<size_t>(iy)] *
                              ax[static_cast<size_t>(ox)][static_cast<size_t>(ix)];
            if (wt == 0) continue;
            for (int64_t k = 0; k < ch; ++k)
              out[static_cast<size_t>(((s * oh + oy) * ow + ox) * ch + k)] +=
                  wt * x[static_cast<size_t>(((s * h + iy) * w + ix) * ch + k)];
          }
  return out;
}

Tensor nan_like(const Tensor& t) { return Tensor::full(t.shape(), std::numeric_limits<double>::quiet_NaN(), t.dtype()); }

}  // namespace

TEST_CASE("max_pool2d and avg_pool2d forwards match the loop nest", "[pool]") {
  const Tensor x = ddpm::test::randn({2, 7, 6, 3}, 1);
  for (const PoolConfig& c : kPoolConfigs) {
    INFO(c.name());
    const int64_t oh = (7 + 2 * c.pad - c.kernel) / c.stride + 1, ow = (6 + 2 * c.pad - c.kernel) / c.stride + 1;
    const Tensor mx = ddpm::max_pool2d(x, c.kernel, c.stride, c.pad);
    REQUIRE(mx.shape() == Shape{2, oh, ow, 3});
    ddpm::test::require_close(mx.to_vector(), reference_pool(x, c, Pool::Max), 1e-15, 1e-15, "max_pool2d " + c.name());
    ddpm::test::require_close(ddpm::avg_pool2d(x, c.kernel, c.stride, c.pad, true).to_vector(),
                              reference_pool(x, c, Pool::AvgIncludePad), 1e-14, 1e-14, "avg (include pad) " + c.name());
    ddpm::test::require_close(ddpm::avg_pool2d(x, c.kernel, c.stride, c.pad, false).to_vector(),
                              reference_pool(x, c, Pool::AvgExcludePad), 1e-14, 1e-14, "avg (exclude pad) " + c.name());
    // float32 against the float64 result on the same (rounded) inputs
    const Tensor x32 = x.to(DType::F32);
    ddpm::test::require_close(ddpm::avg_pool2d(x32, c.kernel, c.stride, c.pad, false).to_vector(),
                              reference_pool(x32, c, Pool::AvgExcludePad), 1e-6, 1e-6, "float32 avg " + c.name());
  }
}

TEST_CASE("avg_pool2d's corner divisor: 4 taps without padding counted, 9 with", "[pool]") {
  // A 3x3 map of ones: the corner window (pad 1) holds 4 real pixels.
  const Tensor ones = Tensor::ones({1, 3, 3, 1}, DType::F64);
  REQUIRE(ddpm::avg_pool2d(ones, 3, 1, 1, false).to_vector()[0] == 1.0);
  REQUIRE(ddpm::avg_pool2d(ones, 3, 1, 1, true).to_vector()[0] == Approx(4.0 / 9.0).epsilon(1e-15));
}

TEST_CASE("pooling gradients match central differences", "[pool]") {
  for (const PoolConfig& c : kPoolConfigs) {
    INFO(c.name());
    const std::vector<Tensor> inputs{ddpm::test::randn({2, 7, 6, 3}, 11)};
    // Random inputs have no ties, so max pooling is differentiable there (step below the gaps).
    ddpm::test::check_gradients(
        [&](const std::vector<Tensor>& in) { return ddpm::max_pool2d(in[0], c.kernel, c.stride, c.pad); }, inputs,
        1e-6, 1e-8, 1e-6);
    for (bool include : {true, false})
      ddpm::test::check_gradients(
          [&](const std::vector<Tensor>& in) { return ddpm::avg_pool2d(in[0], c.kernel, c.stride, c.pad, include); },
          inputs, 1e-8, 1e-10, 1e-2);
  }
}

TEST_CASE("max_pool2d passes the gradient to the first maximum of a tie", "[pool]") {
  Tensor x = Tensor::from_vector(std::vector<double>{1, 5, 5, 2}, {1, 2, 2, 1}, DType::F64).set_requires_grad(true);
  ddpm::backward(ddpm::max_pool2d(x, 2, 2, 0), Tensor::ones({1, 1, 1, 1}, DType::F64));
  REQUIRE(x.grad().to_vector() == std::vector<double>{0, 1, 0, 0});
}

TEST_CASE("resize_bilinear matches PyTorch's align_corners=False convention", "[resize]") {
  // 2x2 -> 4x4 by hand: source coordinates -0.25 (clamped to 0), 0.25, 0.75, 1.25 (past the last
  // pixel: its weight all goes to pixel 1).
  const Tensor x = Tensor::from_vector(std::vector<double>{0, 1, 2, 3}, {1, 2, 2, 1}, DType::F64);
  const std::vector<double> expected{0,   0.25, 0.75, 1,    0.5, 0.75, 1.25, 1.5,
                                     1.5, 1.75, 2.25, 2.5,  2,   2.25, 2.75, 3};
  ddpm::test::require_close(ddpm::resize_bilinear(x, 4, 4).to_vector(), expected, 1e-15, 1e-15, "2x2 -> 4x4");
  // 4 -> 2 averages pixel pairs (source coordinates 0.5 and 2.5).
  const Tensor row = Tensor::from_vector(std::vector<double>{0, 2, 4, 8}, {1, 1, 4, 1}, DType::F64);
  ddpm::test::require_close(ddpm::resize_bilinear(row, 1, 2).to_vector(), {1, 6}, 1e-15, 1e-15, "4 -> 2");
  // The same size is the identity.
  const Tensor r = ddpm::test::randn({2, 5, 4, 3}, 21);
  ddpm::test::require_close(ddpm::resize_bilinear(r, 5, 4).to_vector(), r.to_vector(), 1e-15, 1e-15, "identity");
}

TEST_CASE("resize_bilinear matches the separable reference at arbitrary sizes", "[resize]") {
  const Tensor x = ddpm::test::randn({2, 7, 5, 3}, 31);
  for (const auto& [oh, ow] : std::vector<std::pair<int64_t, int64_t>>{{29, 31}, {3, 2}, {7, 13}, {1, 1}, {10, 5}}) {
    INFO(oh << "x" << ow);
    ddpm::test::require_close(ddpm::resize_bilinear(x, oh, ow).to_vector(), reference_resize(x, oh, ow), 1e-13, 1e-13,
                              "resize");
    const Tensor x32 = x.to(DType::F32);
    ddpm::test::require_close(ddpm::resize_bilinear(x32, oh, ow).to_vector(), reference_resize(x32, oh, ow), 1e-6,
                              1e-6, "float32 resize");
  }
}

TEST_CASE("resize_bilinear gradients match central differences (up and down)", "[resize]") {
  for (const auto& [oh, ow] : std::vector<std::pair<int64_t, int64_t>>{{13, 11}, {3, 2}, {5, 9}, {1, 1}}) {
    INFO(oh << "x" << ow);
    ddpm::test::check_gradients(
        [&](const std::vector<Tensor>& in) { return ddpm::resize_bilinear(in[0], oh, ow); },
        {ddpm::test::randn({2, 5, 4, 2}, 41)}, 1e-8, 1e-10, 1e-2);
  }
}

TEST_CASE("relu forward and gradient", "[relu]") {
  const Tensor x = ddpm::test::randn({3, 4, 5}, 51);
  std::vector<double> expected = x.to_vector();
  for (double& v : expected) v = std::max(v, 0.0);
  ddpm::test::require_close(ddpm::relu(x).to_vector(), expected, 1e-15, 1e-15, "relu");
  ddpm::test::check_gradients([](const std::vector<Tensor>& in) { return ddpm::relu(in[0]); }, {x}, 1e-8, 1e-10, 1e-6);
}

TEST_CASE("pool, resize and relu backwards write or add per GradSlot", "[pool][resize][relu]") {
  ddpm::Backend& cpu = ddpm::cpu_backend();
  const Tensor x = ddpm::test::randn({2, 6, 5, 3}, 61);
  const Tensor start = ddpm::test::randn(x.shape(), 62);
  const auto run = [&](const Tensor& out, auto&& backward) {
    const Tensor g = ddpm::test::randn(out.shape(), 63);
    const Tensor written = nan_like(x), added = start.clone();
    backward(g, ddpm::GradSlot{written, false});
    backward(g, ddpm::GradSlot{added, true});
    std::vector<double> sum = start.to_vector();
    const std::vector<double> w = written.to_vector();
    for (size_t i = 0; i < sum.size(); ++i) {
      REQUIRE(std::isfinite(w[i]));
      sum[i] += w[i];
    }
    ddpm::test::require_close(added.to_vector(), sum, 1e-14, 1e-14, "accumulated");
  };
  run(ddpm::max_pool2d(x, 3, 2, 1),
      [&](const Tensor& g, ddpm::GradSlot s) { cpu.max_pool2d_backward({g, x, 3, 2, 1, s}); });
  run(ddpm::avg_pool2d(x, 3, 1, 1, false),
      [&](const Tensor& g, ddpm::GradSlot s) { cpu.avg_pool2d_backward({g, 3, 1, 1, false, s}); });
  run(ddpm::resize_bilinear(x, 9, 4), [&](const Tensor& g, ddpm::GradSlot s) { cpu.resize_bilinear_backward({g, s}); });
  run(ddpm::relu(x), [&](const Tensor& g, ddpm::GradSlot s) { cpu.relu_backward({g, x, s}); });
}

TEST_CASE("pool and resize reject bad arguments with messages naming the op", "[pool][resize]") {
  using Catch::Contains;
  const Tensor x = Tensor::zeros({1, 4, 4, 2});
  REQUIRE_THROWS_WITH(ddpm::max_pool2d(Tensor::zeros({4, 4, 2}), 2, 2, 0),
                      Contains("max_pool2d") && Contains("[4, 4, 2]"));
  REQUIRE_THROWS_WITH(ddpm::avg_pool2d(x, 3, 1, 2, true), Contains("avg_pool2d") && Contains("pad <= kernel / 2"));
  REQUIRE_THROWS_WITH(ddpm::max_pool2d(x, 7, 1, 1), Contains("max_pool2d") && Contains("larger than the padded input"));
  REQUIRE_THROWS_WITH(ddpm::resize_bilinear(x, 0, 3), Contains("resize_bilinear") && Contains("at least 1x1"));
}
