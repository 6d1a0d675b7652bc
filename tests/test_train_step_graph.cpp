// The graph-ready training step (tools/train_step_graph.h) on the CPU, where it runs uncaptured: N
// steps through it equal N steps of train_step bit for bit (losses, per-sample losses, gradient
// norms, rates, weights, EMA, Adam moments and step count) for small UNets with dropout, flips,
// clipping that binds, a warm-up schedule, the hybrid loss with the loss-aware timestep sampler,
// AdamW, and a conditional model with label dropout. Also: the device-side optimizer values
// (clipping factor and Adam scalars read from tensors) against clip_grad_norm + Adam::step, the
// input upload bookkeeping, and the train.cuda_graphs key.
#include <catch2/catch.hpp>
#include <stb/stb_image_write.h>

#include <filesystem>

#include "engine/nn/layers.h"
#include "engine/nn/parameters.h"
#include "engine/optim/adam.h"
#include "engine/optim/ema.h"
#include "engine/philox.h"
#include "tests/cli_runner.h"
#include "tools/config.h"
#include "tools/train_setup.h"
#include "tools/train_step.h"
#include "tools/train_step_graph.h"

using namespace ddpm;
using ddpm::test::TempDir;
using Catch::Contains;
namespace fs = std::filesystem;

namespace {
// Two classes of 8x8 RGB images with Philox pixels (a brighter and a darker class), 6 each.
void write_image_folder(const std::string& root) {
  for (int c = 0; c < 2; ++c) {
    const std::string dir = root + (c == 0 ? "/bright" : "/dark");
    fs::create_directories(dir);
    for (int k = 0; k < 6; ++k) {
      uint8_t pixels[8 * 8 * 3];
      for (int i = 0; i < 8 * 8 * 3; ++i)
        pixels[i] = static_cast<uint8_t>((c == 0 ? 128 : 0) + 127 * philox::uniform(7, static_cast<uint64_t>(c * 6 + k),
                                                                                    static_cast<uint64_t>(i)));
      const std::string path = dir + "/" + std::to_string(k) + ".png";
      REQUIRE(stbi_write_png(path.c_str(), 8, 8, 3, pixels, 8 * 3));
    }
  }
}

std::vector<std::string> small_unet(const std::string& data) {
  return {"data.dataset=folder",      "data.path=" + data,         "data.channels=3",
          "data.random_flip=true",    "model.base_channels=8",     "model.channel_mult=[1, 2]",
          "model.attention_resolutions=[4]", "model.groups=4",     "model.dropout=0.3",
          "diffusion.steps=20",       "train.batch_size=5",        "train.lr=0.01",
          "train.warmup=3",           "train.grad_clip=0.05",      "train.ema_decay=0.9",
          "train.steps=1000",         "train.checkpoint_every=0",  "train.log_every=1000",
          "train.device=cpu"};
}

std::unique_ptr<TrainRun> set_up(const std::string& out, std::vector<std::string> sets) {
  TrainArgs args;
  args.out = out;
  args.overrides = std::move(sets);
  return set_up_training(args, world());
}

void require_same_state(const TrainRun& a, const TrainRun& b) {
  REQUIRE(a.step == b.step);
  REQUIRE(a.params->values().to_vector() == b.params->values().to_vector());
  REQUIRE(a.ema->shadow().to_vector() == b.ema->shadow().to_vector());
  REQUIRE(a.adam->first_moment().to_vector() == b.adam->first_moment().to_vector());
  REQUIRE(a.adam->second_moment().to_vector() == b.adam->second_moment().to_vector());
  REQUIRE(a.adam->steps() == b.adam->steps());
}

// Runs `steps` steps of each form side by side and requires every reported number to agree.
// Returns how many steps clipped (the gradient norm above train.grad_clip).
int compare_forms(const std::vector<std::string>& sets, int steps) {
  TempDir dir;
  const auto reference = set_up(dir / "reference", sets), graphed = set_up(dir / "graphed", sets);
  BatchOrder order_a(reference->data.size(), reference->config.train.seed);
  BatchOrder order_b(graphed->data.size(), graphed->config.train.seed);
  GraphedTrainStep form(*graphed, false);
  int clipped = 0;
  for (int s = 0; s < steps; ++s) {
    INFO("step " << s + 1);
    const StepResult want = train_step(*reference, order_a, world(), false);
    const StepResult got = form.step(*graphed, order_b, false);
    REQUIRE(got.loss == want.loss);
    REQUIRE(got.grad_norm == want.grad_norm);
    REQUIRE(got.lr == want.lr);
    REQUIRE_FALSE(got.stop_requested);
    REQUIRE(got.losses.loss.to_vector() == want.losses.loss.to_vector());
    REQUIRE(got.losses.mse.to_vector() == want.losses.mse.to_vector());
    REQUIRE(got.losses.vb.defined() == want.losses.vb.defined());
    if (want.losses.vb.defined()) REQUIRE(got.losses.vb.to_vector() == want.losses.vb.to_vector());
    require_same_state(*reference, *graphed);
    if (want.grad_norm > reference->config.train.grad_clip) ++clipped;
  }
  REQUIRE(form.counts().direct == steps);
  REQUIRE(form.counts().warm_ups + form.counts().captures + form.counts().replays == 0);
  return clipped;
}
}  // namespace

