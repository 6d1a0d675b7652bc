// add, sub, mul (with broadcasting), scale, silu: forward against values computed here,
// float64 gradient checks, and shape errors.
#include <catch2/catch.hpp>
#include <cmath>

#include "engine/ops.h"
#include "tests/support.h"

using namespace ddpm;
using test::check_gradients;
using test::randn;

namespace {
// Reference broadcast of b [.., 1, ..] into a's NHWC-like shape by explicit index arithmetic.
double b_at(const std::vector<double>& b, const Shape& bs, const Shape& as, int64_t flat) {
  Shape index(as.size());
  for (size_t i = as.size(); i-- > 0;) index[i] = flat % as[i], flat /= as[i];
  int64_t off = 0;
  size_t lead = as.size() - bs.size();
  for (size_t i = 0; i < bs.size(); ++i) off = off * bs[i] + (bs[i] == 1 ? 0 : index[lead + i]);
  return b[static_cast<size_t>(off)];
}
}  // namespace

TEST_CASE("add, sub and mul broadcast b to a's shape", "[elementwise]") {
  const Shape a_shape{2, 3, 4, 5};
  for (Shape b_shape : std::vector<Shape>{{2, 3, 4, 5}, {5}, {2, 1, 1, 1}, {2, 1, 1, 5}, {3, 1, 5}, {1}, {}}) {
    Tensor a = randn(a_shape, 1), b = randn(b_shape, 2);
    std::vector<double> av = a.to_vector(), bv = b.to_vector();
    std::vector<double> want_add, want_sub, want_mul;
    for (int64_t i = 0; i < a.numel(); ++i) {
      double y = b_at(bv, b_shape, a_shape, i);
      want_add.push_back(av[i] + y);
      want_sub.push_back(av[i] - y);
      want_mul.push_back(av[i] * y);
    }
    test::require_close(add(a, b).to_vector(), want_add, 0, 1e-15, "add " + shape_str(b_shape));
    test::require_close(sub(a, b).to_vector(), want_sub, 0, 1e-15, "sub " + shape_str(b_shape));
    test::require_close(mul(a, b).to_vector(), want_mul, 0, 1e-15, "mul " + shape_str(b_shape));

    check_gradients([](const std::vector<Tensor>& x) { return add(x[0], x[1]); }, {a, b});
    check_gradients([](const std::vector<Tensor>& x) { return sub(x[0], x[1]); }, {a, b});
    check_gradients([](const std::vector<Tensor>& x) { return mul(x[0], x[1]); }, {a, b});
  }
}

TEST_CASE("float32 elementwise ops agree with float64", "[elementwise]") {
  Tensor a = randn({3, 7, 7, 32}, 3), b = randn({3, 1, 1, 32}, 4);
  Tensor a32 = a.to(DType::F32), b32 = b.to(DType::F32);
  test::require_close(mul(a32, b32).to_vector(), mul(a, b).to_vector(), 1e-6, 1e-6, "mul float32");
  test::require_close(silu(a32).to_vector(), silu(a).to_vector(), 1e-6, 1e-6, "silu float32");
}

TEST_CASE("scale and silu", "[elementwise]") {
  Tensor x = randn({4, 6}, 5, 3.0);
  std::vector<double> xv = x.to_vector(), want_scale, want_silu;
  for (double v : xv) {
    want_scale.push_back(-2.5 * v);
    want_silu.push_back(v / (1 + std::exp(-v)));
  }
  test::require_close(scale(x, -2.5).to_vector(), want_scale, 0, 1e-15, "scale");
  test::require_close(silu(x).to_vector(), want_silu, 1e-15, 1e-15, "silu");
  check_gradients([](const std::vector<Tensor>& in) { return scale(in[0], -2.5); }, {x});
  check_gradients([](const std::vector<Tensor>& in) { return silu(in[0]); }, {x});
}

TEST_CASE("elementwise shape and type errors name the op and the shapes", "[elementwise][errors]") {
  Tensor a = randn({2, 3, 4, 5}, 1);
  REQUIRE_THROWS_WITH(add(a, randn({4}, 2)), Catch::Contains("add") && Catch::Contains("[4]") &&
                                                 Catch::Contains("[2, 3, 4, 5]"));
  REQUIRE_THROWS_WITH(mul(a, randn({2, 3, 4, 5, 1}, 2)), Catch::Contains("mul") && Catch::Contains("rank"));
  REQUIRE_THROWS_WITH(sub(a, a.to(DType::F32)), Catch::Contains("sub") && Catch::Contains("float32") &&
                                                    Catch::Contains("float64"));
  REQUIRE_THROWS_WITH(silu(a.to(DType::BF16)), Catch::Contains("silu") && Catch::Contains("bfloat16"));
}
