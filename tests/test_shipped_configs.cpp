// The shipped model configurations train every parameter: after two optimizer steps (the first
// moves conv_out off zero, the second the zero-initialized conv2 and proj_out layers behind it), a
// third backward reaches every parameter with a nonzero gradient. A GroupNorm with one channel per group after the time-embedding add would leave
// that block's temb_proj and conv1.bias at exactly zero.
#include <catch2/catch.hpp>
#include <cmath>

#include "engine/autograd.h"
#include "engine/nn/parameters.h"
#include "engine/ops.h"
#include "engine/optim/adam.h"
#include "tests/support.h"
#include "tools/factories.h"

using namespace ddpm;

namespace {
// loss = mean over the batch of the configured training loss, for random images in [-1, 1].
Tensor training_loss(Denoiser& model, const GaussianDiffusion& diffusion, const Shape& image, uint64_t stream) {
  const int64_t batch = 4;
  const Tensor x0 = Tensor::uniform({batch, image[0], image[1], image[2]}, 7, stream, -1.0, 1.0);
  std::vector<int> t;
  for (int64_t i = 0; i < batch; ++i) t.push_back(static_cast<int>((i * 997 + stream * 131) % diffusion.steps()));
  const auto losses = diffusion.training_losses(model_fn(model, {3, stream}), x0, t, 11, stream);
  return scale(sum(losses.loss), 1.0 / batch);
}
}  // namespace

TEST_CASE("the quick-start and default UNets give every parameter a gradient once the zero-initialized layers moved", "[models][configs]") {
  for (const std::string& file : {std::string(DDPM_SOURCE_DIR) + "/configs/quickstart.json", std::string()}) {
    INFO("config " << (file.empty() ? "built-in defaults" : file));
    const Config config = load_config(file, {"data.dataset=fashion-mnist"});
    const Shape image{28, 28, 1};
    auto model = build_model(config, image);
    ParameterSet params(*model, 0);
    const GaussianDiffusion diffusion = build_diffusion(config.diffusion);
    Adam adam(params, AdamConfig{});

    for (uint64_t step = 1; step <= 3; ++step) {
      params.zero_grad();
      backward(training_loss(*model, diffusion, image, step));
      if (step < 3) adam.step(1e-3);
    }

    // Each parameter's RMS gradient against the RMS over all parameters: a gradient that is zero in
    // exact arithmetic comes out as rounding noise, about 1e-8 of the typical one in float32.
    const std::vector<double> grads = params.grads().to_vector();
    double all = 0;
    for (double g : grads) all += g * g;
    const double typical = std::sqrt(all / static_cast<double>(params.count()));
    for (const NamedParameter& p : params.entries()) {
      // Attention's key bias adds q.b to every logit of a query's row, which softmax ignores: its
      // gradient is zero in any configuration (kept for DDPM's parameter layout).
      if (p.name.size() > 7 && p.name.compare(p.name.size() - 7, 7, ".k.bias") == 0) continue;
      double sum_squares = 0;
      for (int64_t i = 0; i < p.value.numel(); ++i) sum_squares += std::pow(grads[static_cast<size_t>(p.offset + i)], 2);
      const double rms = std::sqrt(sum_squares / static_cast<double>(p.value.numel()));
      INFO(p.name << ": RMS gradient " << rms << ", typical " << typical);
      CHECK(rms > 1e-4 * typical);
    }
  }
}