TEST_CASE("graph-ready train step equals train_step bit for bit: UNet, dropout, flips, clipping, warm-up",
          "[graph][train_step]") {
  TempDir data;
  write_image_folder(data / "images");
  std::vector<std::string> sets = small_unet(data / "images");
  SECTION("unconditional, mse, Adam") {
    CHECK(compare_forms(sets, 6) >= 3);  // the clip binds, so the device-side factor is exercised
  }
  SECTION("conditional with label dropout, hybrid loss, loss-aware timesteps, AdamW") {
    for (const char* s : {"model.num_classes=2", "train.label_dropout=0.4", "diffusion.loss=hybrid",
                          "diffusion.variance=learned_range", "diffusion.timestep_sampler=loss_second_moment",
                          "train.adamw=true", "train.weight_decay=0.1"})
      sets.push_back(s);
    CHECK(compare_forms(sets, 6) >= 3);
  }
  SECTION("no clipping") {
    sets.push_back("train.grad_clip=0");
    CHECK(compare_forms(sets, 3) == 3);  // every norm is above 0: counted, but nothing is scaled
  }
}

TEST_CASE("device-side clipping and Adam scalars equal clip_grad_norm + Adam::step", "[graph][optim]") {
  // Two copies of one parameter set with the same gradients; one updates the host way, the other
  // reads the rate, bias corrections and clipping factor from tensors.
  for (double clip : {0.0, 1.0, 100.0}) {
    INFO("clip " << clip);
    Linear la(3, 4), lb(3, 4);
    ParameterSet a(la, 5), b(lb, 5);
    const int64_t n = a.grads().numel();
    std::vector<double> g(static_cast<size_t>(n));
    AdamConfig config;
    config.weight_decay = 0.05;
    Adam adam_a(a, config), adam_b(b, config);
    Ema ema_a(a, 0.8), ema_b(b, 0.8);
    const Tensor sums = Tensor::zeros({1}, DType::F64);
    for (int step = 1; step <= 4; ++step) {
      for (int64_t i = 0; i < n; ++i) g[static_cast<size_t>(i)] = 2 * philox::normal(3, static_cast<uint64_t>(step), static_cast<uint64_t>(i));
      a.grads().copy_from(Tensor::from_vector(g, {n}));
      b.grads().copy_from(Tensor::from_vector(g, {n}));
      const double lr = 0.01 * step;
      const double norm = clip > 0 ? clip_grad_norm(a, clip) : grad_norm(a);
      adam_a.step(lr, 1.0, &ema_a);
      grad_sum_squares(b, sums);
      REQUIRE(std::sqrt(sums.item()) == norm);
      adam_b.count_step();
      const std::vector<double> scalars = adam_b.step_scalars(lr, adam_b.steps());
      adam_b.step_on_device(Tensor::from_vector(scalars, {3}, DType::F64), sums, clip, &ema_b);
      REQUIRE(a.values().to_vector() == b.values().to_vector());
      REQUIRE(ema_a.shadow().to_vector() == ema_b.shadow().to_vector());
      REQUIRE(adam_a.first_moment().to_vector() == adam_b.first_moment().to_vector());
      REQUIRE(adam_a.second_moment().to_vector() == adam_b.second_moment().to_vector());
      REQUIRE(adam_a.steps() == adam_b.steps());
      if (clip == 1.0) CHECK(norm > clip);  // this case really clips
    }
  }
  // The scalars' values are Adam's own formulas.
  Linear layer(2, 2);
  ParameterSet p(layer, 1);
  Adam adam(p, AdamConfig{});
  const std::vector<double> s = adam.step_scalars(0.5, 3);
  CHECK(s == std::vector<double>{0.5, 1.0 - std::pow(0.9, 3.0), 1.0 - std::pow(0.999, 3.0)});
  CHECK_THROWS_WITH(adam.step_scalars(-1, 1), Contains("learning rate"));
  CHECK_THROWS_WITH(adam.step_scalars(0.1, 0), Contains("1-based"));
}

