// Data-parallel training under mpirun (Open MPI), on the CPU: N ranks train what one process
// trains with the same global batch and seed, resume works across rank counts, and a failing rank
// ends the job with a clear message instead of leaving the others blocked in a collective.
//
// Tolerance: ranks sum their gradients in a different order than one process sums its batch, so
// parameters agree to float32 summation error, not bit for bit; Adam divides by sqrt(v), which
// magnifies that error where gradients are tiny. After 4 full-rate steps (lr = 5e-4, no warm-up)
// the largest difference over parameters, EMA and Adam moments is 1.5e-7; the tests allow 1e-5,
// lr / 50. Each mistake tried against them moves something by O(lr): dropout masks drawn per
// rank instead of per global row gave 1.7e-3, a missing gradient reduction 4.4e-3, and an
// importance sampler fed only its own rank's losses a different history.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include <nlohmann/json.hpp>

#include "engine/io/safetensors.h"
#include "tests/cli_runner.h"

using namespace ddpm::test;
using Catch::Contains;
using Json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr double kTolerance = 1e-5;

// A small UNet on Fashion-MNIST with everything random switched on: dropout, flips, the hybrid
// loss with learned variances and the importance sampler (whose history the ranks must share).
std::vector<std::string> small_unet_run(const std::string& out, int steps) {
  std::vector<std::string> args{"train", "--config", std::string(DDPM_SOURCE_DIR) + "/configs/quickstart.json"};
  if (!out.empty()) args.insert(args.end(), {"--out", out});
  for (const std::string& s : std::vector<std::string>{
           "model.base_channels=16", "model.channel_mult=[1,2]", "model.groups=8", "model.attention_resolutions=[14]",
        "model.dropout=0.1", "data.random_flip=true", "diffusion.variance=learned_range", "diffusion.loss=hybrid",
        "diffusion.timestep_sampler=loss_second_moment", "train.batch_size=8", "train.log_every=1",
        "train.checkpoint_every=2", "train.warmup=0", "train.sample_every=0", "train.sample_steps=4", "sample.count=4",
        "train.steps=" + std::to_string(steps)})
    args.insert(args.end(), {"--set", s});
  return args;
}

// mpirun -np ranks <ddpm args>. Open MPI refuses root unless told; --oversubscribe lets 2 ranks
// run on a 1-core machine.
std::vector<std::string> mpirun(int ranks, const std::vector<std::string>& ddpm_args) {
  std::vector<std::string> argv{DDPM_MPIEXEC, "--allow-run-as-root", "--oversubscribe", "-np", std::to_string(ranks),
                                DDPM_EXECUTABLE};
  argv.insert(argv.end(), ddpm_args.begin(), ddpm_args.end());
  return argv;
}

Outcome run_ranks(int ranks, const std::vector<std::string>& ddpm_args, const std::string& capture, double seconds = 300) {
  return finish_within(start_program(mpirun(ranks, ddpm_args), capture), capture, seconds);
}

Outcome run_single(const std::vector<std::string>& ddpm_args, const std::string& capture) {
  return finish_ddpm(start_ddpm(ddpm_args, capture), capture);
}

// The weights file that RUN/checkpoint.json commits, checking it is at `step`.
std::string checkpoint_file(const std::string& run, int step) {
  const Json state = Json::parse(read_text(run + "/checkpoint.json"));
  REQUIRE(state["step"].get<int>() == step);
  return run + "/" + state["weights"].get<std::string>();
}

// Largest |a - b| over every tensor of two checkpoints (parameters, EMA, Adam moments).
double max_difference(const std::string& a_path, const std::string& b_path) {
  const auto a = ddpm::load_safetensors(a_path), b = ddpm::load_safetensors(b_path);
  REQUIRE(a.tensors.size() == b.tensors.size());
  double worst = 0;
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    REQUIRE(a.tensors[i].first == b.tensors[i].first);
    const std::vector<double> x = a.tensors[i].second.to_vector(), y = b.tensors[i].second.to_vector();
    REQUIRE(x.size() == y.size());
    for (size_t j = 0; j < x.size(); ++j) worst = std::max(worst, std::abs(x[j] - y[j]));
  }
  return worst;
}

// The importance sampler's loss history, flattened (it must match: the ranks share their losses).
std::vector<double> sampler_history(const std::string& run) {
  const Json state = Json::parse(read_text(run + "/checkpoint.json"));
  std::vector<double> flat;
  for (const Json& step : state.at("timestep_sampler").at("losses"))
    for (const Json& v : step) flat.push_back(v.get<double>());
  return flat;
}

void require_same_training(const std::string& expected, const std::string& got, int step) {
  INFO("run " << got << " against " << expected << " at step " << step);
  const double diff = max_difference(checkpoint_file(expected, step), checkpoint_file(got, step));
  INFO("largest parameter/EMA/moment difference " << diff);
  REQUIRE(diff <= kTolerance);
  const std::vector<Json> a = metrics_of(expected), b = metrics_of(got);
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    REQUIRE(b[i]["loss"].get<double>() == Approx(a[i]["loss"].get<double>()).epsilon(1e-5));
    REQUIRE(b[i]["grad_norm"].get<double>() == Approx(a[i]["grad_norm"].get<double>()).epsilon(1e-5));
  }
  const std::vector<double> ha = sampler_history(expected), hb = sampler_history(got);
  REQUIRE(ha.size() == hb.size());
  REQUIRE_FALSE(ha.empty());
  for (size_t i = 0; i < ha.size(); ++i) REQUIRE(hb[i] == Approx(ha[i]).epsilon(1e-5));
}

