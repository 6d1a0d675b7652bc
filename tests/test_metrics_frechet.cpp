// The Fréchet distance against closed forms (diagonal, commuting and 2x2 non-commuting
// covariances, a singular one) and against pytorch-fid's calculate_frechet_distance on fixed
// feature sets (tests/fixtures/metrics, pinned by scripts/pin_metric_fixtures.py).
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "metrics/feature_stats.h"
#include "metrics/frechet_distance.h"

using namespace ddpm;

namespace {
GaussianStats gaussian(std::vector<double> mu, std::vector<double> sigma) {
  GaussianStats g;
  g.dim = static_cast<int64_t>(mu.size());
  g.mu = std::move(mu);
  g.sigma = std::move(sigma);
  return g;
}

// R diag(values) R^T for the rotation R = Givens(angle) on coordinates (0, 1), identity elsewhere.
std::vector<double> rotated_diagonal(const std::vector<double>& values, double angle) {
  const size_t d = values.size();
  std::vector<double> r(d * d, 0.0), out(d * d, 0.0);
  for (size_t i = 0; i < d; ++i) r[i * d + i] = 1;
  r[0] = r[d + 1] = std::cos(angle);
  r[1] = -std::sin(angle);
  r[d] = std::sin(angle);
  for (size_t i = 0; i < d; ++i)
    for (size_t j = 0; j < d; ++j)
      for (size_t k = 0; k < d; ++k) out[i * d + j] += r[i * d + k] * values[k] * r[j * d + k];
  return out;
}

nlohmann::json fixture() {
  std::ifstream in(std::string(DDPM_SOURCE_DIR) + "/tests/fixtures/metrics/feature_sets.json");
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}

FeatureStats stats_of(const nlohmann::json& rows) {
  FeatureStats s(static_cast<int64_t>(rows[0].size()), false);
  std::vector<float> flat;
  for (const auto& row : rows)
    for (double v : row) flat.push_back(static_cast<float>(v));
  s.add(flat.data(), static_cast<int64_t>(rows.size()));
  return s;
}
}  // namespace

TEST_CASE("metrics: Fréchet distance of diagonal and commuting covariances equals the closed form", "[metrics][fid]") {
  // Commuting S1, S2 share eigenvectors: d^2 = |mu1 - mu2|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2.
  const std::vector<double> a{4.0, 1.0, 0.25, 9.0}, b{1.0, 2.0, 0.5, 0.0};
  const std::vector<double> mu1{1, 2, 3, 4}, mu2{0, 2, 5, 3};
  double expected = 1 + 0 + 4 + 1;
  for (size_t i = 0; i < a.size(); ++i) expected += std::pow(std::sqrt(a[i]) - std::sqrt(b[i]), 2);
  for (double angle : {0.0, 0.7}) {
    INFO("rotation " << angle);
    const double fd = frechet_distance(gaussian(mu1, rotated_diagonal(a, angle)), gaussian(mu2, rotated_diagonal(b, angle)));
    REQUIRE(fd == Approx(expected).epsilon(1e-12));
  }
}

TEST_CASE("metrics: Fréchet distance of non-commuting 2x2 covariances equals the closed form", "[metrics][fid]") {
  // For 2x2 S1 S2 with eigenvalues l1, l2 >= 0: tr((S1 S2)^{1/2}) = sqrt(l1) + sqrt(l2)
  // = sqrt(tr(S1 S2) + 2 sqrt(det S1 det S2)).
  const std::vector<double> s1{2.0, 0.6, 0.6, 1.0}, s2{0.5, -0.3, -0.3, 3.0};
  const double tr12 = s1[0] * s2[0] + s1[1] * s2[2] + s1[2] * s2[1] + s1[3] * s2[3];
  const double det1 = s1[0] * s1[3] - s1[1] * s1[2], det2 = s2[0] * s2[3] - s2[1] * s2[2];
  const double tr_sqrt = std::sqrt(tr12 + 2 * std::sqrt(det1 * det2));
  REQUIRE(trace_sqrt_product(s1, s2, 2) == Approx(tr_sqrt).epsilon(1e-13));
  REQUIRE(trace_sqrt_product(s2, s1, 2) == Approx(tr_sqrt).epsilon(1e-13));
  const double expected = (1.0 + 0.25) + (2.0 + 1.0) + (0.5 + 3.0) - 2 * tr_sqrt;
  REQUIRE(frechet_distance(gaussian({1, 0}, s1), gaussian({0, 0.5}, s2)) == Approx(expected).epsilon(1e-12));
}

TEST_CASE("metrics: Fréchet distance with a singular covariance needs no offset", "[metrics][fid]") {
  // S1 = diag(1, 0) (rank 1) and S2 = I: tr((S1 S2)^{1/2}) = 1, so d^2 = 1 + 2 - 2 = 1.
  REQUIRE(frechet_distance(gaussian({0, 0}, {1, 0, 0, 0}), gaussian({0, 0}, {1, 0, 0, 1})) == Approx(1.0).epsilon(1e-12));
  // Identical Gaussians: 0 up to round-off, never negative beyond it.
  const auto g = gaussian({1, 2, 3}, rotated_diagonal({3, 0, 1e-3}, 0.3));
  REQUIRE(std::abs(frechet_distance(g, g)) < 1e-12);
}

TEST_CASE("metrics: FID on fixed features equals pytorch-fid's calculate_frechet_distance", "[metrics][fid]") {
  const nlohmann::json f = fixture();
  const GaussianStats a = stats_of(f["a"]).gaussian(), b = stats_of(f["b"]).gaussian();
  REQUIRE(frechet_distance(a, b) == Approx(f["fid"].get<double>()).epsilon(1e-6));
  REQUIRE(frechet_distance(b, a) == Approx(f["fid"].get<double>()).epsilon(1e-6));
  // pytorch-fid's value of a set against itself is round-off; ours too.
  REQUIRE(std::abs(frechet_distance(a, a)) < 1e-9);
  REQUIRE(std::abs(f["fid_self"].get<double>()) < 1e-6);
}

TEST_CASE("metrics: Fréchet distance rejects mismatched or non-finite statistics", "[metrics][fid][errors]") {
  REQUIRE_THROWS_WITH(frechet_distance(gaussian({0, 0}, {1, 0, 0, 1}), gaussian({0}, {1})),
                      Catch::Contains("different dimensions") && Catch::Contains("same feature network"));
  REQUIRE_THROWS_WITH(frechet_distance(gaussian({0}, {NAN}), gaussian({0}, {1})), Catch::Contains("non-finite"));
}
