// The ddpm program end to end, and every bad-input case the trainer promises to handle: unknown
// keys, wrong types, a missing dataset, corrupt checkpoints, a NaN loss, SIGINT, exact resume.
#include <catch2/catch.hpp>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "engine/io/safetensors.h"
#include "tests/cli_runner.h"

using namespace ddpm::test;
using Catch::Contains;
using Json = nlohmann::json;
namespace fs = std::filesystem;

namespace {
// A fast run: the 2-D toy data and the MLP.
std::vector<std::string> toy_run(const std::string& out, int steps) {
  return {"train", "--out", out, "--set", "data.dataset=toy", "--set", "data.toy_size=512", "--set", "model.type=mlp",
          "--set", "model.mlp_hidden=32", "--set", "diffusion.steps=50", "--set", "train.batch_size=16", "--set",
          "train.steps=" + std::to_string(steps), "--set", "train.log_every=1", "--set", "train.checkpoint_every=2",
          "--set", "train.sample_steps=5", "--set", "sample.count=16"};
}

std::vector<std::string> with(std::vector<std::string> args, std::initializer_list<std::string> more) {
  args.insert(args.end(), more);
  return args;
}
}  // namespace

TEST_CASE("cli: help, and unknown commands or options", "[cli]") {
  Outcome help = run_ddpm({"--help"});
  REQUIRE(help.status == 0);
  REQUIRE_THAT(help.out, Contains("train") && Contains("sample") && Contains("eval") && Contains("info"));
  for (const char* command : {"train", "sample", "eval", "info"}) {
    Outcome o = run_ddpm({command, "--help"});
    REQUIRE(o.status == 0);
    REQUIRE_THAT(o.out, Contains(std::string("ddpm ") + command));
  }
  REQUIRE_THAT(run_ddpm({"train", "--help"}).out, Contains("train.lr = "));
  REQUIRE(run_ddpm({"trian"}).status == 2);
  Outcome bad = run_ddpm({"info", "--frobnicate"});
  REQUIRE(bad.status == 1);
  REQUIRE_THAT(bad.err, Contains("unknown option '--frobnicate'"));
}

TEST_CASE("cli: unknown config keys list the valid ones; wrong types name the expected type", "[cli][errors]") {
  Outcome unknown = run_ddpm({"info", "--set", "train.learning_rate=0.1"});
  REQUIRE(unknown.status == 1);
  REQUIRE_THAT(unknown.err, Contains("unknown key 'train.learning_rate'") && Contains("lr") && Contains("batch_size"));
  Outcome section = run_ddpm({"info", "--set", "trainer.lr=0.1"});
  REQUIRE_THAT(section.err, Contains("unknown section 'trainer'") && Contains("diffusion"));
  Outcome type = run_ddpm({"info", "--set", "train.steps=many"});
  REQUIRE(type.status == 1);
  REQUIRE_THAT(type.err, Contains("'train.steps' must be an integer") && Contains("\"many\""));
  Outcome list = run_ddpm({"info", "--set", "model.channel_mult=[1,2.5]"});
  REQUIRE_THAT(list.err, Contains("'model.channel_mult' must be a list of integers"));
  TempDir dir;
  std::ofstream(dir / "bad.json") << R"({"train": {"steps": 10, "bogus": 1}})";
  Outcome file = run_ddpm({"info", "--config", dir / "bad.json"});
  REQUIRE_THAT(file.err, Contains("unknown key 'train.bogus'"));
  std::ofstream(dir / "broken.json") << R"({"train": {"steps": 10,})";
  REQUIRE_THAT(run_ddpm({"info", "--config", dir / "broken.json"}).err, Contains("not valid JSON"));
  REQUIRE_THAT(run_ddpm({"info", "--config", dir / "missing.json"}).err, Contains("cannot read"));
}

