// KID, precision/recall and the Inception score against numpy implementations of the published
// formulas (tests/fixtures/metrics, pinned by scripts/pin_metric_fixtures.py) and closed forms.
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "metrics/inception_score.h"
#include "metrics/kernel_inception_distance.h"
#include "metrics/precision_recall.h"

using namespace ddpm;

namespace {
nlohmann::json fixture() {
  std::ifstream in(std::string(DDPM_SOURCE_DIR) + "/tests/fixtures/metrics/feature_sets.json");
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}

std::vector<float> flat(const nlohmann::json& rows) {
  std::vector<float> out;
  for (const auto& row : rows)
    for (double v : row) out.push_back(static_cast<float>(v));
  return out;
}
}  // namespace

TEST_CASE("metrics: KID equals the unbiased polynomial-kernel MMD^2 computed by numpy", "[metrics][kid]") {
  const nlohmann::json f = fixture();
  const std::vector<float> a = flat(f["a"]), b = flat(f["b"]);
  // One subset of all 200: the sums are permutation-invariant, so the draw cannot matter.
  KidOptions o;
  o.subsets = 3;
  o.subset_size = 200;
  const KidResult r = kernel_inception_distance(a, 200, b, 200, 16, o);
  REQUIRE(r.subset_size == 200);
  REQUIRE(r.mean == Approx(f["kid"].get<double>()).epsilon(1e-5));
  REQUIRE(r.std < 1e-6 * std::abs(r.mean));
  // Two disjoint halves of the same sample: the unbiased estimate is centred on 0.
  const std::vector<float> first(a.begin(), a.begin() + 100 * 16), second(a.begin() + 100 * 16, a.end());
  o.subset_size = 100;
  REQUIRE(std::abs(kernel_inception_distance(first, 100, second, 100, 16, o).mean) < 0.1 * f["kid"].get<double>());
}

TEST_CASE("metrics: KID over subsets is the mean and population std of the per-subset MMD^2", "[metrics][kid]") {
  const nlohmann::json f = fixture();
  const std::vector<float> a = flat(f["a"]), b = flat(f["b"]);
  KidOptions o;
  o.subsets = 5;
  o.subset_size = 50;
  o.seed = 11;
  const KidResult r = kernel_inception_distance(a, 200, b, 200, 16, o);
  std::vector<double> values;
  for (int64_t s = 0; s < 5; ++s) {
    auto rows = [](const std::vector<float>& set, const std::vector<int64_t>& index) {
      std::vector<float> out;
      for (int64_t i : index) out.insert(out.end(), set.begin() + i * 16, set.begin() + (i + 1) * 16);
      return out;
    };
    const std::vector<int64_t> ia = random_subset(200, 50, 11, 2 * static_cast<uint64_t>(s));
    const std::vector<int64_t> ib = random_subset(200, 50, 11, 2 * static_cast<uint64_t>(s) + 1);
    REQUIRE(std::set<int64_t>(ia.begin(), ia.end()).size() == 50);  // without replacement
    values.push_back(polynomial_mmd2(rows(a, ia), rows(b, ib), 50, 16));
  }
  double mean = 0, var = 0;
  for (double v : values) mean += v / 5;
  for (double v : values) var += (v - mean) * (v - mean) / 5;
  REQUIRE(r.mean == Approx(mean).epsilon(1e-12));
  REQUIRE(r.std == Approx(std::sqrt(var)).epsilon(1e-9));
  REQUIRE(r.std > 0);
  // Reproducible: the same seed gives the same subsets; another seed other ones.
  REQUIRE(kernel_inception_distance(a, 200, b, 200, 16, o).mean == r.mean);
  o.seed = 12;
  REQUIRE(kernel_inception_distance(a, 200, b, 200, 16, o).mean != r.mean);
  REQUIRE(random_subset(10, 10, 3, 0) != random_subset(10, 10, 3, 1));
}

TEST_CASE("metrics: precision and recall equal numpy's k-NN definition (k = 3)", "[metrics][pr]") {
  const nlohmann::json f = fixture();
  const std::vector<float> a = flat(f["a"]), b = flat(f["b"]);
  const PrecisionRecall r = precision_recall(a, 200, b, 200, 16, 3);  // a real, b generated
  REQUIRE(r.precision == f["precision"].get<double>());
  REQUIRE(r.recall == f["recall"].get<double>());
  // A set against itself covers itself completely.
  const PrecisionRecall self = precision_recall(a, 200, a, 200, 16, 3);
  REQUIRE(self.precision == 1.0);
  REQUIRE(self.recall == 1.0);
}

TEST_CASE("metrics: k-NN radii on a line are the k-th neighbour's distance", "[metrics][pr]") {
  // Points 0, 1, 3, 7, 15 on the first axis (d = 2): 2nd-nearest distances 3, 2, 3, 6, 12.
  const std::vector<float> points{0, 0, 1, 0, 3, 0, 7, 0, 15, 0};
  const std::vector<float> r = knn_radii_squared(points, 5, 2, 2);
  REQUIRE(r == std::vector<float>{9, 4, 9, 36, 144});
  REQUIRE_THROWS_WITH(knn_radii_squared(points, 5, 2, 5), Catch::Contains("more than 5"));
}

TEST_CASE("metrics: Inception score is 1 for uniform and K for confident, evenly spread logits", "[metrics][is]") {
  const int64_t n = 100, k = 5;
  REQUIRE(inception_score(std::vector<float>(static_cast<size_t>(n * k), 0.3f), n, k).mean == Approx(1.0).epsilon(1e-12));
  std::vector<float> peaked(static_cast<size_t>(n * k), 0.0f);
  for (int64_t i = 0; i < n; ++i) peaked[static_cast<size_t>(i * k + i % k)] = 200.0f;  // each split: 2 of each class
  const InceptionScore r = inception_score(peaked, n, k, 10);
  REQUIRE(r.mean == Approx(static_cast<double>(k)).epsilon(1e-9));
  REQUIRE(r.std < 1e-9);
  REQUIRE(r.splits == 10);
}

TEST_CASE("metrics: Inception score equals numpy's over 10 splits", "[metrics][is]") {
  const nlohmann::json f = fixture();
  const InceptionScore r = inception_score(flat(f["logits"]), 200, 10, 10);
  REQUIRE(r.mean == Approx(f["is_mean"].get<double>()).epsilon(1e-9));
  REQUIRE(r.std == Approx(f["is_std"].get<double>()).epsilon(1e-7));
  REQUIRE_THROWS_WITH(inception_score(flat(f["logits"]), 200, 10, 300), Catch::Contains("at least 300"));
}
