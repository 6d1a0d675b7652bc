// The autograd engine: composite expressions, a tensor used twice, the accumulate/write rule,
// no-grad, detach, reshape views, and a consumed graph.
#include <catch2/catch.hpp>
#include <cmath>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "tests/support.h"

using namespace ddpm;
using test::check_gradients;
using test::randn;

TEST_CASE("a composite expression differentiates by hand-derived formulas", "[autograd]") {
  // L = sum(silu(a * b + a) * 3): dL/da = 3 silu'(u) (b + 1), dL/db = 3 silu'(u) a, u = a b + a.
  Tensor a = randn({7}, 1).set_requires_grad(true), b = randn({7}, 2).set_requires_grad(true);
  Tensor loss = sum(scale(silu(add(mul(a, b), a)), 3.0));
  backward(loss);
  std::vector<double> av = a.to_vector(), bv = b.to_vector(), ga = a.grad().to_vector(), gb = b.grad().to_vector();
  for (size_t i = 0; i < av.size(); ++i) {
    double u = av[i] * bv[i] + av[i], s = 1 / (1 + std::exp(-u)), ds = s * (1 + u * (1 - s));
    REQUIRE(ga[i] == Approx(3 * ds * (bv[i] + 1)).epsilon(1e-12));
    REQUIRE(gb[i] == Approx(3 * ds * av[i]).epsilon(1e-12));
  }
}

TEST_CASE("a tensor used twice gets the sum of both gradients", "[autograd]") {
  // y = x * x + silu(x): d/dx = 2x + silu'(x); x reaches mul through both operands.
  check_gradients([](const std::vector<Tensor>& in) { return add(mul(in[0], in[0]), silu(in[0])); },
                  {randn({3, 4}, 1)});
  // An intermediate used by two later ops (a diamond): h = silu(x); y = h * w + h.
  check_gradients(
      [](const std::vector<Tensor>& in) {
        Tensor h = silu(in[0]);
        return add(mul(h, in[1]), h);
      },
      {randn({2, 5}, 2), randn({5}, 3)});
  Tensor x = Tensor::from_vector(std::vector<double>{1.5, -2.0}, {2}, DType::F64).set_requires_grad(true);
  Tensor h = scale(x, 2.0);
  backward(sum(add(mul(h, h), h)));  // d/dx (4x^2 + 2x) = 8x + 2
  REQUIRE(x.grad().to_vector() == std::vector<double>{14.0, -14.0});
}

TEST_CASE("leaf gradients accumulate across backward passes; graphs are consumed", "[autograd]") {
  Tensor w = randn({4}, 1).set_requires_grad(true);
  Tensor x = randn({4}, 2);
  backward(sum(mul(x, w)));
  std::vector<double> once = w.grad().to_vector();
  REQUIRE(once == x.to_vector());
  Tensor loss = sum(mul(x, w));
  backward(loss);
  std::vector<double> twice = w.grad().to_vector();
  for (size_t i = 0; i < once.size(); ++i) REQUIRE(twice[i] == 2 * once[i]);
  REQUIRE_THROWS_WITH(backward(loss), Catch::Contains("already consumed"));
}

TEST_CASE("no-grad guard, detach and requires_grad propagation", "[autograd]") {
  Tensor w = randn({3}, 1).set_requires_grad(true);
  {
    NoGradGuard guard;
    REQUIRE_FALSE(grad_enabled());
    Tensor y = mul(w, w);
    REQUIRE_FALSE(y.requires_grad());
    REQUIRE(y.is_leaf());
  }
  REQUIRE(grad_enabled());
  REQUIRE(mul(w, w).requires_grad());
  REQUIRE_FALSE(mul(w.detach(), w.detach()).requires_grad());
  REQUIRE_FALSE(add(randn({3}, 2), randn({3}, 3)).requires_grad());
  // Gradient stops at a detached branch: d/dw sum(w * stop(w)) = w.
  backward(sum(mul(w, w.detach())));
  REQUIRE(w.grad().to_vector() == w.to_vector());
  REQUIRE_THROWS_WITH(backward(sum(randn({3}, 4))), Catch::Contains("does not require grad"));
  REQUIRE_THROWS_WITH(backward(mul(w, w)), Catch::Contains("one-element"));
}

TEST_CASE("reshape is a view that shares storage and passes gradients through", "[autograd][tensor]") {
  Tensor x = randn({2, 6}, 1);
  Tensor v = x.reshape({3, 4});
  REQUIRE(v.raw() == x.raw());
  REQUIRE(v.shape() == Shape{3, 4});
  REQUIRE_THROWS_WITH(x.reshape({5, 2}), Catch::Contains("reshape") && Catch::Contains("[5, 2]"));
}

TEST_CASE("backward hands each input a written, accumulated or skipped slot by the gradient rule", "[autograd]") {
  // A spy node records the slots it is given. Inputs: a leaf with requires_grad (accumulate into
  // its grad), a non-leaf seen first by the spy (write a fresh buffer), the same non-leaf again
  // (accumulate into that buffer), a constant (skip) and an undefined tensor (skip).
  Tensor leaf = randn({3}, 1).set_requires_grad(true);
  Tensor activation = scale(leaf, 2.0);
  std::vector<GradSlot> seen;
  Tensor out = record(OpKind::add, Tensor::zeros({3}, DType::F64), {leaf, activation, activation, randn({3}, 2), Tensor()},
                      [&seen](const Tensor& g, std::vector<GradSlot>& slots) {
                        seen = slots;
                        for (GradSlot& s : slots) deposit(s, g);
                      });
  REQUIRE(out.impl().grad_fn->op == OpKind::add);
  backward(sum(out));
  REQUIRE(seen.size() == 5);
  REQUIRE((seen[0].wanted() && seen[0].accumulate && seen[0].tensor.same(leaf.grad())));
  REQUIRE((seen[1].wanted() && !seen[1].accumulate));
  REQUIRE((seen[2].wanted() && seen[2].accumulate && seen[2].tensor.same(seen[1].tensor)));
  REQUIRE_FALSE(seen[3].wanted());
  REQUIRE_FALSE(seen[4].wanted());
  // d/dleaf: 1 directly, plus 2 * (1 + 1) through the activation used twice.
  REQUIRE(leaf.grad().to_vector() == std::vector<double>(3, 5.0));
}

TEST_CASE("a consumed graph's error names the op by its OpKind", "[autograd]") {
  Tensor w = randn({2}, 1).set_requires_grad(true);
  Tensor y = sum(silu(w));
  backward(y);
  REQUIRE_THROWS_WITH(backward(y), Catch::Contains("'sum'") && Catch::Contains("already consumed"));
}
