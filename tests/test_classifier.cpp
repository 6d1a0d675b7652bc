// The classifier end to end: the model's shapes, `ddpm classifier train` and `eval` on a small
// labelled IDX set written here (two classes that differ in mean brightness, under noise), the
// feature network open_classifier_network, and the refusals (no labels, wrong image size, missing
// run, a DDPM run).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "engine/io/safetensors.h"
#include "engine/io/sha256.h"
#include "engine/nn/parameters.h"
#include "models/classifier.h"
#include "tests/cli_runner.h"
#include "tools/data/idx.h"
#include "tools/feature_networks.h"

using namespace ddpm;
using test::Outcome;
using test::run_ddpm;
using Catch::Contains;
using Json = nlohmann::json;

namespace {
void put_u32(std::string& b, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<char>(v >> shift));
}

// n images of size x size: label i % 2; class 0 has pixels around 70, class 1 around 185, each
// pixel off by up to +-60 (a fixed LCG), so single pixels overlap between the classes.
void write_brightness_idx(const std::string& dir, const std::string& prefix, uint32_t n, uint32_t size,
                          uint32_t seed) {
  std::string images, labels;
  put_u32(images, 0x00000803), put_u32(images, n), put_u32(images, size), put_u32(images, size);
  put_u32(labels, 0x00000801), put_u32(labels, n);
  uint32_t state = seed;
  for (uint32_t i = 0; i < n; ++i) {
    const int label = static_cast<int>(i % 2);
    labels.push_back(static_cast<char>(label));
    for (uint32_t p = 0; p < size * size; ++p) {
      state = state * 1664525u + 1013904223u;
      const int noise = static_cast<int>((state >> 16) % 121) - 60;
      images.push_back(static_cast<char>(static_cast<uint8_t>((label ? 185 : 70) + noise)));
    }
  }
  std::ofstream(dir + "/" + prefix + "-images-idx3-ubyte", std::ios::binary) << images;
  std::ofstream(dir + "/" + prefix + "-labels-idx1-ubyte", std::ios::binary) << labels;
}

// A tiny classifier on the brightness set: two stages of 8 and 16 channels.
std::vector<std::string> tiny_run(const std::string& data_dir, const std::string& out) {
  return {"classifier", "train", "--out", out, "--set", "data.dataset=mnist", "--set", "data.path=" + data_dir,
          "--set", "classifier.channels=[8,16]", "--set", "classifier.groups=4", "--set", "train.steps=40", "--set",
          "train.batch_size=32", "--set", "train.lr=0.01", "--set", "train.warmup=5", "--set", "train.log_every=10",
          "--set", "train.device=cpu"};
}
}  // namespace

TEST_CASE("classifier: shapes through the stages, parameter names, bad configurations", "[classifier]") {
  ClassifierConfig c;  // 16, 32, 64 channels, 10 classes
  Classifier model(c);
  ParameterSet params(model, 0);
  params.find("stages.1.downsample.weight");
  params.find("stages.2.blocks.0.conv2.weight");
  params.find("head.weight");
  const ClassifierOutput out = model.forward(Tensor::zeros({3, 28, 28, 1}));
  REQUIRE(out.features.shape() == Shape{3, 64});
  REQUIRE(out.logits.shape() == Shape{3, 10});
  REQUIRE(model.feature_dim() == 64);
  REQUIRE_THROWS_WITH(model.forward(Tensor::zeros({3, 28, 28, 3})), Contains("[N, H, W, 1]") && Contains("[3, 28, 28, 3]"));
  ClassifierConfig bad = c;
  bad.groups = 5;
  REQUIRE_THROWS_WITH(Classifier(bad), Contains("16 channels") && Contains("5") && Contains("classifier.groups"));
}

