// kill -9 at random moments around checkpoints: whatever instant the trainer dies at, the run
// directory holds a complete checkpoint, and resuming from it reproduces the uninterrupted run's
// losses, gradient norms and final weights exactly.
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "engine/io/safetensors.h"
#include "tests/cli_runner.h"

using namespace ddpm::test;
namespace fs = std::filesystem;

namespace {
constexpr int kSteps = 40;

// The 2-D toy run with a checkpoint after every step, so most instants fall inside or between
// checkpoint writes (safetensors, checkpoint.json, removal of the previous weights).
std::vector<std::string> toy_run(const std::string& out) {
  return {"train", "--out", out, "--set", "data.dataset=toy", "--set", "data.toy_size=512", "--set", "model.type=mlp",
          "--set", "model.mlp_hidden=32", "--set", "diffusion.steps=50", "--set", "train.batch_size=16", "--set",
          "train.steps=" + std::to_string(kSteps), "--set", "train.log_every=1", "--set", "train.checkpoint_every=1",
          "--set", "train.sample_steps=5", "--set", "sample.count=16"};
}

void require_same_run(const std::string& run, const std::string& reference) {
  const auto got = metrics_of(run), want = metrics_of(reference);
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    INFO("step " << i + 1);
    REQUIRE(got[i]["loss"].get<double>() == want[i]["loss"].get<double>());
    REQUIRE(got[i]["grad_norm"].get<double>() == want[i]["grad_norm"].get<double>());
  }
  const std::string weights = "/ckpt-000000" + std::to_string(kSteps) + ".safetensors";
  const auto a = ddpm::load_safetensors(run + weights), b = ddpm::load_safetensors(reference + weights);
  REQUIRE(a.tensors.size() == b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) REQUIRE(a.tensors[i].second.to_vector() == b.tensors[i].second.to_vector());
}
}  // namespace

TEST_CASE("cli: SIGKILL at 20 random moments around checkpoints always resumes to the uninterrupted run",
          "[cli][resume][kill][slow]") {
  TempDir dir;
  const std::string reference = dir / "reference";
  REQUIRE(run_ddpm(toy_run(reference)).status == 0);
  // Trial k waits until the checkpoint of a random step is committed, then lets a random 0-4 ms
  // pass (a step with its checkpoint write takes a few ms here) and kills the trainer: a random
  // instant among the writes of the safetensors file, checkpoint.json and the old weights' removal.
  // Fixed seed, so a failure can be replayed.
  std::mt19937 random(20261130);
  std::uniform_int_distribution<int> step(1, kSteps - 8);
  std::uniform_real_distribution<double> extra(0.0, 0.004);
  auto committed_step = [](const std::string& run) {
    const nlohmann::json state = nlohmann::json::parse(read_text(run + "/checkpoint.json"), nullptr, false);
    return state.is_object() && state.contains("step") ? state["step"].get<int>() : 0;
  };
  int killed_mid_run = 0;
  for (int trial = 0; trial < 20; ++trial) {
    const std::string run = dir / ("run" + std::to_string(trial));
    const int pid = start_ddpm(toy_run(run), dir / "capture");
    const int target = step(random);
    while (kill(pid, 0) == 0 && (!fs::exists(run + "/checkpoint.json") || committed_step(run) < target))
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    std::this_thread::sleep_for(std::chrono::duration<double>(extra(random)));
    kill(pid, SIGKILL);
    const Outcome killed = finish_ddpm(pid, dir / "capture");
    INFO("trial " << trial << " (after step " << target << "): the trainer ended with status " << killed.status << "\n"
                  << killed.err);
    // The checkpoint the kill left must be complete and loadable, whatever instant it hit.
    const nlohmann::json state = nlohmann::json::parse(read_text(run + "/checkpoint.json"));
    REQUIRE(ddpm::load_safetensors(run + "/" + state["weights"].get<std::string>()).tensors.size() > 0);
    if (killed.status == 128 + SIGKILL && state["step"].get<int>() < kSteps) {
      ++killed_mid_run;
      const Outcome resumed = run_ddpm({"train", "--resume", run});
      INFO(resumed.err);
      REQUIRE(resumed.status == 0);
    } else {
      // It had finished training (the kill hit the final sample grid, or nothing at all).
      REQUIRE((killed.status == 0 || killed.status == 128 + SIGKILL));
    }
    require_same_run(run, reference);
    fs::remove_all(run);
  }
  // The test means something only if the trials really killed a running trainer.
  REQUIRE(killed_mid_run >= 18);
}
