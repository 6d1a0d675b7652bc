// CUDA graphs (engine/cuda_graph.h) against the uncaptured run on the GPU, bit for bit: whole
// sampling loops (ancestral over a respaced chain, DPM-Solver++(2M)) captured at their second
// batch and replayed for the rest, and a training step's forward and backward (noise of q(x_t|x_0)
// and dropout in every layer) captured once and replayed for later steps. Equality is exact
// because a replay runs the same kernels on the same shapes with the streams the uncaptured run
// uses (engine/replay_counter.h); any difference means a replay drew other numbers or read a
// stale input. Written without a GPU: not yet run.
#include <catch2/catch.hpp>

#include <cstring>
#include <vector>

#include "diffusion/gaussian_diffusion.h"
#include "engine/autograd.h"
#include "engine/cuda_graph.h"
#include "engine/nn/parameters.h"
#include "engine/ops.h"
#include "engine/replay_counter.h"
#include "models/unet.h"
#include "tests/gpu/small_unet.h"
#include "tests/support.h"
#include "tools/factories.h"
#include "tools/generate.h"

using namespace ddpm;

namespace {
// 4 batches of 3 and one of 2: a warm-up, a capture and two replays for size 3, a warm-up alone for 2.
Tensor samples(UNet& model, const GaussianDiffusion& diffusion, SampleMethod method, int steps, bool graphs) {
  GenerateOptions o;
  o.count = 14, o.batch = 3, o.method = method, o.steps = steps, o.seed = 11, o.first_batch = 2;
  o.cuda_graphs = graphs;
  return generate(model, diffusion, {16, 16, 3}, Device::CUDA, o);
}
}  // namespace

TEST_CASE("CUDA graphs: replayed sampling loops equal the uncaptured ones bit for bit", "[gpu][graph]") {
  REQUIRE(cuda_graphs_available(Device::CUDA));
  UNet model(test::small_gpu_unet(3));
  ParameterSet params(model, 7, Device::CUDA);
  params.values().copy_from(test::randn(params.values().shape(), 5, 0.1).to(DType::F32).to(Device::CUDA));
  const GaussianDiffusion diffusion(Schedule(BetaSchedule::Linear, 1000), DiffusionConfig{});
  struct Case {
    SampleMethod method;
    int steps;
    const char* name;
  };
  for (const Case& c : {Case{SampleMethod::Ancestral, 10, "ancestral, 10 respaced steps"},
                        Case{SampleMethod::DpmPP2M, 8, "dpm++2m, 8 levels"}}) {
    INFO(c.name);
    const Tensor plain = samples(model, diffusion, c.method, c.steps, false);
    const Tensor replayed = samples(model, diffusion, c.method, c.steps, true);
    REQUIRE(test::float32_bits(replayed) == test::float32_bits(plain));
    // And the batches differ (a replay that drew the captured batch's noise again would repeat it).
    const std::vector<uint32_t> all = test::float32_bits(plain);
    const size_t per = all.size() / 14;
    REQUIRE(!std::equal(all.begin() + 3 * per, all.begin() + 6 * per, all.begin() + 6 * per));
  }
}

TEST_CASE("CUDA graphs: a replayed training forward and backward equals the uncaptured steps bit for bit",
          "[gpu][graph]") {
  REQUIRE(cuda_graphs_available(Device::CUDA));
  UNet model(test::small_gpu_unet(3));
  ParameterSet params(model, 7, Device::CUDA);
  params.values().copy_from(test::randn(params.values().shape(), 5, 0.1).to(DType::F32).to(Device::CUDA));
  model.train(true);
  const GaussianDiffusion diffusion(Schedule(BetaSchedule::Linear, 1000), DiffusionConfig{});
  const Tensor x0 = Tensor::uniform({4, 16, 16, 3}, 1, 2, -1, 1, DType::F32, Device::CUDA);
  const std::vector<int> t{0, 10, 500, 999};
  const uint64_t noise_seed = 5, dropout_seed = 9;
  // One step's loss and gradients; everything random is keyed by the step (tools/train_step.cpp).
  Tensor loss;
  auto step = [&](int64_t s) {
    const ModelFn network = model_fn(model, DropoutKey{dropout_seed, train_step_stream(s), 0});
    loss = mean(diffusion.training_losses(network, x0, t, noise_seed, train_step_stream(s)).loss);
    params.zero_grad();
    backward(loss);
  };
  // Uncaptured steps 1..5.
  std::vector<std::vector<uint32_t>> want_loss, want_grads;
  for (int64_t s = 1; s <= 5; ++s) {
    step(s);
    want_loss.push_back(test::float32_bits(loss));
    want_grads.push_back(test::float32_bits(params.grads()));
  }
  REQUIRE(want_loss[1] != want_loss[2]);  // the steps draw different numbers
  CudaGraph::Options o;
  o.strides = train_step_strides();
  o.constant_uploads = true;  // the fixed timesteps of this test (the train command uploads them before the replay)
  o.what = "the test's training step";
  o.turn_off = "(test)";
  CudaGraph graph(o);
  graph.warm_up([&] { step(1); });
  REQUIRE(test::float32_bits(loss) == want_loss[0]);
  loss = Tensor();  // the warm-up's blocks must be free for the capture (it may not allocate more)
  graph.capture([&] { step(2); }, 2);
  const Tensor captured_loss = loss;
  for (int64_t s : {2, 3, 5}) {  // 4 skipped: the offsets are set from the host
    INFO("step " << s);
    graph.replay(s);
    REQUIRE(test::float32_bits(captured_loss) == want_loss[static_cast<size_t>(s - 1)]);
    REQUIRE(test::float32_bits(params.grads()) == want_grads[static_cast<size_t>(s - 1)]);
  }
}
