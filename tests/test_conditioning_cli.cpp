// Class-conditional training and guided sampling through the real ddpm program: a folder of two
// classes (bright and dark one-pixel images, so the MLP denoiser learns them in a second) trained
// briefly, then sampled by class with and without guidance and evaluated per class; a conditional
// UNet on Fashion-MNIST resumed exactly with label dropout; the refusals.
#include <catch2/catch.hpp>
#include <filesystem>
#include <numeric>

#include "engine/io/safetensors.h"
#include "tests/cli_runner.h"

using namespace ddpm::test;
using Catch::Contains;
using Json = nlohmann::json;
namespace fs = std::filesystem;

namespace {
std::vector<std::string> folder_run(const std::string& data, const std::string& out, int steps) {
  return {"train", "--out", out, "--set", "data.dataset=folder", "--set", "data.path=" + data, "--set",
          "data.channels=1", "--set", "model.num_classes=2", "--set", "model.type=mlp", "--set",
          "model.mlp_hidden=64", "--set", "diffusion.steps=100", "--set", "train.batch_size=16", "--set",
          "train.lr=0.003", "--set", "train.warmup=10", "--set", "train.ema_decay=0.9", "--set",
          "train.label_dropout=0.2", "--set", "train.steps=" + std::to_string(steps), "--set", "train.log_every=10",
          "--set", "train.checkpoint_every=1000", "--set", "train.sample_steps=5", "--set", "sample.count=4"};
}

double mean_of(const std::string& raw) {
  const std::vector<double> v = ddpm::load_safetensors(raw).at("samples").to_vector();
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}
}  // namespace

TEST_CASE("cli: a class-conditional run trains, samples by class with guidance, and evaluates per class",
          "[cli][conditioning]") {
  TempDir dir;
  write_two_class_folder(dir / "data");
  const std::string run = dir / "run";
  Outcome train = run_ddpm(folder_run(dir / "data", run, 600));
  INFO(train.err);
  REQUIRE(train.status == 0);
  // The class names: in classes.json and in the checkpoint, labels in sorted folder order.
  const Json classes = Json::parse(read_text(run + "/classes.json"));
  REQUIRE(classes["classes"] == Json::array({"bright", "dark"}));
  REQUIRE(classes["null_label"] == 2);
  REQUIRE(Json::parse(read_text(run + "/checkpoint.json"))["classes"] == classes["classes"]);

  auto sample = [&](std::vector<std::string> extra, const std::string& raw) {
    std::vector<std::string> args{"sample", "--run", run, "--set", "sample.method=ddim", "--set", "sample.steps=20",
                                  "--set", "sample.count=200", "--out", dir / "s.png", "--raw", raw};
    args.insert(args.end(), extra.begin(), extra.end());
    Outcome o = run_ddpm(args);
    INFO(o.err);
    REQUIRE(o.status == 0);
    return mean_of(raw);
  };
  const double bright = sample({"--class", "bright"}, dir / "bright.safetensors");
  const double dark = sample({"--class", "1"}, dir / "dark.safetensors");
  const double dark_guided = sample({"--class", "dark", "--guidance", "3"}, dir / "dark3.safetensors");
  std::printf("conditional folder run: mean pixel bright %.3f, dark %.3f, dark guided (w=3) %.3f (data +0.70, -0.67)\n",
              bright, dark, dark_guided);
  // The class reaches the samples: each class's samples sit on its side, and guidance pushes the
  // dark ones further from the bright class.
  REQUIRE(bright > 0.4);
  REQUIRE(dark < -0.4);
  REQUIRE(dark_guided < dark - 0.05);
  // All classes: one row per class, 200 / 2 each.
  sample({"--class", "all"}, dir / "all.safetensors");
  const ddpm::Tensor all = ddpm::load_safetensors(dir / "all.safetensors").at("samples");
  REQUIRE(all.shape() == ddpm::Shape{200, 1, 1, 1});
  const std::vector<double> v = all.to_vector();
  REQUIRE(std::accumulate(v.begin(), v.begin() + 100, 0.0) > 40);  // row 0: bright
  REQUIRE(std::accumulate(v.begin() + 100, v.end(), 0.0) < -40);   // row 1: dark

  Outcome eval = run_ddpm({"eval", "--run", run, "--set", "eval.count=24", "--out", dir / "e.json"});
  INFO(eval.err);
  REQUIRE(eval.status == 0);
  const Json report = Json::parse(read_text(dir / "e.json"));
  REQUIRE(report["per_class"].size() == 2);
  const double b = report["per_class"]["bright"]["total_bpd"], d = report["per_class"]["dark"]["total_bpd"];
  REQUIRE(report["per_class"]["bright"]["images"] == 12);
  REQUIRE(report["total_bpd"].get<double>() == Approx((b + d) / 2).epsilon(1e-9));

  // Refusals: an unknown class names the valid ones; a class count that does not match the data.
  Outcome unknown = run_ddpm({"sample", "--run", run, "--class", "grey"});
  REQUIRE(unknown.status == 1);
  REQUIRE_THAT(unknown.err, Contains("unknown class \"grey\"") && Contains("0 bright, 1 dark"));
  std::vector<std::string> three = folder_run(dir / "data", dir / "three", 1);
  three.insert(three.end(), {"--set", "model.num_classes=3"});
  Outcome mismatch = run_ddpm(three);
  REQUIRE(mismatch.status == 1);
  REQUIRE_THAT(mismatch.err, Contains("num_classes is 3") && Contains("2 classes") && Contains("0 bright, 1 dark"));
}