TEST_CASE("classifier: train, eval and the feature network agree on a small labelled set", "[classifier][cli]") {
  test::TempDir dir;
  const std::string data = dir / "data", run = dir / "run";
  std::filesystem::create_directories(data);
  write_brightness_idx(data, "train", 256, 8, 1);
  write_brightness_idx(data, "t10k", 64, 8, 2);

  Outcome train = run_ddpm(tiny_run(data, run));
  INFO(train.err);
  REQUIRE(train.status == 0);
  REQUIRE_THAT(train.err, Contains("test accuracy"));
  const std::vector<Json> metrics = test::metrics_of(run);
  REQUIRE(metrics.size() == 4);
  REQUIRE(metrics.back()["loss"].get<double>() < metrics.front()["loss"].get<double>());
  const Json trained = Json::parse(test::read_text(dir / "run/eval_test.json"));
  REQUIRE(trained["images"] == 64);
  REQUIRE(trained["accuracy"].get<double>() >= 0.95);

  // eval prints and writes the accuracy it computes.
  Outcome eval = run_ddpm({"classifier", "eval", "--run", run, "--out", dir / "eval.json"});
  INFO(eval.err);
  REQUIRE(eval.status == 0);
  const Json report = Json::parse(test::read_text(dir / "eval.json"));
  REQUIRE(report["split"] == "test");
  REQUIRE(report["correct"] == trained["correct"]);
  char line[64];
  std::snprintf(line, sizeof line, "test accuracy %.2f%%", 100.0 * report["accuracy"].get<double>());
  REQUIRE_THAT(eval.out, Contains(line));
  Outcome on_train = run_ddpm({"classifier", "eval", "--run", run, "--split", "train"});
  REQUIRE(on_train.status == 0);
  REQUIRE(Json::parse(test::read_text(dir / "run/eval_train.json"))["images"] == 256);

  // The feature network: features [N, 16], logits [N, 2] whose argmax gives the eval's count of
  // correct answers per class, logits = head(features), and the checkpoint's SHA-256 as its name.
  std::unique_ptr<FeatureNetwork> net = open_classifier_network(run, Device::CPU);
  const ImageSet test_set = load_idx_dataset(data, "test");
  const FeatureBatch batch = net->run(test_set.images);
  REQUIRE(net->feature_dim() == 16);
  REQUIRE(net->has_logits());
  REQUIRE(batch.features.shape() == Shape{64, 16});
  REQUIRE(batch.logits.shape() == Shape{64, 2});
  const std::vector<double> f = batch.features.to_vector(), l = batch.logits.to_vector();
  int64_t correct = 0;
  std::vector<int64_t> right(2, 0);
  for (size_t i = 0; i < 64; ++i) {
    const int predicted = l[2 * i + 1] > l[2 * i] ? 1 : 0;
    if (predicted == test_set.labels[i]) ++correct, ++right[static_cast<size_t>(predicted)];
  }
  REQUIRE(correct == report["correct"].get<int64_t>());
  for (int c = 0; c < 2; ++c) REQUIRE(report["per_class_accuracy"][c].get<double>() == Approx(right[c] / 32.0));
  const Json state = Json::parse(test::read_text(dir / "run/checkpoint.json"));
  const std::string weights = dir / ("run/" + state["weights"].get<std::string>());
  const NamedTensors file = load_safetensors(weights);
  const std::vector<double> w = file.at("model.head.weight").to_vector(), b = file.at("model.head.bias").to_vector();
  for (size_t i = 0; i < 64; ++i)
    for (size_t k = 0; k < 2; ++k) {
      double want = b[k];
      for (size_t d = 0; d < 16; ++d) want += w[k * 16 + d] * f[i * 16 + d];
      REQUIRE(l[2 * i + k] == Approx(want).margin(1e-5));
    }
  REQUIRE(net->name() == "classifier sha256:" + sha256_file_hex(weights));
  REQUIRE(net->name().size() == std::string("classifier sha256:").size() + 64);

  // The DDPM commands refuse a classifier run.
  Outcome sample = run_ddpm({"sample", "--run", run});
  REQUIRE(sample.status == 1);
  REQUIRE_THAT(sample.err, Contains("holds a classifier") && Contains("ddpm classifier eval"));

  // Images of another size or channel count are refused, naming both sizes.
  REQUIRE_THROWS_WITH(net->run(Tensor::zeros({2, 10, 10, 1})), Contains("[2, 10, 10, 1]") && Contains("8x8"));
  REQUIRE_THROWS_WITH(net->run(Tensor::zeros({2, 8, 8, 3})), Contains("[2, 8, 8, 3]") && Contains("1 channel"));
}

TEST_CASE("classifier: unlabelled data, missing runs and DDPM runs are refused", "[classifier][cli][errors]") {
  test::TempDir dir;
  Outcome unlabelled = run_ddpm({"classifier", "train", "--out", dir / "toy", "--set", "data.dataset=toy", "--set",
                                 "data.toy_size=64", "--set", "train.steps=1", "--set", "train.warmup=0"});
  REQUIRE(unlabelled.status == 1);
  REQUIRE_THAT(unlabelled.err, Contains("has no labels") && Contains("fashion-mnist"));

  Outcome missing = run_ddpm({"classifier", "eval", "--run", dir / "nowhere"});
  REQUIRE(missing.status == 1);
  REQUIRE_THAT(missing.err, Contains("checkpoint.json' is missing") && Contains("nowhere"));
  REQUIRE_THROWS_WITH(open_classifier_network(dir / "nowhere", Device::CPU), Contains("checkpoint.json' is missing"));

  std::filesystem::create_directories(dir / "ddpm");
  std::ofstream(dir / "ddpm/checkpoint.json") << R"({"step": 1, "weights": "ckpt.safetensors", "config": {}})";
  Outcome ddpm_run = run_ddpm({"classifier", "eval", "--run", dir / "ddpm"});
  REQUIRE(ddpm_run.status == 1);
  REQUIRE_THAT(ddpm_run.err, Contains("holds a DDPM run") && Contains("ddpm classifier train"));

  Outcome no_sub = run_ddpm({"classifier", "--run", dir / "ddpm"});
  REQUIRE(no_sub.status == 2);
  REQUIRE_THAT(no_sub.err, Contains("expected 'train' or 'eval'"));
  Outcome bad_split = run_ddpm({"classifier", "eval", "--run", dir / "ddpm", "--split", "valid"});
  REQUIRE_THAT(bad_split.err, Contains("--split must be"));
  REQUIRE(run_ddpm({"classifier", "--help"}).status == 0);
  REQUIRE_THAT(run_ddpm({"classifier", "--help"}).out, Contains("ddpm classifier train") && Contains("classifier.channels"));
}