TEST_CASE("graph-ready step inputs: written in place, reallocated only when a shape changes", "[graph][train_step]") {
  const GaussianDiffusion diffusion(Schedule(BetaSchedule::Linear, 20), DiffusionConfig{});
  StepHostInputs h;
  h.x0 = Tensor::from_vector(std::vector<double>{0.1, 0.2, 0.3, 0.4}, {2, 1, 1, 2});
  h.t = {3, 7};
  h.weights = {1.0, 0.5};
  h.labels = {1, 2};
  h.adam = {0.1, 0.2, 0.3};
  StepInputs in;
  REQUIRE(upload_step_inputs(h, diffusion, 2, Device::CPU, in));  // first: allocated
  const void* x0_address = in.x0.raw();
  CHECK(in.steps.steps.to_vector() == std::vector<double>{3, 7});
  CHECK(in.steps.model_t.to_vector() == diffusion.step_tensors(h.t, DType::F32, Device::CPU).model_t.to_vector());
  CHECK(in.weights.to_vector() == std::vector<double>{1.0, 0.5});
  CHECK(in.one_hot.to_vector() == std::vector<double>{0, 1, 0, 0, 0, 1});  // label 2 = "no class"
  CHECK(in.adam.dtype() == DType::F64);
  CHECK(in.adam.to_vector() == std::vector<double>{0.1, 0.2, 0.3});
  // The next step's values: the same tensors, rewritten.
  h.x0 = Tensor::from_vector(std::vector<double>{-1, -2, -3, -4}, {2, 1, 1, 2});
  h.t = {0, 19};
  h.labels = {0, 0};
  REQUIRE_FALSE(upload_step_inputs(h, diffusion, 2, Device::CPU, in));
  CHECK(in.x0.raw() == x0_address);
  CHECK(in.x0.to_vector() == std::vector<double>{-1, -2, -3, -4});
  CHECK(in.steps.steps.to_vector() == std::vector<double>{0, 19});
  CHECK(in.one_hot.to_vector() == std::vector<double>{1, 0, 0, 1, 0, 0});
  // A batch of another size: reallocated (a graph would be rebuilt).
  h.x0 = Tensor::from_vector(std::vector<double>{5, 6}, {1, 1, 1, 2});
  h.t = {4};
  h.weights = {1.0};
  h.labels = {1};
  REQUIRE(upload_step_inputs(h, diffusion, 2, Device::CPU, in));
  CHECK(in.x0.dim(0) == 1);
  // Mismatched counts and labels out of range are refused by name.
  h.t = {4, 5};
  CHECK_THROWS_WITH(upload_step_inputs(h, diffusion, 2, Device::CPU, in), Contains("2 timesteps"));
  h.t = {4};
  h.labels = {3};
  CHECK_THROWS_WITH(upload_step_inputs(h, diffusion, 2, Device::CPU, in), Contains("label 3"));
  h.t = {20};
  h.labels = {0};
  CHECK_THROWS_WITH(upload_step_inputs(h, diffusion, 2, Device::CPU, in), Contains("timestep 20"));
}

TEST_CASE("graph config: train.cuda_graphs defaults to true and --set turns it off", "[graph][config]") {
  CHECK(load_config("", {}).train.cuda_graphs);
  CHECK_FALSE(load_config("", {"train.cuda_graphs=false"}).train.cuda_graphs);
  CHECK_THROWS_WITH(load_config("", {"train.cuda_graphs=1"}), Contains("train.cuda_graphs"));
  Json old = default_config();
  old["train"].erase("cuda_graphs");
  CHECK(recorded_config(old, {}).train.cuda_graphs);
  CHECK_FALSE(recorded_config(old, {"train.cuda_graphs=false"}).train.cuda_graphs);
}

TEST_CASE("graph-ready train step: why a run trains without graphs", "[graph][train_step]") {
  TempDir data;
  write_image_folder(data / "images");
  TempDir out;
  std::vector<std::string> sets = small_unet(data / "images");
  const auto run = set_up(out / "run", sets);
  CHECK_THAT(why_no_train_graphs(*run, 1), Contains("not CUDA"));  // the CPU (the trainer says nothing there)
  CHECK_THAT(why_no_train_graphs(*run, 2), Contains("2 ranks") && Contains("MPI"));
  sets.push_back("model.flip_sin_to_cos=true");
  const auto diffusers_style = set_up(out / "run2", sets);
  CHECK_THAT(why_no_train_graphs(*diffusers_style, 1), Contains("model.flip_sin_to_cos"));
}
