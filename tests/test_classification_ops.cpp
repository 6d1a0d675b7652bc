// global_avg_pool and softmax_cross_entropy: the gradient's closed form, numerical stability at
// large logits, shape and label errors. Forwards, gradients and GradSlots: the op table
// (tests/op_cases.cpp, tests/test_op_table.cpp).
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/ops.h"
#include "tests/support.h"

using namespace ddpm;
using test::randn;

TEST_CASE("global_avg_pool gives [N, C] and rejects other ranks", "[classification]") {
  REQUIRE(global_avg_pool(randn({2, 3, 4, 5}, 1)).shape() == Shape{2, 5});
  REQUIRE_THROWS_WITH(global_avg_pool(randn({2, 3, 4}, 3)),
                      Catch::Contains("global_avg_pool") && Catch::Contains("[2, 3, 4]"));
}

namespace {
Tensor labels_of(const std::vector<float>& v) { return Tensor::from_vector(v, {static_cast<int64_t>(v.size())}); }

}  // namespace

TEST_CASE("softmax_cross_entropy's gradient is softmax minus the one-hot label", "[classification]") {
  Tensor logits = randn({3, 4}, 5);
  logits.set_requires_grad(true);
  const std::vector<float> y = {3, 0, 1};
  backward(sum(softmax_cross_entropy(logits, labels_of(y))));
  const std::vector<double> lv = logits.to_vector(), gv = logits.grad().to_vector();
  for (int b = 0; b < 3; ++b) {
    double total = 0;
    for (int j = 0; j < 4; ++j) total += std::exp(lv[b * 4 + j]);
    for (int j = 0; j < 4; ++j)
      REQUIRE(gv[b * 4 + j] == Approx(std::exp(lv[b * 4 + j]) / total - (j == y[b] ? 1 : 0)).margin(1e-14));
  }
}

TEST_CASE("softmax_cross_entropy stays finite for logits whose exp overflows", "[classification]") {
  // exp(1000) overflows double and exp(100) float32; the loss must come out of the log-sum-exp
  // around the maximum: for logits {a, a - d} and label 1 it is log(1 + e^-d) + d.
  for (DType dt : {DType::F64, DType::F32}) {
    Tensor logits = Tensor::from_vector(std::vector<double>{1000, 997, -1000, -1003}, {2, 2}).to(dt);
    logits.set_requires_grad(true);
    Tensor loss = softmax_cross_entropy(logits, labels_of({1, 0}));
    const std::vector<double> lv = loss.to_vector();
    const double want1 = std::log1p(std::exp(-3.0)) + 3.0, want0 = std::log1p(std::exp(-3.0));
    REQUIRE(lv[0] == Approx(want1).epsilon(1e-6));
    REQUIRE(lv[1] == Approx(want0).epsilon(1e-5));
    backward(sum(loss));
    for (double g : logits.grad().to_vector()) REQUIRE(std::isfinite(g));
  }
}

TEST_CASE("softmax_cross_entropy refuses bad shapes and labels", "[classification][errors]") {
  Tensor logits = randn({2, 3}, 1);
  REQUIRE_THROWS_WITH(softmax_cross_entropy(randn({2, 3, 1}, 2), labels_of({0, 1})),
                      Catch::Contains("softmax_cross_entropy") && Catch::Contains("[N, K]"));
  REQUIRE_THROWS_WITH(softmax_cross_entropy(logits, labels_of({0, 1, 2})),
                      Catch::Contains("labels") && Catch::Contains("[2]"));
  REQUIRE_THROWS_WITH(softmax_cross_entropy(logits, labels_of({0, 3})),
                      Catch::Contains("label 3") && Catch::Contains("[0, 3)"));
  REQUIRE_THROWS_WITH(softmax_cross_entropy(logits, labels_of({0.5f, 1})), Catch::Contains("label 0.5"));
  REQUIRE_THROWS_WITH(softmax_cross_entropy(logits, labels_of({-1, 1})), Catch::Contains("label -1"));
  REQUIRE_THROWS_WITH(softmax_cross_entropy(logits, Tensor::from_vector(std::vector<double>{0, 1}, {2}, DType::F64)),
                      Catch::Contains("float32"));
  // Called directly, the kernel turns an invalid label into NaN instead of reading out of bounds.
  Tensor out = Tensor::empty({2}, DType::F64), lse = Tensor::empty({2}, DType::F64);
  cpu_backend().softmax_cross_entropy_forward({logits, labels_of({7, 1}), out, lse});
  REQUIRE(std::isnan(out.to_vector()[0]));
  REQUIRE(std::isfinite(out.to_vector()[1]));
}
