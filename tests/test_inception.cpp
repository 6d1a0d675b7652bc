// Inception-v3 (pytorch-fid's FID network) against PyTorch: scripts/pin_inception_fixtures.py ran
// pytorch-fid on Philox-generated random weights and images and pinned the pool features, the fc
// logits and per-tensor checksums of the converted file (tests/fixtures/inception/). This test
// regenerates the same weights, lays them out as scripts/convert_inception.py does, writes the
// file, opens it through open_inception_network and compares. It also checks that a file which does
// not match the architecture is refused with the first mismatch named.
#include <catch2/catch.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/io/safetensors.h"
#include "engine/philox.h"
#include "models/inception_v3.h"
#include "tests/cli_runner.h"
#include "tests/support.h"
#include "tools/feature_networks.h"

namespace {

using ddpm::DType;
using ddpm::Shape;
using ddpm::Tensor;

constexpr uint64_t kSeed = 20151205;  // scripts/pin_inception_fixtures.py: SEED
const std::string kFixtures = std::string(DDPM_SOURCE_DIR) + "/tests/fixtures/inception/";

// [low, high) of each tensor's uniform draw: pin_inception_fixtures.py's weight_range().
std::pair<double, double> weight_range(const std::string& name, const Shape& engine_shape) {
  const auto ends = [&](const std::string& tail) {
    return name.size() >= tail.size() && name.compare(name.size() - tail.size(), tail.size(), tail) == 0;
  };
  if (ends(".conv.weight")) {
    const double a = std::sqrt(6.0 / static_cast<double>(engine_shape[1] * engine_shape[2] * engine_shape[3]));
    return {-a, a};
  }
  if (ends(".bn.weight")) return {0.8, 1.2};
  if (ends(".bn.bias") || ends(".bn.running_mean")) return {-0.2, 0.2};
  if (ends(".bn.running_var")) return {0.5, 1.5};
  if (name == "fc.weight") {
    const double a = std::sqrt(3.0 / static_cast<double>(engine_shape[1]));
    return {-a, a};
  }
  if (name == "fc.bias") return {-0.1, 0.1};
  FAIL("no range for " << name);
  return {0, 0};
}

// The converted file's tensors for the random weights: tensor k of the names in sorted order is
// stream k, drawn in PyTorch's element order ([Cout, Cin, KH, KW] for convolutions) and then
// stored as [Cout, KH, KW, Cin], like the converter.
ddpm::NamedTensors random_converted_weights() {
  auto expected = ddpm::inception_expected_tensors();
  std::sort(expected.begin(), expected.end());
  ddpm::NamedTensors file;
  for (size_t stream = 0; stream < expected.size(); ++stream) {
    const auto& [name, shape] = expected[stream];
    const auto [low, high] = weight_range(name, shape);
    const int64_t count = ddpm::numel(shape);
    std::vector<float> torch_order(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i)
      torch_order[static_cast<size_t>(i)] = static_cast<float>(
          low + (high - low) * static_cast<double>(ddpm::philox::uniform(kSeed, stream, static_cast<uint64_t>(i))));
    std::vector<float> values = torch_order;
    if (shape.size() == 4) {  // [Cout, Cin, KH, KW] -> [Cout, KH, KW, Cin]
      const int64_t cout = shape[0], kh = shape[1], kw = shape[2], cin = shape[3];
      for (int64_t o = 0; o < cout; ++o)
        for (int64_t c = 0; c < cin; ++c)
          for (int64_t y = 0; y < kh; ++y)
            for (int64_t x = 0; x < kw; ++x)
              values[static_cast<size_t>(((o * kh + y) * kw + x) * cin + c)] =
                  torch_order[static_cast<size_t>(((o * cin + c) * kh + y) * kw + x)];
    }
    file.tensors.push_back({name, Tensor::from_vector(values, shape)});
  }
  return file;
}

// pin_inception_fixtures.py's checksum: sum_i x_i * (i % 7 + 1) in float64.
double checksum(const Tensor& t) {
  const std::vector<double> v = t.to_vector();
  double sum = 0;
  for (size_t i = 0; i < v.size(); ++i) sum += v[i] * static_cast<double>(i % 7 + 1);
  return sum;
}

const ddpm::NamedTensors& weights() {
  static const ddpm::NamedTensors file = random_converted_weights();
  return file;
}

// max |a - b| / max |b|
double normalized_error(const std::vector<double>& a, const std::vector<double>& b) {
  double err = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    err = std::max(err, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return err / scale;
}

}  // namespace

TEST_CASE("Inception-v3 random weights match the converter's output tensor by tensor", "[inception]") {
  std::ifstream in(kFixtures + "converted.json");
  REQUIRE(in.good());
  const nlohmann::json pinned = nlohmann::json::parse(in);
  const auto& tensors = pinned.at("tensors");
  REQUIRE(tensors.size() == weights().tensors.size());
  for (const auto& [name, t] : weights().tensors) {
    INFO(name);
    REQUIRE(tensors.contains(name));  // the architecture's names are pytorch-fid's
    REQUIRE(tensors.at(name).at("shape").get<Shape>() == t.shape());
    const double expected = tensors.at(name).at("checksum").get<double>();
    REQUIRE(checksum(t) == Approx(expected).epsilon(1e-9).margin(1e-9));
  }
}

TEST_CASE("Inception-v3 matches pytorch-fid's features and logits on random weights", "[inception]") {
  const ddpm::NamedTensors expected = ddpm::load_safetensors(kFixtures + "expected.safetensors");
  ddpm::test::TempDir dir;
  const std::string path = dir / "inception.safetensors";
  const std::string source_sha = expected.metadata.at("source_sha256");
  ddpm::save_safetensors(path, weights().tensors, {{"format", "ddpm-inception-v3-fid/1"}, {"source_sha256", source_sha}});
  auto net = ddpm::open_inception_network(path, ddpm::Device::CPU);
  REQUIRE(net->name() == "inception-v3-fid sha256:" + source_sha);
  REQUIRE(net->feature_dim() == 2048);
  REQUIRE(net->has_logits());

  for (const char* c : {"case0", "case1", "case2"}) {
    const std::string key(c);
    const Tensor images = expected.at(key + ".images");
    INFO(key << " images " << ddpm::shape_str(images.shape()));
    const auto start = std::chrono::steady_clock::now();
    const ddpm::FeatureBatch out = net->run(images);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    WARN(key << ": " << seconds / static_cast<double>(images.dim(0)) << " s per image (CPU forward)");
    const Tensor& features = expected.at(key + ".features");
    const Tensor& logits = expected.at(key + ".logits");
    REQUIRE(out.features.shape() == features.shape());
    REQUIRE(out.logits.shape() == logits.shape());
    // 1e-4 relative to the largest element, and each element within 1e-4 relative + that floor.
    const double fe = normalized_error(out.features.to_vector(), features.to_vector());
    const double le = normalized_error(out.logits.to_vector(), logits.to_vector());
    WARN(key << ": normalized error features " << fe << ", logits " << le);
    REQUIRE(fe <= 1e-4);
    REQUIRE(le <= 1e-4);
  }
}

TEST_CASE("Inception-v3 refuses a file that does not match the architecture, naming the mismatch", "[inception]") {
  using Catch::Contains;
  const auto variant = [](auto&& change) {
    ddpm::NamedTensors file;
    for (const auto& [name, t] : weights().tensors) file.tensors.push_back({name, t});
    change(file.tensors);
    return file;
  };
  const auto open = [](const ddpm::NamedTensors& f) { ddpm::InceptionV3 net(f, "test.safetensors", ddpm::Device::CPU); };
  const auto find = [](auto& tensors, const std::string& name) {
    return std::find_if(tensors.begin(), tensors.end(), [&](const auto& p) { return p.first == name; });
  };

  auto missing = variant([&](auto& t) { t.erase(find(t, "Mixed_6c.branch7x7_2.bn.running_var")); });
  REQUIRE_THROWS_WITH(open(missing), Contains("test.safetensors") && Contains("Mixed_6c.branch7x7_2.bn.running_var") &&
                                         Contains("no tensor") && Contains("convert_inception.py"));

  auto reshaped = variant([&](auto& t) {
    find(t, "Mixed_6c.branch7x7_2.conv.weight")->second = Tensor::zeros({160, 7, 1, 160});
  });
  REQUIRE_THROWS_WITH(open(reshaped), Contains("Mixed_6c.branch7x7_2.conv.weight") && Contains("[160, 7, 1, 160]") &&
                                          Contains("[160, 1, 7, 160]") && Contains("convert_inception.py"));

  auto retyped = variant([&](auto& t) { find(t, "fc.bias")->second = Tensor::zeros({1008}, DType::F64); });
  REQUIRE_THROWS_WITH(open(retyped), Contains("fc.bias") && Contains("float64") && Contains("float32"));

  auto extra = variant([&](auto& t) { t.push_back({"AuxLogits.fc.weight", Tensor::zeros({1000, 768})}); });
  REQUIRE_THROWS_WITH(open(extra), Contains("AuxLogits.fc.weight") && Contains("does not have"));
}

TEST_CASE("open_inception_network refuses a file without the converter's source hash", "[inception]") {
  ddpm::test::TempDir dir;
  const std::string path = dir / "no_hash.safetensors";
  ddpm::save_safetensors(path, {{"fc.bias", Tensor::zeros({1008})}}, {});  // checked before the tensors
  REQUIRE_THROWS_WITH(ddpm::open_inception_network(path, ddpm::Device::CPU),
                      Catch::Contains("source_sha256") && Catch::Contains("convert_inception.py"));
}