TEST_CASE("cli: a missing dataset names the Debian package to install", "[cli][errors]") {
  TempDir dir;
  Outcome o = run_ddpm({"train", "--out", dir / "run", "--set", "data.path=" + (dir / "nowhere")});
  REQUIRE(o.status == 1);
  REQUIRE_THAT(o.err, Contains(dir / "nowhere") && Contains("apt-get install dataset-fashion-mnist"));
  REQUIRE_FALSE(fs::exists(dir / "run/checkpoint.json"));
  Outcome mnist = run_ddpm({"train", "--out", dir / "run2", "--set", "data.dataset=mnist"});
  REQUIRE_THAT(mnist.err, Contains("MNIST has no Debian package") && Contains("data.path"));
}

TEST_CASE("cli: train, then sample, eval and info on the run", "[cli]") {
  TempDir dir;
  const std::string run = dir / "toy";
  Outcome train = run_ddpm(toy_run(run, 4));
  INFO(train.err);
  REQUIRE(train.status == 0);
  for (const char* f : {"config.json", "checkpoint.json", "metrics.jsonl", "loss_curve.png", "samples.png"})
    REQUIRE(fs::exists(run + "/" + f));
  REQUIRE(metrics_of(run).size() == 4);
  REQUIRE(Json::parse(read_text(run + "/checkpoint.json"))["step"] == 4);
  // A second train into the same directory is refused instead of overwriting it.
  Outcome again = run_ddpm(toy_run(run, 4));
  REQUIRE(again.status == 1);
  REQUIRE_THAT(again.err, Contains("already holds a run") && Contains("--resume"));

  Outcome sample = run_ddpm({"sample", "--run", run, "--set", "sample.method=ddim", "--set", "sample.steps=10", "--set",
                             "sample.count=7", "--out", dir / "s.png", "--raw", dir / "s.safetensors"});
  INFO(sample.err);
  REQUIRE(sample.status == 0);
  REQUIRE(fs::exists(dir / "s.png"));
  const auto raw = ddpm::load_safetensors(dir / "s.safetensors");
  REQUIRE(raw.at("samples").shape() == ddpm::Shape{7, 1, 1, 2});

  // The few-step solvers through the config keys (diffusion/solvers.h; their math: test_samplers_*).
  for (const char* method : {"dpm++2m", "dpm++3m", "heun", "euler_a"}) {
    Outcome o = run_ddpm({"sample", "--run", run, "--set", std::string("sample.method=") + method, "--set",
                          "sample.steps=6", "--set", "sample.s_churn=5", "--set", "sample.count=3", "--out",
                          dir / "m.png", "--raw", dir / "m.safetensors"});
    INFO(method << ": " << o.err);
    REQUIRE(o.status == 0);
    REQUIRE(ddpm::load_safetensors(dir / "m.safetensors").at("samples").shape() == ddpm::Shape{3, 1, 1, 2});
  }
  REQUIRE_THAT(run_ddpm({"sample", "--run", run, "--set", "sample.method=heun"}).err, Contains("needs sample.steps > 0"));

  Outcome eval = run_ddpm({"eval", "--run", run, "--set", "eval.count=8", "--out", dir / "e.json"});
  INFO(eval.err);
  REQUIRE(eval.status == 0);
  const Json report = Json::parse(read_text(dir / "e.json"));
  REQUIRE(report["terms_bpd"].size() == 50);
  double total = report["prior_bpd"].get<double>();
  for (double v : report["terms_bpd"]) total += v;
  REQUIRE(report["total_bpd"].get<double>() == Approx(total).epsilon(1e-9));
  REQUIRE(fs::exists(dir / "e_terms.png"));

  Outcome info = run_ddpm({"info", "--run", run});
  REQUIRE(info.status == 0);
  REQUIRE_THAT(info.out, Contains("checkpoint: step 4") && Contains("parameters"));
}

