// linear, upsample2x, concat, dropout, timestep_embedding, sum, mean, mse: forward against values
// computed here, float64 gradient checks, shape errors.
#include <catch2/catch.hpp>
#include <cmath>

#include "engine/ops.h"
#include "engine/philox.h"
#include "tests/support.h"

using namespace ddpm;
using test::check_gradients;
using test::randn;

TEST_CASE("linear computes x W^T + b over leading axes", "[linear]") {
  Tensor x = randn({2, 3, 4}, 1), w = randn({5, 4}, 2), b = randn({5}, 3);
  std::vector<double> xv = x.to_vector(), wv = w.to_vector(), bv = b.to_vector(), want;
  for (int r = 0; r < 6; ++r)
    for (int o = 0; o < 5; ++o) {
      double s = bv[o];
      for (int i = 0; i < 4; ++i) s += xv[r * 4 + i] * wv[o * 4 + i];
      want.push_back(s);
    }
  Tensor y = linear(x, w, b);
  REQUIRE(y.shape() == Shape{2, 3, 5});
  test::require_close(y.to_vector(), want, 1e-14, 1e-14, "linear");
  check_gradients([](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); }, {x, w, b});
  check_gradients([](const std::vector<Tensor>& in) { return linear(in[0], in[1]); }, {x, w});
  REQUIRE_THROWS_WITH(linear(x, randn({5, 3}, 4)), Catch::Contains("linear") && Catch::Contains("[5, 3]") &&
                                                      Catch::Contains("[2, 3, 4]"));
  REQUIRE_THROWS_WITH(linear(x, w, randn({4}, 5)), Catch::Contains("linear") && Catch::Contains("bias"));
}

TEST_CASE("upsample2x repeats each pixel into a 2x2 block", "[upsample]") {
  Tensor x = randn({2, 3, 2, 3}, 1);
  std::vector<double> xv = x.to_vector(), yv = upsample2x(x).to_vector();
  for (int n = 0; n < 2; ++n)
    for (int oy = 0; oy < 6; ++oy)
      for (int ox = 0; ox < 4; ++ox)
        for (int c = 0; c < 3; ++c)
          REQUIRE(yv[((n * 6 + oy) * 4 + ox) * 3 + c] == xv[((n * 3 + oy / 2) * 2 + ox / 2) * 3 + c]);
  check_gradients([](const std::vector<Tensor>& in) { return upsample2x(in[0]); }, {x});
  REQUIRE_THROWS_WITH(upsample2x(randn({3, 4}, 2)), Catch::Contains("upsample2x") && Catch::Contains("[3, 4]"));
}

TEST_CASE("concat joins the channel axis", "[concat]") {
  Tensor a = randn({2, 3, 2, 3}, 1), b = randn({2, 3, 2, 5}, 2);
  std::vector<double> av = a.to_vector(), bv = b.to_vector(), yv = concat(a, b).to_vector();
  for (int r = 0; r < 12; ++r)
    for (int c = 0; c < 8; ++c) REQUIRE(yv[r * 8 + c] == (c < 3 ? av[r * 3 + c] : bv[r * 5 + c - 3]));
  check_gradients([](const std::vector<Tensor>& in) { return concat(in[0], in[1]); }, {a, b});
  REQUIRE_THROWS_WITH(concat(a, randn({2, 3, 3, 5}, 3)), Catch::Contains("concat") && Catch::Contains("[2, 3, 3, 5]"));
}