TEST_CASE("cli: conditioning refused on unconditional runs and unlabelled data", "[cli][conditioning][errors]") {
  TempDir dir;
  const std::vector<std::string> toy{"train", "--out", dir / "toy", "--set", "data.dataset=toy", "--set",
                                     "data.toy_size=64", "--set", "model.type=mlp", "--set", "model.mlp_hidden=8",
                                     "--set", "diffusion.steps=10", "--set", "train.batch_size=8", "--set",
                                     "train.steps=1", "--set", "train.sample_steps=2", "--set", "sample.count=4"};
  REQUIRE(run_ddpm(toy).status == 0);
  Outcome by_class = run_ddpm({"sample", "--run", dir / "toy", "--class", "3"});
  REQUIRE(by_class.status == 1);
  REQUIRE_THAT(by_class.err, Contains("--class 3") && Contains("unconditional"));
  Outcome guided = run_ddpm({"sample", "--run", dir / "toy", "--guidance", "2"});
  REQUIRE(guided.status == 1);
  REQUIRE_THAT(guided.err, Contains("--guidance") && Contains("unconditional"));
  std::vector<std::string> conditional_toy = toy;
  conditional_toy[2] = dir / "toy2";
  conditional_toy.insert(conditional_toy.end(), {"--set", "model.num_classes=2"});
  Outcome unlabelled = run_ddpm(conditional_toy);
  REQUIRE(unlabelled.status == 1);
  REQUIRE_THAT(unlabelled.err, Contains("\"toy\" has no labels"));
}

TEST_CASE("cli: a conditional run with label dropout resumes exactly", "[cli][conditioning][resume]") {
  TempDir dir;
  const std::vector<std::string> common{"--set", "data.limit=40", "--set", "model.num_classes=10", "--set",
                                        "model.base_channels=8", "--set", "model.groups=4", "--set",
                                        "model.channel_mult=[1,2]", "--set", "model.attention_resolutions=[]", "--set",
                                        "diffusion.steps=50", "--set", "train.batch_size=6", "--set",
                                        "train.label_dropout=0.5", "--set", "train.log_every=1", "--set",
                                        "train.checkpoint_every=100", "--set", "sample.count=1", "--set",
                                        "train.sample_steps=2"};
  auto train = [&](const std::string& run, int steps) {
    std::vector<std::string> args{"train", "--out", run, "--set", "train.steps=" + std::to_string(steps)};
    args.insert(args.end(), common.begin(), common.end());
    return run_ddpm(args);
  };
  REQUIRE(train(dir / "whole", 6).status == 0);
  REQUIRE(train(dir / "split", 3).status == 0);
  Outcome resumed = run_ddpm({"train", "--resume", dir / "split", "--set", "train.steps=6"});
  INFO(resumed.err);
  REQUIRE(resumed.status == 0);
  const auto whole = metrics_of(dir / "whole"), split = metrics_of(dir / "split");
  REQUIRE(whole.size() == 6);
  REQUIRE(split.size() == 6);
  for (size_t i = 0; i < 6; ++i) REQUIRE(split[i]["loss"].get<double>() == whole[i]["loss"].get<double>());
  // Fashion-MNIST's names are recorded.
  REQUIRE(Json::parse(read_text(dir / "whole/classes.json"))["classes"][0] == "T-shirt/top");
}

TEST_CASE("cli: the shipped conditional config builds a UNet with a ten-class embedding", "[cli][conditioning]") {
  Outcome o = run_ddpm({"info", "--config", std::string(DDPM_SOURCE_DIR) + "/configs/fashion_mnist_conditional.json"});
  INFO(o.err);
  REQUIRE(o.status == 0);
  // 4 * 32 time-embedding channels times (10 classes + "no class") on top of the quick start's UNet.
  REQUIRE_THAT(o.out, Contains("class_emb                            1408") && Contains("1114209 parameters"));
  const Json config = Json::parse(read_text(std::string(DDPM_SOURCE_DIR) + "/configs/fashion_mnist_conditional.json"));
  REQUIRE(config["model"]["num_classes"] == 10);
  REQUIRE(config["model"]["groups"] == 8);  // 4 channels per group at 32 channels: the embedding survives GroupNorm
}