TEST_CASE("cli: resuming continues exactly: the losses equal the uninterrupted run's", "[cli][resume]") {
  TempDir dir;
  // A small UNet with dropout and attention on Fashion-MNIST, so every source of randomness and
  // every kind of state (weights, EMA, Adam moments and step count, data order) must be restored.
  const std::vector<std::string> unet{"--set", "data.limit=40", "--set", "model.base_channels=8", "--set", "model.groups=4",
                                      "--set", "model.channel_mult=[1,2]", "--set", "model.attention_resolutions=[14]",
                                      "--set", "model.dropout=0.2", "--set", "diffusion.steps=50", "--set",
                                      "diffusion.variance=learned_range", "--set", "diffusion.loss=hybrid", "--set",
                                      "diffusion.timestep_sampler=loss_second_moment", "--set", "train.batch_size=6",
                                      "--set", "train.log_every=1", "--set", "train.checkpoint_every=100", "--set",
                                      "train.warmup=2", "--set", "sample.count=1", "--set", "train.sample_steps=2",
                                      "--set", "data.random_flip=true"};
  auto train = [&](const std::string& run, std::vector<std::string> extra) {
    std::vector<std::string> args{"train", "--out", run};
    args.insert(args.end(), unet.begin(), unet.end());
    args.insert(args.end(), extra.begin(), extra.end());
    return run_ddpm(args);
  };
  // 7 steps at 6 per batch cross the 40-example epoch boundary.
  REQUIRE(train(dir / "whole", {"--set", "train.steps=9"}).status == 0);
  REQUIRE(train(dir / "split", {"--set", "train.steps=4"}).status == 0);
  Outcome resumed = run_ddpm({"train", "--resume", dir / "split", "--set", "train.steps=9"});
  INFO(resumed.err);
  REQUIRE(resumed.status == 0);
  const auto whole = metrics_of(dir / "whole"), split = metrics_of(dir / "split");
  REQUIRE(whole.size() == 9);
  REQUIRE(split.size() == 9);
  for (size_t i = 0; i < 9; ++i) {
    INFO("step " << i + 1);
    REQUIRE(split[i]["loss"].get<double>() == whole[i]["loss"].get<double>());
    REQUIRE(split[i]["grad_norm"].get<double>() == whole[i]["grad_norm"].get<double>());
  }
  // The weights at the end are identical too.
  const auto a = ddpm::load_safetensors(dir / "whole/ckpt-00000009.safetensors");
  const auto b = ddpm::load_safetensors(dir / "split/ckpt-00000009.safetensors");
  REQUIRE(a.tensors.size() == b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) REQUIRE(a.tensors[i].second.to_vector() == b.tensors[i].second.to_vector());
}

TEST_CASE("cli: truncated or corrupt checkpoints are refused with the reason; nothing is overwritten", "[cli][errors]") {
  TempDir dir;
  const std::string run = dir / "toy";
  REQUIRE(run_ddpm(toy_run(run, 2)).status == 0);
  const std::string weights = run + "/ckpt-00000002.safetensors", state = run + "/checkpoint.json";
  const std::string state_before = read_text(state);

  SECTION("truncated weights") {
    fs::resize_file(weights, fs::file_size(weights) / 2);
    const std::string weights_before = read_text(weights);
    Outcome o = run_ddpm({"train", "--resume", run, "--set", "train.steps=4"});
    REQUIRE(o.status == 1);
    REQUIRE_THAT(o.err, Contains("truncated") && Contains(weights));
    REQUIRE_THAT(run_ddpm({"sample", "--run", run}).err, Contains("truncated"));
    REQUIRE(read_text(weights) == weights_before);
    REQUIRE(read_text(state) == state_before);
  }
  SECTION("corrupt state file") {
    std::ofstream(state) << "{\"step\": 2, \"weights\": ";
    Outcome o = run_ddpm({"train", "--resume", run, "--set", "train.steps=4"});
    REQUIRE(o.status == 1);
    REQUIRE_THAT(o.err, Contains("corrupt") && Contains("checkpoint.json"));
    REQUIRE(read_text(state) == "{\"step\": 2, \"weights\": ");
  }
  SECTION("state and weights from different steps") {
    Json j = Json::parse(state_before);
    j["step"] = 7;
    std::ofstream(state) << j.dump();
    REQUIRE_THAT(run_ddpm({"eval", "--run", run}).err, Contains("step 2") && Contains("step 7") && Contains("inconsistent"));
  }
  SECTION("a checkpoint of another model") {
    Outcome o = run_ddpm({"sample", "--run", run, "--set", "model.mlp_hidden=64"});
    REQUIRE(o.status == 1);
    REQUIRE_THAT(o.err, Contains("different model configuration"));
  }
}