TEST_CASE("dropout keeps each element with probability 1 - p, scaled by 1 / (1 - p)", "[dropout]") {
  const double p = 0.3;
  Tensor x = randn({4, 8, 8, 16}, 1);
  std::vector<double> xv = x.to_vector(), yv = dropout(x, p, 77, 5).to_vector();
  int64_t kept = 0;
  for (size_t i = 0; i < xv.size(); ++i) {
    bool keep = ddpm::philox::uniform(77, 5, i) >= static_cast<float>(p);
    REQUIRE(yv[i] == Approx(keep ? xv[i] / (1 - p) : 0.0).margin(1e-15));
    kept += keep;
  }
  const double n = static_cast<double>(xv.size());
  REQUIRE(std::fabs(kept / n - (1 - p)) < 5 * std::sqrt(p * (1 - p) / n));
  check_gradients([p](const std::vector<Tensor>& in) { return dropout(in[0], p, 77, 5); }, {randn({2, 3, 4}, 2)});
  REQUIRE(dropout(x, 0.0, 1, 1).same(x));
  REQUIRE_THROWS_WITH(dropout(x, 1.0, 1, 1), Catch::Contains("dropout") && Catch::Contains("[0, 1)"));
}

TEST_CASE("timestep_embedding is [sin(t f), cos(t f)] with DDPM frequencies", "[embedding]") {
  Tensor t = Tensor::from_vector(std::vector<double>{0, 1, 17, 999}, {4}, DType::F64);
  const int dim = 8, half = 4;
  std::vector<double> yv = timestep_embedding(t, dim).to_vector();
  const double ts[] = {0, 1, 17, 999};
  for (int n = 0; n < 4; ++n)
    for (int i = 0; i < half; ++i) {
      double f = std::pow(10000.0, -static_cast<double>(i) / (half - 1));
      REQUIRE(yv[n * dim + i] == Approx(std::sin(ts[n] * f)).margin(1e-12));
      REQUIRE(yv[n * dim + half + i] == Approx(std::cos(ts[n] * f)).margin(1e-12));
    }
  check_gradients([](const std::vector<Tensor>& in) { return timestep_embedding(in[0], 6); },
                  {Tensor::from_vector(std::vector<double>{0.5, 3, 40}, {3}, DType::F64)});
  REQUIRE_THROWS_WITH(timestep_embedding(t, 7), Catch::Contains("timestep_embedding") && Catch::Contains("7"));
}

TEST_CASE("sum, mean and mse reduce the trailing axes", "[reduce]") {
  Tensor x = randn({3, 4, 5}, 1), y = randn({3, 4, 5}, 2);
  std::vector<double> xv = x.to_vector(), yv = y.to_vector();
  double total = 0, sq = 0;
  std::vector<double> per_sample(3, 0.0), mse_sample(3, 0.0);
  for (size_t i = 0; i < xv.size(); ++i) {
    total += xv[i];
    per_sample[i / 20] += xv[i];
    double d = xv[i] - yv[i];
    sq += d * d;
    mse_sample[i / 20] += d * d / 20;
  }
  REQUIRE(sum(x).shape() == Shape{});
  REQUIRE(sum(x).item() == Approx(total).epsilon(1e-14));
  REQUIRE(mean(x).item() == Approx(total / 60).epsilon(1e-14));
  test::require_close(sum(x, 1).to_vector(), per_sample, 1e-14, 1e-14, "sum keep 1");
  REQUIRE(mse(x, y).item() == Approx(sq / 60).epsilon(1e-14));
  test::require_close(mse(x, y, 1).to_vector(), mse_sample, 1e-14, 1e-14, "mse keep 1");
  REQUIRE(sum(x, 3).to_vector() == xv);
  for (int keep = 0; keep <= 2; ++keep) {
    check_gradients([keep](const std::vector<Tensor>& in) { return sum(in[0], keep); }, {x});
    check_gradients([keep](const std::vector<Tensor>& in) { return mean(in[0], keep); }, {x});
    check_gradients([keep](const std::vector<Tensor>& in) { return mse(in[0], in[1], keep); }, {x, y});
  }
  REQUIRE_THROWS_WITH(sum(x, 4), Catch::Contains("sum") && Catch::Contains("keep"));
  REQUIRE_THROWS_WITH(mse(x, randn({3, 4}, 3)), Catch::Contains("mse") && Catch::Contains("[3, 4]"));
}
