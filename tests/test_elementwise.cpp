// add, sub, mul, scale, silu: shape and type errors. Forwards, gradients and GradSlots are checked
// by the op table (tests/op_cases.cpp, tests/test_op_table.cpp).
#include <catch2/catch.hpp>

#include "engine/ops.h"
#include "tests/support.h"

using namespace ddpm;
using test::randn;

TEST_CASE("elementwise shape and type errors name the op and the shapes", "[elementwise][errors]") {
  Tensor a = randn({2, 3, 4, 5}, 1);
  REQUIRE_THROWS_WITH(add(a, randn({4}, 2)), Catch::Contains("add") && Catch::Contains("[4]") &&
                                                 Catch::Contains("[2, 3, 4, 5]"));
  REQUIRE_THROWS_WITH(mul(a, randn({2, 3, 4, 5, 1}, 2)), Catch::Contains("mul") && Catch::Contains("rank"));
  REQUIRE_THROWS_WITH(sub(a, a.to(DType::F32)), Catch::Contains("sub") && Catch::Contains("float32") &&
                                                    Catch::Contains("float64"));
  REQUIRE_THROWS_WITH(silu(a.to(DType::BF16)), Catch::Contains("silu") && Catch::Contains("bfloat16"));
}
