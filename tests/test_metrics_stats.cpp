// Streaming feature statistics against a two-pass float64 computation and numpy's, and the .npz
// reader/writer against files numpy wrote and numpy reads (scripts/pin_metric_fixtures.py).
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "engine/philox.h"
#include "metrics/feature_stats.h"
#include "metrics/npz.h"
#include "tests/cli_runner.h"
#include "tests/support.h"

using namespace ddpm;

namespace {
const std::string kFixtures = std::string(DDPM_SOURCE_DIR) + "/tests/fixtures/metrics/";

std::string bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}
}  // namespace

TEST_CASE("metrics: streaming mean and covariance equal a two-pass float64 computation", "[metrics][stats]") {
  // Features with a large common offset (1e4), where a naive sum of squares would lose ~8 digits.
  const int64_t n = 301, d = 5;
  std::vector<float> rows(static_cast<size_t>(n * d));
  for (int64_t i = 0; i < n * d; ++i)
    rows[static_cast<size_t>(i)] = 1e4f + static_cast<float>(i % d) + philox::normal(7, 0, static_cast<uint64_t>(i));
  FeatureStats stats(d, true);
  for (int64_t first = 0, batch = 1; first < n; first += batch, batch = batch % 7 + 1)  // uneven batches
    stats.add(rows.data() + first * d, std::min(batch, n - first));
  REQUIRE(stats.count() == n);
  REQUIRE(stats.features() == rows);

  std::vector<double> mean(static_cast<size_t>(d), 0.0), cov(static_cast<size_t>(d * d), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j) mean[static_cast<size_t>(j)] += rows[static_cast<size_t>(i * d + j)] / static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j)
      for (int64_t k = 0; k < d; ++k)
        cov[static_cast<size_t>(j * d + k)] += (rows[static_cast<size_t>(i * d + j)] - mean[static_cast<size_t>(j)]) *
                                               (rows[static_cast<size_t>(i * d + k)] - mean[static_cast<size_t>(k)]) /
                                               static_cast<double>(n - 1);
  const GaussianStats g = stats.gaussian();
  test::require_close(g.mu, mean, 1e-14, 0, "mean");
  test::require_close(g.sigma, cov, 1e-11, 1e-12, "covariance");  // entries ~1
}

TEST_CASE("metrics: streaming statistics equal numpy's mean and cov on the fixture", "[metrics][stats]") {
  std::ifstream in(kFixtures + "feature_sets.json");
  const nlohmann::json f = nlohmann::json::parse(in);
  FeatureStats stats(16, false);
  for (const auto& row : f["a"]) {
    std::vector<float> r(row.begin(), row.end());
    stats.add(r.data(), 1);  // one at a time: the most updates
  }
  const GaussianStats g = stats.gaussian();
  test::require_close(g.mu, f["mu_a"].get<std::vector<double>>(), 1e-12, 1e-14, "mu");
  test::require_close(g.sigma, f["sigma_a"].get<std::vector<double>>(), 1e-11, 1e-13, "sigma");
  REQUIRE(stats.features().empty());
}

TEST_CASE("metrics: feature statistics reject bad input", "[metrics][stats][errors]") {
  FeatureStats stats(3, false);
  REQUIRE_THROWS_WITH(stats.add(Tensor::zeros({2, 4})), Catch::Contains("[N, 3]"));
  const float one[3] = {1, 2, 3};
  stats.add(one, 1);
  REQUIRE_THROWS_WITH(stats.gaussian(), Catch::Contains("at least 2"));
}

TEST_CASE("metrics: npz round-trips and reads what numpy writes, stored or deflated", "[metrics][npz]") {
  test::TempDir dir;
  const std::vector<double> mu{1.5, -2.25, 1e-300};
  const std::vector<float> feats{0.5f, -1.0f, 3.25f, 7.0f, 8.0f, -0.125f};
  write_npz(dir / "a.npz", {{"mu", NpyArray::of(mu, {3})}, {"features", NpyArray::of(feats, {2, 3})}});
  const auto back = read_npz(dir / "a.npz");
  REQUIRE(back.at("mu").dtype == "<f8");
  REQUIRE(back.at("mu").shape == std::vector<int64_t>{3});
  REQUIRE(back.at("mu").doubles() == mu);
  REQUIRE(back.at("features").dtype == "<f4");
  REQUIRE(back.at("features").shape == std::vector<int64_t>{2, 3});
  REQUIRE(back.at("features").floats() == feats);

  std::ifstream in(kFixtures + "feature_sets.json");
  const nlohmann::json f = nlohmann::json::parse(in);
  const auto stored = read_npz(kFixtures + "numpy_stored.npz");  // np.savez
  REQUIRE(stored.at("mu").doubles() == f["mu_a"].get<std::vector<double>>());
  REQUIRE(stored.at("sigma").shape == std::vector<int64_t>{16, 16});
  REQUIRE(stored.at("sigma").doubles() == f["sigma_a"].get<std::vector<double>>());
  const auto deflated = read_npz(kFixtures + "numpy_deflated.npz");  // np.savez_compressed
  REQUIRE(deflated.at("features").dtype == "<f4");
  REQUIRE(deflated.at("features").shape == std::vector<int64_t>{200, 16});
  std::vector<float> b;
  for (const auto& row : f["b"])
    for (double v : row) b.push_back(static_cast<float>(v));
  REQUIRE(deflated.at("features").floats() == b);
}

TEST_CASE("metrics: npz writer output is byte-stable (numpy reads the pinned copy)", "[metrics][npz]") {
  // The arrays scripts/pin_metric_fixtures.py checks numpy reads from cpp_written.npz.
  std::vector<double> mu, sigma;
  std::vector<float> feats;
  for (int i = 0; i < 5; ++i) mu.push_back(0.5 * i - 1);
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 5; ++j) sigma.push_back((i * 5 + j) / 7.0);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j) feats.push_back(0.25f * static_cast<float>(i * 4 + j));
  const std::vector<std::pair<std::string, NpyArray>> arrays{
      {"mu", NpyArray::of(mu, {5})}, {"sigma", NpyArray::of(sigma, {5, 5})}, {"features", NpyArray::of(feats, {3, 4})}};
  const std::string pinned = kFixtures + "cpp_written.npz";
  if (std::getenv("DDPM_PIN_FIXTURES")) write_npz(pinned, arrays);
  test::TempDir dir;
  write_npz(dir / "now.npz", arrays);
  REQUIRE(bytes_of(dir / "now.npz") == bytes_of(pinned));
}

TEST_CASE("metrics: npz reader names the file and the problem on corrupt input", "[metrics][npz][errors]") {
  test::TempDir dir;
  REQUIRE_THROWS_WITH(read_npz(dir / "missing.npz"), Catch::Contains("cannot open") && Catch::Contains("missing.npz"));
  std::ofstream(dir / "junk.npz") << "not a zip at all, just some words that go on";
  REQUIRE_THROWS_WITH(read_npz(dir / "junk.npz"), Catch::Contains("not a zip archive"));
  write_npz(dir / "x.npz", {{"mu", NpyArray::of(std::vector<double>{1, 2, 3}, {3})}});
  std::string bytes = bytes_of(dir / "x.npz");
  bytes[100] ^= 0x55;  // a data byte: the CRC catches it
  std::ofstream(dir / "x.npz", std::ios::binary) << bytes;
  REQUIRE_THROWS_WITH(read_npz(dir / "x.npz"), Catch::Contains("CRC-32"));
}
