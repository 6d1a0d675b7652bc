// A class-conditional run with label dropout trains the same under mpirun -np 2 as in one process:
// the ranks drop the labels their rows drop in the whole batch (tools/conditioning.h). Only in
// builds with MPI (DDPM_MPIEXEC). Tolerance as in tests/test_data_parallel.cpp: float32 summation
// order only. Measured after 3 steps: 3.2e-7; with the drops addressed by the position in the
// shard instead of in the whole batch (the mistake this guards against): 1.6e-3.
#ifdef DDPM_MPIEXEC
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "engine/io/safetensors.h"
#include "tests/cli_runner.h"

using namespace ddpm::test;
using Json = nlohmann::json;

namespace {
std::vector<std::string> conditional_run(const std::string& out) {
  std::vector<std::string> args{"train", "--out", out};
  for (const char* s :
       {"data.limit=64", "model.num_classes=10", "model.base_channels=8", "model.channel_mult=[1,2]", "model.groups=4",
        "model.attention_resolutions=[]", "model.dropout=0.1", "diffusion.steps=50", "train.batch_size=8",
        "train.label_dropout=0.5", "train.lr=0.0005", "train.warmup=0", "train.steps=3", "train.log_every=1",
        "train.checkpoint_every=100", "train.sample_steps=2", "sample.count=10"})
    args.insert(args.end(), {"--set", s});
  return args;
}

std::string weights_of(const std::string& run) {
  return run + "/" + Json::parse(read_text(run + "/checkpoint.json"))["weights"].get<std::string>();
}
}  // namespace

TEST_CASE("data-parallel: a conditional run with label dropout matches one process", "[conditioning][mpi]") {
  TempDir dir;
  Outcome one = run_ddpm(conditional_run(dir / "one"));
  INFO(one.err);
  REQUIRE(one.status == 0);
  std::vector<std::string> argv{DDPM_MPIEXEC, "--allow-run-as-root", "--oversubscribe", "-np", "2", DDPM_EXECUTABLE};
  for (const std::string& a : conditional_run(dir / "two")) argv.push_back(a);
  Outcome two = finish_within(start_program(argv, dir / "mpi"), dir / "mpi", 300);
  INFO(two.err);
  REQUIRE(two.status == 0);
  const auto a = ddpm::load_safetensors(weights_of(dir / "one")), b = ddpm::load_safetensors(weights_of(dir / "two"));
  REQUIRE(a.tensors.size() == b.tensors.size());
  double worst = 0;
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const std::vector<double> x = a.tensors[i].second.to_vector(), y = b.tensors[i].second.to_vector();
    for (size_t j = 0; j < x.size(); ++j) worst = std::max(worst, std::abs(x[j] - y[j]));
  }
  INFO("largest parameter/EMA/moment difference " << worst);
  REQUIRE(worst <= 1e-5);
  const auto la = metrics_of(dir / "one"), lb = metrics_of(dir / "two");
  REQUIRE(la.size() == 3);
  REQUIRE(lb.size() == 3);
  for (size_t i = 0; i < 3; ++i) REQUIRE(lb[i]["loss"].get<double>() == Approx(la[i]["loss"].get<double>()).epsilon(1e-5));
}
#endif
