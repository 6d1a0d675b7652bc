// The UNet and the MLP denoiser: DDPM's CIFAR-10 parameter count, shapes, zero-initialized outputs,
// and a float64 finite-difference check of the whole network's gradients.
#include <catch2/catch.hpp>
#include <cmath>

#include "engine/autograd.h"
#include "engine/nn/parameters.h"
#include "engine/ops.h"
#include "models/mlp.h"
#include "models/unet.h"
#include "tests/support.h"

using namespace ddpm;

namespace {
// Replaces every parameter with N(0, 0.2^2) so no branch is dead (zero-initialized layers would
// otherwise hide the layers before them).
void randomize(const ParameterSet& params, uint64_t stream) {
  params.values().copy_from(test::randn(params.values().shape(), stream, 0.2).to(params.values().dtype()));
}

// d sum(out * w) / d p for a few parameters, analytic against central differences.
void check_some_parameter_gradients(Denoiser& model, const ParameterSet& params, const Tensor& x, const Tensor& t,
                                    int probes) {
  const DropoutKey key{1, 2};
  Tensor w = test::randn(model.forward(x, t, key).shape(), 77);
  auto loss = [&] { return sum(mul(model.forward(x, t, key), w)); };
  params.zero_grad();
  backward(loss());
  const std::vector<double> grads = params.grads().to_vector();
  double* values = params.values().data<double>();
  NoGradGuard no_grad;
  const double h = 1e-6;
  for (int k = 0; k < probes; ++k) {
    const NamedParameter& p = params.entries()[static_cast<size_t>(k * 7919) % params.entries().size()];
    const int64_t i = p.offset + (k * 104729) % p.value.numel();
    const double saved = values[i];
    values[i] = saved + h;
    const double plus = loss().item();
    values[i] = saved - h;
    const double minus = loss().item();
    values[i] = saved;
    INFO(p.name << " element " << i - p.offset);
    REQUIRE(grads[static_cast<size_t>(i)] == Approx((plus - minus) / (2 * h)).epsilon(1e-5).margin(1e-7));
  }
}
}  // namespace

TEST_CASE("the DDPM CIFAR-10 UNet has exactly 35,746,307 parameters", "[models]") {
  UNetConfig cifar;  // 128 channels, (1,2,2,2), 2 blocks, attention at 16x16
  UNet model(cifar);
  int64_t count = 0;
  model.visit_parameters([&](const std::string&, Tensor& t, const InitSpec&) { count += t.numel(); });
  REQUIRE(count == 35746307);
}

TEST_CASE("a small UNet: shapes, names, zero output at init and correct gradients", "[models]") {
  UNetConfig c;
  c.resolution = 8, c.in_channels = 1, c.out_channels = 2, c.base_channels = 8, c.channel_mult = {1, 2};
  c.num_res_blocks = 1, c.attention_resolutions = {4}, c.heads = 2, c.dropout = 0.1, c.groups = 4;
  UNet model(c);
  ParameterSet params(model, 3, Device::CPU, DType::F64);
  REQUIRE_NOTHROW(params.find("down.0.block.0.conv1.weight"));
  REQUIRE_NOTHROW(params.find("down.1.attn.0.q.weight"));
  REQUIRE_NOTHROW(params.find("up.1.upsample.weight"));
  REQUIRE_NOTHROW(params.find("up.0.block.1.nin_shortcut.weight"));
  Tensor x = test::randn({2, 8, 8, 1}, 1), t = Tensor::from_vector(std::vector<double>{3, 500}, {2}, DType::F64);
  Tensor out = model.forward(x, t, {});
  REQUIRE(out.shape() == Shape{2, 8, 8, 2});
  for (double v : out.to_vector()) REQUIRE(v == 0.0);  // conv_out starts at zero
  randomize(params, 5);
  model.train(false);  // no dropout: a deterministic function for finite differences
  check_some_parameter_gradients(model, params, x, t, 40);
  // With dropout on, the same key gives the same output; another key another one.
  model.train(true);
  NoGradGuard no_grad;
  REQUIRE(model.forward(x, t, {1, 1}).to_vector() == model.forward(x, t, {1, 1}).to_vector());
  REQUIRE(model.forward(x, t, {1, 1}).to_vector() != model.forward(x, t, {1, 2}).to_vector());
  REQUIRE_THROWS_WITH(model.forward(test::randn({2, 9, 9, 1}, 2), t, {}), Catch::Contains("[2, 9, 9, 1]"));
}

TEST_CASE("UNet configurations that cannot work are refused with the reason", "[models][errors]") {
  UNetConfig c;
  c.resolution = 28, c.channel_mult = {1, 2, 2, 2};
  REQUIRE_THROWS_WITH(UNet(c), Catch::Contains("28") && Catch::Contains("halve"));
  c = UNetConfig{};
  c.base_channels = 40;
  REQUIRE_THROWS_WITH(UNet(c), Catch::Contains("groups"));
  // One channel per group after the time-embedding add: the block could never see t.
  c = UNetConfig{};
  c.base_channels = 32, c.channel_mult = {1, 2}, c.attention_resolutions = {}, c.groups = 32;
  REQUIRE_THROWS_WITH(UNet(c), Catch::Contains("down.0.block.0.norm2") && Catch::Contains("one channel per group") &&
                                   Catch::Contains("model.groups = 8"));
}

TEST_CASE("the MLP denoiser maps [N,1,1,2] points and differentiates correctly", "[models]") {
  MlpDenoiser model({2, 4, 16, 2, 8});
  ParameterSet params(model, 4, Device::CPU, DType::F64);
  Tensor x = test::randn({5, 1, 1, 2}, 1), t = Tensor::from_vector(std::vector<double>{0, 1, 10, 100, 999}, {5}, DType::F64);
  REQUIRE(model.forward(x, t, {}).shape() == Shape{5, 1, 1, 4});
  randomize(params, 6);
  check_some_parameter_gradients(model, params, x, t, 30);
}