TEST_CASE("cli: a NaN loss stops training at that step and keeps the last good checkpoint", "[cli][errors]") {
  TempDir dir;
  const std::string run = dir / "nan";
  // An absurd learning rate without clipping blows the weights up within a few steps.
  Outcome o = run_ddpm(with(toy_run(run, 50), {"--set", "train.lr=1e30", "--set", "train.grad_clip=0", "--set",
                                               "train.warmup=0", "--set", "train.checkpoint_every=1"}));
  REQUIRE(o.status == 1);
  REQUIRE_THAT(o.err, Contains("training stopped") && Contains("last good checkpoint"));
  const Json state = Json::parse(read_text(run + "/checkpoint.json"));
  const int64_t kept = state["step"];
  REQUIRE(kept >= 1);
  REQUIRE_THAT(o.err, Contains("at step " + std::to_string(kept + 1)));
  REQUIRE(fs::exists(run + "/" + state["weights"].get<std::string>()));
}

TEST_CASE("cli: SIGINT saves a checkpoint and exits cleanly with status 130", "[cli][errors]") {
  TempDir dir;
  const std::string run = dir / "interrupted";
  const int pid = start_ddpm(with(toy_run(run, 1000000), {"--set", "train.checkpoint_every=0"}), dir / "capture");
  // Wait until training is under way (a metrics line exists), then interrupt it.
  for (int i = 0; i < 600 && metrics_of(run).empty(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  REQUIRE_FALSE(metrics_of(run).empty());
  kill(pid, SIGINT);
  Outcome o = finish_ddpm(pid, dir / "capture");
  REQUIRE(o.status == 130);
  REQUIRE_THAT(o.err, Contains("interrupted at step") && Contains("--resume " + run));
  const Json state = Json::parse(read_text(run + "/checkpoint.json"));
  REQUIRE(state["step"].get<int64_t>() >= 1);
  REQUIRE(state["step"].get<int64_t>() >= static_cast<int64_t>(metrics_of(run).size()) - 1);
  // And the run resumes from there.
  Outcome resumed = run_ddpm({"train", "--resume", run, "--set", "train.steps=" + std::to_string(state["step"].get<int64_t>() + 2)});
  INFO(resumed.err);
  REQUIRE(resumed.status == 0);
}

TEST_CASE("cli: info describes every shipped config, even one this machine cannot run", "[cli]") {
  Outcome cifar = run_ddpm({"info", "--config", std::string(DDPM_SOURCE_DIR) + "/configs/cifar10_ddpm.json"});
  INFO(cifar.err);
  REQUIRE(cifar.status == 0);
  REQUIRE_THAT(cifar.out, Contains("35746307 parameters") && Contains("fixed_large"));
  for (const char* config : {"quickstart.json", "fashion_mnist.json", "toy_swissroll.json"}) {
    Outcome o = run_ddpm({"info", "--config", std::string(DDPM_SOURCE_DIR) + "/configs/" + config});
    INFO(config << ": " << o.err);
    REQUIRE(o.status == 0);
    REQUIRE_THAT(o.out, Contains("parameters"));
  }
}
