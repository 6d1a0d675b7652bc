// `ddpm eval --metrics accuracy`: the share of a conditional run's samples that the feature
// network's logits assign to the class each was drawn for, overall and per class, against the
// same share computed here from the images the network saw; and its refusals.
#include <catch2/catch.hpp>
#include <filesystem>

#include "tests/cli_runner.h"
#include "tools/quality_eval.h"

using namespace ddpm;
using namespace ddpm::test;
using Catch::Contains;
namespace fs = std::filesystem;

namespace {
// features [N, 2] = (p, p^2) of the single pixel p; logits [N, classes] favour class 0 ("bright")
// when p > 0.1, else class 1; none when `logits` is false.
class PixelSignNetwork : public FeatureNetwork {
 public:
  PixelSignNetwork(int64_t classes, bool logits) : classes_(classes), logits_(logits) {}
  std::string name() const override { return "test-pixel-sign"; }
  int64_t feature_dim() const override { return 2; }
  bool has_logits() const override { return logits_; }
  FeatureBatch run(const Tensor& images) override {
    const Tensor x = images.to(Device::CPU);
    const int64_t n = x.dim(0);
    FeatureBatch out{Tensor::empty({n, 2}), logits_ ? Tensor::zeros({n, classes_}) : Tensor()};
    for (int64_t i = 0; i < n; ++i) {
      const float p = x.data<float>()[i];
      pixels.push_back(p);
      out.features.data<float>()[2 * i] = p;
      out.features.data<float>()[2 * i + 1] = p * p;
      if (logits_) out.logits.data<float>()[i * classes_ + (p > 0.1f ? 0 : 1)] = 1;
    }
    return out;
  }
  std::vector<float> pixels;  // every image seen, in order (reference first, then the samples)

 private:
  int64_t classes_;
  bool logits_;
};

QualityOptions accuracy_options(const std::string& cache, int64_t count, const std::string& source = "samples") {
  RunArgs args;
  args.features = "test:stand-in";
  args.count = count;
  args.cache = cache;
  args.source = source;
  return quality_options(args, parse_metric_list("fid,accuracy"), 64);
}
}  // namespace

TEST_CASE("metrics eval: accuracy is the share of samples classified as their requested class",
          "[metrics][eval][conditioning]") {
  TempDir dir;
  write_two_class_folder(dir / "data");
  const std::string run = dir / "run";
  const Outcome train = run_ddpm({"train", "--out", run, "--set", "data.dataset=folder", "--set",
                                  "data.path=" + (dir / "data"), "--set", "data.channels=1", "--set",
                                  "model.num_classes=2", "--set", "model.type=mlp", "--set", "model.mlp_hidden=32",
                                  "--set", "diffusion.steps=20", "--set", "train.batch_size=8", "--set",
                                  "train.lr=0.003", "--set", "train.ema_decay=0", "--set", "train.steps=200",
                                  "--set", "train.log_every=100", "--set", "train.checkpoint_every=1000", "--set",
                                  "train.sample_steps=5", "--set", "sample.count=4"});
  INFO(train.err);
  REQUIRE(train.status == 0);

  for (const double guidance : {0.0, 3.0}) {
    TrainedModel m = load_trained_model(run, {"sample.guidance=" + std::to_string(guidance)}, true);
    PixelSignNetwork net(2, true);
    const int64_t count = 41;  // class "all": 21 bright then 20 dark (equal shares in blocks, cut to 41)
    const Json report = quality_eval(m, net, accuracy_options(dir / "cache", count));
    const std::vector<float> samples(net.pixels.end() - count, net.pixels.end());
    int64_t hits[2] = {0, 0};
    for (int64_t i = 0; i < count; ++i) {
      const int label = i < 21 ? 0 : 1, predicted = samples[i] > 0.1f ? 0 : 1;
      hits[label] += predicted == label;
    }
    const Json& metrics = report["metrics"];
    INFO("guidance " << guidance << ": " << metrics.dump());
    REQUIRE(metrics["accuracy"].get<double>() == Approx((hits[0] + hits[1]) / 41.0).epsilon(1e-12));
    REQUIRE(metrics["per_class_accuracy"]["bright"]["samples"] == 21);
    REQUIRE(metrics["per_class_accuracy"]["dark"]["samples"] == 20);
    REQUIRE(metrics["per_class_accuracy"]["bright"]["accuracy"].get<double>() == Approx(hits[0] / 21.0));
    REQUIRE(metrics["per_class_accuracy"]["dark"]["accuracy"].get<double>() == Approx(hits[1] / 20.0));
    // 200 steps separate two one-pixel classes: most samples land on their class's side.
    REQUIRE(metrics["accuracy"].get<double>() > 0.8);
    REQUIRE(report["sampler"]["guidance"].get<double>() == guidance);
  }

  // Refusals: another source, a network without logits, logits over another class count.
  TrainedModel m = load_trained_model(run, {}, true);
  PixelSignNetwork plain(2, false), three(3, true);
  REQUIRE_THROWS_WITH(quality_eval(m, plain, accuracy_options(dir / "cache", 8)), Contains("class logits"));
  REQUIRE_THROWS_WITH(quality_eval(m, three, accuracy_options(dir / "cache", 8)),
                      Contains("logits over the run's 2 classes (bright, dark)") && Contains("3 per image"));
  PixelSignNetwork net(2, true);
  REQUIRE_THROWS_WITH(quality_eval(m, net, accuracy_options(dir / "cache", 8, "train")),
                      Contains("needs --source samples"));
  TrainedModel unconditional_class = load_trained_model(run, {"sample.class=\"none\""}, true);
  REQUIRE_THROWS_WITH(quality_eval(unconditional_class, net, accuracy_options(dir / "cache", 8)),
                      Contains("not the unconditional label"));
}