// The pid of rank `rank` of a job whose command line mentions `marker`, or 0.
int find_rank_pid(const std::string& marker, int rank) {
  const std::string wanted = "OMPI_COMM_WORLD_RANK=" + std::to_string(rank);
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = read_text(entry.path() / "cmdline"), environ = read_text(entry.path() / "environ");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.find(DDPM_EXECUTABLE) != 0 || cmdline.find(marker) == std::string::npos) continue;
    std::replace(environ.begin(), environ.end(), '\0', '\n');
    if (("\n" + environ).find("\n" + wanted + "\n") != std::string::npos) return std::stoi(name);
  }
  return 0;
}

bool wait_for(const std::function<bool()>& ready, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!ready()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

}  // namespace

TEST_CASE("data parallel: 2 ranks train what 1 process trains with the same global batch and seed", "[mpi]") {
  TempDir dir;
  const Outcome one = run_single(small_unet_run(dir / "one", 4), dir / "one_log");
  INFO(one.err);
  REQUIRE(one.status == 0);
  const Outcome two = run_ranks(2, small_unet_run(dir / "two", 4), dir / "two_log");
  INFO(two.err);
  REQUIRE(two.status == 0);
  REQUIRE_THAT(two.err, Contains("data-parallel: mpi, 2 ranks, 4 examples per rank"));
  require_same_training(dir / "one", dir / "two", 4);
  // Rank 0 alone wrote the run: one progress report, one set of files.
  REQUIRE(metrics_of(dir / "two").size() == 4);
  REQUIRE(fs::exists(dir / "two/samples.png"));
}

TEST_CASE("data parallel: a run resumes with a different number of ranks", "[mpi][slow]") {
  TempDir dir;
  REQUIRE(run_single(small_unet_run(dir / "whole", 4), dir / "whole_log").status == 0);
  // 2 ranks to step 2, then 1 process to step 4; and the other way round.
  REQUIRE(run_ranks(2, small_unet_run(dir / "two_then_one", 2), dir / "a").status == 0);
  Outcome a = run_single({"train", "--resume", dir / "two_then_one", "--set", "train.steps=4"}, dir / "a2");
  INFO(a.err);
  REQUIRE(a.status == 0);
  REQUIRE(run_single(small_unet_run(dir / "one_then_two", 2), dir / "b").status == 0);
  Outcome b = run_ranks(2, {"train", "--resume", dir / "one_then_two", "--set", "train.steps=4"}, dir / "b2");
  INFO(b.err);
  REQUIRE(b.status == 0);
  require_same_training(dir / "whole", dir / "two_then_one", 4);
  require_same_training(dir / "whole", dir / "one_then_two", 4);
}

TEST_CASE("data parallel: a batch the ranks cannot split is refused by every rank, promptly", "[mpi][errors]") {
  TempDir dir;
  std::vector<std::string> args = small_unet_run(dir / "odd", 2);
  args.insert(args.end(), {"--set", "train.batch_size=7"});
  const Outcome o = run_ranks(2, args, dir / "log", 120);
  INFO(o.err);
  REQUIRE(o.status != -1);  // not hung
  REQUIRE(o.status != 0);
  REQUIRE_THAT(o.err, Contains("must be divisible by the 2 ranks, got 7"));
  REQUIRE_FALSE(fs::exists(dir / "odd/checkpoint.json"));
}

TEST_CASE("data parallel: killing one rank ends the others with a clear error, and the checkpoint survives", "[mpi][errors]") {
  TempDir dir;
  const std::string run = dir / "killed";
  std::vector<std::string> args = small_unet_run(run, 1000000);
  args.insert(args.end(), {"--set", "train.checkpoint_every=1"});
  const int pid = start_program(mpirun(2, args), dir / "log");
  const bool started = wait_for([&] { return metrics_of(run).size() >= 2; }, 120);
  const int victim = find_rank_pid(run, 1);
  if (victim > 0) kill(victim, SIGKILL);
  const Outcome o = finish_within(pid, dir / "log", 60);
  INFO(o.err);
  REQUIRE(started);
  REQUIRE(victim > 0);
  REQUIRE(o.status != -1);  // the job ended instead of hanging
  REQUIRE(o.status != 0);
  REQUIRE_THAT(o.err, Contains("ddpm train (rank 0 of 2): stopped by SIGTERM") && Contains("--resume " + run));
  // The last checkpoint it names is whole: a single process resumes from it.
  const int64_t step = Json::parse(read_text(run + "/checkpoint.json"))["step"].get<int64_t>();
  REQUIRE(step >= 1);
  REQUIRE_THAT(o.err, Contains("The last checkpoint (step "));
  const Outcome resumed =
      run_single({"train", "--resume", run, "--set", "train.steps=" + std::to_string(step + 1)}, dir / "resume_log");
  INFO(resumed.err);
  REQUIRE(resumed.status == 0);
}

TEST_CASE("data parallel: SIGUSR1 to mpirun stops every rank at the same step with a checkpoint", "[mpi]") {
  TempDir dir;
  const std::string run = dir / "stopped";
  std::vector<std::string> args = small_unet_run(run, 1000000);
  args.insert(args.end(), {"--set", "train.checkpoint_every=0"});
  const int pid = start_program(mpirun(2, args), dir / "log");
  const bool started = wait_for([&] { return !metrics_of(run).empty(); }, 120);
  kill(pid, SIGUSR1);  // mpirun forwards it to every rank
  const Outcome o = finish_within(pid, dir / "log", 60);
  INFO(o.err);
  REQUIRE(started);
  REQUIRE(o.status == 130);
  REQUIRE_THAT(o.err, Contains("interrupted at step"));
  const int64_t step = Json::parse(read_text(run + "/checkpoint.json"))["step"].get<int64_t>();
  REQUIRE(step >= 1);
  REQUIRE(static_cast<int64_t>(metrics_of(run).size()) == step);
}
