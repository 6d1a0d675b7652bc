// global_avg_pool and softmax_cross_entropy: forward against values computed here, float64
// gradient checks, numerical stability at large logits, shape and label errors.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/ops.h"
#include "tests/support.h"

using namespace ddpm;
using test::check_gradients;
using test::randn;

TEST_CASE("global_avg_pool averages every pixel of each channel", "[classification]") {
  Tensor x = randn({2, 3, 4, 5}, 1);
  const std::vector<double> xv = x.to_vector();
  std::vector<double> want(2 * 5, 0.0);
  for (int n = 0; n < 2; ++n)
    for (int p = 0; p < 12; ++p)
      for (int c = 0; c < 5; ++c) want[n * 5 + c] += xv[(n * 12 + p) * 5 + c] / 12.0;
  Tensor y = global_avg_pool(x);
  REQUIRE(y.shape() == Shape{2, 5});
  test::require_close(y.to_vector(), want, 1e-14, 1e-15, "global_avg_pool");
  check_gradients([](const std::vector<Tensor>& in) { return global_avg_pool(in[0]); }, {x});
  check_gradients([](const std::vector<Tensor>& in) { return global_avg_pool(in[0]); }, {randn({3, 1, 1, 4}, 2)});
  // float32 agrees with float64
  test::require_close(global_avg_pool(x.to(DType::F32)).to_vector(), want, 1e-6, 1e-6, "global_avg_pool float32");
  REQUIRE_THROWS_WITH(global_avg_pool(randn({2, 3, 4}, 3)),
                      Catch::Contains("global_avg_pool") && Catch::Contains("[2, 3, 4]"));
}

namespace {
Tensor labels_of(const std::vector<float>& v) { return Tensor::from_vector(v, {static_cast<int64_t>(v.size())}); }

// -log softmax(row)[y], computed the textbook way (fine for moderate logits).
double naive_cross_entropy(const std::vector<double>& row, int y) {
  double total = 0;
  for (double v : row) total += std::exp(v);
  return std::log(total) - row[static_cast<size_t>(y)];
}
}  // namespace

TEST_CASE("softmax_cross_entropy is -log softmax(logits)[label] per sample", "[classification]") {
  const int64_t n = 4, k = 5;
  Tensor logits = randn({n, k}, 1, 2.0);
  const std::vector<float> y = {0, 4, 2, 2};
  const std::vector<double> lv = logits.to_vector();
  std::vector<double> want;
  for (int64_t b = 0; b < n; ++b)
    want.push_back(naive_cross_entropy({lv.begin() + b * k, lv.begin() + (b + 1) * k}, static_cast<int>(y[b])));
  Tensor loss = softmax_cross_entropy(logits, labels_of(y));
  REQUIRE(loss.shape() == Shape{n});
  test::require_close(loss.to_vector(), want, 1e-13, 1e-14, "softmax_cross_entropy");
  test::require_close(softmax_cross_entropy(logits.to(DType::F32), labels_of(y)).to_vector(), want, 1e-5, 1e-6,
                      "softmax_cross_entropy float32");
  check_gradients([y](const std::vector<Tensor>& in) { return softmax_cross_entropy(in[0], labels_of(y)); }, {logits});
  // Through a mean, as the trainer uses it, and with one class.
  check_gradients([y](const std::vector<Tensor>& in) { return mean(softmax_cross_entropy(in[0], labels_of(y))); },
                  {logits});
  REQUIRE(softmax_cross_entropy(randn({3, 1}, 2), labels_of({0, 0, 0})).to_vector() == std::vector<double>{0, 0, 0});
}

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
