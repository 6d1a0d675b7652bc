// max_pool2d, avg_pool2d, resize_bilinear (NHWC): hand-computed values, the first maximum of a tie,
// and argument errors. Forwards against loop nests, gradients and GradSlots: the op table
// (tests/op_cases.cpp, tests/test_op_table.cpp).
#include <catch2/catch.hpp>
#include <vector>

#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/ops.h"
#include "tests/support.h"

using ddpm::DType;
using ddpm::Tensor;

TEST_CASE("avg_pool2d's corner divisor: 4 taps without padding counted, 9 with", "[pool]") {
  // A 3x3 map of ones: the corner window (pad 1) holds 4 real pixels.
  const Tensor ones = Tensor::ones({1, 3, 3, 1}, DType::F64);
  REQUIRE(ddpm::avg_pool2d(ones, 3, 1, 1, false).to_vector()[0] == 1.0);
  REQUIRE(ddpm::avg_pool2d(ones, 3, 1, 1, true).to_vector()[0] == Approx(4.0 / 9.0).epsilon(1e-15));
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

TEST_CASE("pool and resize reject bad arguments with messages naming the op", "[pool][resize]") {
  using Catch::Contains;
  const Tensor x = Tensor::zeros({1, 4, 4, 2});
  REQUIRE_THROWS_WITH(ddpm::max_pool2d(Tensor::zeros({4, 4, 2}), 2, 2, 0),
                      Contains("max_pool2d") && Contains("[4, 4, 2]"));
  REQUIRE_THROWS_WITH(ddpm::avg_pool2d(x, 3, 1, 2, true), Contains("avg_pool2d") && Contains("pad <= kernel / 2"));
  REQUIRE_THROWS_WITH(ddpm::max_pool2d(x, 7, 1, 1), Contains("max_pool2d") && Contains("larger than the padded input"));
  REQUIRE_THROWS_WITH(ddpm::resize_bilinear(x, 0, 3), Contains("resize_bilinear") && Contains("at least 1x1"));
}
