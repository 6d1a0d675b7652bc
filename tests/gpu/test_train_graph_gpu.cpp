// The captured training step (tools/train_step_graph.h, train.cuda_graphs) against the uncaptured
// one on the GPU, bit for bit: the same run set up twice, one trained by train_step, the other by
// the graph (warm-up at step 1, capture at step 2, replays after), compared after every step
// (loss, gradient norm, per-sample losses) and at the end (weights, EMA, Adam moments). Equality is
// exact because the replay runs the same kernels on the same inputs, uploaded before it, with the
// random streams advanced by the replay offsets. Written without a GPU: not yet run.
#include <catch2/catch.hpp>
#include <stb/stb_image_write.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "engine/cuda_graph.h"
#include "engine/philox.h"
#include "tools/train_setup.h"
#include "tools/train_step.h"
#include "tests/support.h"
#include "tools/train_step_graph.h"

using namespace ddpm;
namespace fs = std::filesystem;

namespace {
// A fresh folder under the system's temporary directory, removed at the end.
struct ScratchDir {
  std::string path;
  ScratchDir() {
    std::string pattern = (fs::temp_directory_path() / "ddpm-gpu-train-XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// Two classes of 16x16 RGB images with Philox pixels, 8 each.
void write_images(const std::string& root) {
  for (int c = 0; c < 2; ++c) {
    const std::string dir = root + (c == 0 ? "/bright" : "/dark");
    fs::create_directories(dir);
    for (int k = 0; k < 8; ++k) {
      std::vector<uint8_t> pixels(16 * 16 * 3);
      for (size_t i = 0; i < pixels.size(); ++i)
        pixels[i] = static_cast<uint8_t>((c == 0 ? 128 : 0) + 127 * philox::uniform(9, static_cast<uint64_t>(c * 8 + k), i));
      const std::string path = dir + "/" + std::to_string(k) + ".png";
      REQUIRE(stbi_write_png(path.c_str(), 16, 16, 3, pixels.data(), 16 * 3));
    }
  }
}

std::unique_ptr<TrainRun> set_up(const std::string& out, std::vector<std::string> sets) {
  TrainArgs args;
  args.out = out;
  args.overrides = std::move(sets);
  return set_up_training(args, world());
}

void compare(const std::vector<std::string>& sets, int steps) {
  ScratchDir dir;
  const auto plain = set_up(dir.path + "/plain", sets), graphed = set_up(dir.path + "/graphed", sets);
  BatchOrder order_a(plain->data.size(), plain->config.train.seed), order_b(graphed->data.size(), plain->config.train.seed);
  GraphedTrainStep form(*graphed, true);
  for (int s = 0; s < steps; ++s) {
    INFO("step " << s + 1);
    const StepResult want = train_step(*plain, order_a, world(), false);
    const StepResult got = form.step(*graphed, order_b, false);
    REQUIRE(got.loss == want.loss);
    REQUIRE(got.grad_norm == want.grad_norm);
    REQUIRE(test::float32_bits(got.losses.loss) == test::float32_bits(want.losses.loss));
    REQUIRE(test::float32_bits(got.losses.mse) == test::float32_bits(want.losses.mse));
  }
  CHECK(form.counts().warm_ups == 1);
  CHECK(form.counts().captures == 1);
  CHECK(form.counts().replays == steps - 1);
  REQUIRE(test::float32_bits(graphed->params->values()) == test::float32_bits(plain->params->values()));
  REQUIRE(test::float32_bits(graphed->ema->shadow()) == test::float32_bits(plain->ema->shadow()));
  REQUIRE(test::float32_bits(graphed->adam->first_moment()) == test::float32_bits(plain->adam->first_moment()));
  REQUIRE(test::float32_bits(graphed->adam->second_moment()) == test::float32_bits(plain->adam->second_moment()));
}
}  // namespace

TEST_CASE("CUDA graphs: a captured training step equals the uncaptured steps bit for bit", "[gpu][graph][train]") {
  REQUIRE(cuda_graphs_available(Device::CUDA));
  ScratchDir data;
  write_images(data.path + "/images");
  std::vector<std::string> sets{"data.dataset=folder",        "data.path=" + data.path + "/images",
                                "data.channels=3",            "data.random_flip=true",
                                "model.base_channels=32",     "model.channel_mult=[1, 2]",
                                "model.attention_resolutions=[8]", "model.dropout=0.2",
                                "diffusion.steps=100",        "train.batch_size=6",
                                "train.lr=0.002",             "train.warmup=3",
                                "train.grad_clip=0.5",        "train.ema_decay=0.9",
                                "train.steps=1000",           "train.checkpoint_every=0",
                                "train.device=cuda"};
  SECTION("unconditional, dropout, flips, clipping, warm-up, L2 weight decay") {
    sets.push_back("train.weight_decay=0.01");  // Adam's L2 term after the clipping factor
    compare(sets, 6);
  }
  SECTION("conditional with label dropout, hybrid loss, loss-aware timesteps, mixed precision") {
    for (const char* s : {"model.num_classes=2", "train.label_dropout=0.4", "diffusion.loss=hybrid",
                          "diffusion.variance=learned_range", "diffusion.timestep_sampler=loss_second_moment",
                          "train.mixed_precision=true"})
      sets.push_back(s);
    compare(sets, 6);
  }
}
