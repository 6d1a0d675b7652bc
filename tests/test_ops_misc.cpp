// linear, upsample2x, concat, dropout, timestep_embedding, sum, mean, mse: shape errors and what the
// op table does not check (dropout's keep rate, p = 0, the rank-0 result of a full reduction).
// Forwards against plain loops, gradients and GradSlots: tests/op_cases.cpp, tests/test_op_table.cpp.
#include <catch2/catch.hpp>
#include <cmath>

#include "engine/ops.h"
#include "tests/support.h"

using namespace ddpm;
using test::randn;

TEST_CASE("linear, upsample2x, concat and timestep_embedding reject bad shapes naming the op", "[linear][upsample][concat][embedding]") {
  Tensor x = randn({2, 3, 4}, 1), w = randn({5, 4}, 2);
  REQUIRE_THROWS_WITH(linear(x, randn({5, 3}, 4)), Catch::Contains("linear") && Catch::Contains("[5, 3]") &&
                                                      Catch::Contains("[2, 3, 4]"));
  REQUIRE_THROWS_WITH(linear(x, w, randn({4}, 5)), Catch::Contains("linear") && Catch::Contains("bias"));
  REQUIRE_THROWS_WITH(upsample2x(randn({3, 4}, 2)), Catch::Contains("upsample2x") && Catch::Contains("[3, 4]"));
  REQUIRE_THROWS_WITH(concat(randn({2, 3, 2, 3}, 1), randn({2, 3, 3, 5}, 3)),
                      Catch::Contains("concat") && Catch::Contains("[2, 3, 3, 5]"));
  Tensor t = Tensor::from_vector(std::vector<double>{0, 1, 17, 999}, {4}, DType::F64);
  REQUIRE_THROWS_WITH(timestep_embedding(t, 7), Catch::Contains("timestep_embedding") && Catch::Contains("7"));
}

TEST_CASE("dropout keeps a fraction 1 - p of the elements; p = 0 is the identity", "[dropout]") {
  const double p = 0.3;
  Tensor x = randn({4, 8, 8, 16}, 1);
  std::vector<double> yv = dropout(x, p, 77, 5).to_vector();
  int64_t kept = 0;
  for (double y : yv) kept += y != 0.0;
  const double n = static_cast<double>(yv.size());
  REQUIRE(std::fabs(kept / n - (1 - p)) < 5 * std::sqrt(p * (1 - p) / n));
  REQUIRE(dropout(x, 0.0, 1, 1).same(x));
  REQUIRE_THROWS_WITH(dropout(x, 1.0, 1, 1), Catch::Contains("dropout") && Catch::Contains("[0, 1)"));
}

TEST_CASE("reductions: a full reduction has shape []; keep is checked", "[reduce]") {
  Tensor x = randn({3, 4, 5}, 1);
  REQUIRE(sum(x).shape() == Shape{});
  REQUIRE(mean(x, 1).shape() == Shape{3});
  REQUIRE(mse(x, x, 2).shape() == Shape{3, 4});
  REQUIRE_THROWS_WITH(sum(x, 4), Catch::Contains("sum") && Catch::Contains("keep"));
  REQUIRE_THROWS_WITH(mse(x, randn({3, 4}, 3)), Catch::Contains("mse") && Catch::Contains("[3, 4]"));
}
