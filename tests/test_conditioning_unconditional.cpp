// Unconditional models (model.num_classes = 0) are unchanged by class conditioning: the same
// parameter names, count and initial values, and the same outputs, as the code before it.
//
// tests/fixtures/unconditional_models.safetensors was written by this test at commit 1b48dfe (main
// just before conditioning was merged; it was first written at ab38a1e and re-recorded after the
// Philox normal draws became bit-exact across backends, which moved test::randn by about 1 ulp)
// with DDPM_WRITE_UNCONDITIONAL_FIXTURE=1:
//   DDPM_WRITE_UNCONDITIONAL_FIXTURE=1 build/tests/ddpm_tests "[conditioning-unchanged]"
// Re-running that on later code would only copy the later code's behaviour, so do not, unless an
// intended change to the unconditional models is being recorded.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <functional>
#include <memory>

#include "engine/io/safetensors.h"
#include "engine/nn/parameters.h"
#include "models/mlp.h"
#include "models/unet.h"
#include "tests/support.h"

using namespace ddpm;

namespace {
const std::string kFixture = std::string(DDPM_SOURCE_DIR) + "/tests/fixtures/unconditional_models.safetensors";

// Initial values (seeded Philox init, float32), then random N(0, 0.2^2) values in float64 so that
// no branch is dead, and the output of one training-mode forward (dropout on) at those values.
// make() builds a fresh model each time (a model binds to one ParameterSet).
std::vector<std::pair<std::string, Tensor>> record(const std::string& name,
                                                   const std::function<std::unique_ptr<Denoiser>()>& make,
                                                   const Tensor& x, const Tensor& t) {
  std::unique_ptr<Denoiser> first = make();
  ParameterSet init(*first, 11, Device::CPU, DType::F32);
  const Tensor count = Tensor::from_vector(std::vector<double>{static_cast<double>(init.count())}, {1}, DType::F64);
  std::unique_ptr<Denoiser> model = make();
  ParameterSet params(*model, 11, Device::CPU, DType::F64);
  params.values().copy_from(test::randn(params.values().shape(), 5, 0.2));
  model->train(true);
  const Tensor out = model->forward(x, t, {7, 3});
  return {{name + ".init", init.values().clone()}, {name + ".count", count}, {name + ".out", out}};
}

std::vector<std::pair<std::string, Tensor>> compute_all() {
  UNetConfig c;
  c.resolution = 8, c.in_channels = 3, c.out_channels = 6, c.base_channels = 8, c.channel_mult = {1, 2};
  c.num_res_blocks = 1, c.attention_resolutions = {4}, c.heads = 2, c.dropout = 0.2, c.groups = 4;
  auto all = record("unet", [&] { return std::make_unique<UNet>(c); }, test::randn({2, 8, 8, 3}, 1),
                    Tensor::from_vector(std::vector<double>{3, 700}, {2}, DType::F64));
  for (auto& e : record("mlp", [] { return std::make_unique<MlpDenoiser>(MlpConfig{2, 4, 16, 2, 8}); },
                        test::randn({3, 1, 1, 2}, 2), Tensor::from_vector(std::vector<double>{0, 50, 999}, {3}, DType::F64)))
    all.push_back(e);
  return all;
}
}  // namespace

TEST_CASE("conditioning: unconditional UNet and MLP keep their parameters and outputs", "[conditioning-unchanged][conditioning]") {
  const auto now = compute_all();
  if (std::getenv("DDPM_WRITE_UNCONDITIONAL_FIXTURE")) save_safetensors(kFixture, now);
  const NamedTensors before = load_safetensors(kFixture);
  for (const auto& [name, tensor] : now) {
    INFO(name);
    const Tensor& old = before.at(name);
    REQUIRE(old.shape() == tensor.shape());
    if (name.find(".out") == std::string::npos) {
      REQUIRE(old.to_vector() == tensor.to_vector());  // init and counts: exact
    } else {
      // float64 outputs; a tolerance far below any structural change absorbs reduction order.
      test::require_close(tensor.to_vector(), old.to_vector(), 1e-12, 1e-14, name);
    }
  }
}
