// Modules, the flat parameter buffer, Adam/AdamW, gradient clipping and EMA against steps
// computed by hand.
#include <catch2/catch.hpp>
#include <cmath>

#include "engine/autograd.h"
#include "engine/nn/layers.h"
#include "engine/nn/parameters.h"
#include "engine/ops.h"
#include "engine/optim/adam.h"
#include "engine/optim/ema.h"

using namespace ddpm;

namespace {
// A tiny network: conv -> group norm -> linear head, plus a non-trainable buffer.
struct Tiny : Module {
  Tiny() {
    conv = &add_module<Conv2d>("conv", 2, 4, 3);
    norm = &add_module<GroupNorm>("norm", 4, 2);
    head = &add_module<Linear>("head", 4, 3, 0.0);  // zero-initialized output layer
    table = register_buffer("table", Tensor::full({5}, 7.0));
  }
  Conv2d* conv;
  GroupNorm* norm;
  Linear* head;
  Tensor table;
};

// One scalar parameter module, for optimizer arithmetic.
struct Scalars : Module {
  explicit Scalars(int64_t n) { w = register_parameter("w", {n}, {InitSpec::Ones, 0}); }
  Tensor w;
};
}  // namespace

TEST_CASE("parameters get dotted names and live in one padded contiguous buffer", "[nn]") {
  Tiny model;
  ParameterSet params(model, 1);
  std::vector<std::string> names;
  for (const NamedParameter& p : params.entries()) names.push_back(p.name);
  REQUIRE(names == std::vector<std::string>{"conv.weight", "conv.bias", "norm.weight", "norm.bias", "head.weight",
                                           "head.bias"});
  REQUIRE(params.count() == 4 * 3 * 3 * 2 + 4 + 4 + 4 + 3 * 4 + 3);
  const char* base = static_cast<const char*>(params.values().raw());
  for (const NamedParameter& p : params.entries()) {
    REQUIRE(static_cast<const char*>(p.value.raw()) == base + p.offset * 4);
    REQUIRE(p.offset % 16 == 0);
    REQUIRE(p.grad.raw() == static_cast<const char*>(params.grads().raw()) + p.offset * 4);
  }
  // Initializers: GroupNorm weight ones, biases zero, zero-init head, conv weights uniform within
  // the variance-scaling bound sqrt(3 / fan_avg), fan_avg = (2*9 + 4*9) / 2.
  REQUIRE(params.find("norm.weight").value.to_vector() == std::vector<double>(4, 1.0));
  REQUIRE(params.find("head.weight").value.to_vector() == std::vector<double>(12, 0.0));
  const double bound = std::sqrt(3.0 / 27.0);
  for (double w : params.find("conv.weight").value.to_vector()) REQUIRE((std::fabs(w) <= bound && w != 0.0));
  REQUIRE_THROWS_WITH(params.find("conv.wieght"), Catch::Contains("conv.weight") && Catch::Contains("head.bias"));
  // Same seed, same initialization; different seed, different one.
  Tiny again, other;
  ParameterSet same(again, 1), different(other, 2);
  REQUIRE(same.values().to_vector() == params.values().to_vector());
  REQUIRE(different.values().to_vector() != params.values().to_vector());
  REQUIRE_THROWS_WITH(ParameterSet(model, 3), Catch::Contains("already bound"));
}

TEST_CASE("backward accumulates into the gradient buffer; zero_grad clears it", "[nn]") {
  Tiny model;
  ParameterSet params(model, 1);
  Tensor x = Tensor::normal({2, 5, 5, 2}, 3, 0);
  Tensor loss = sum(model.norm->forward(model.conv->forward(x), true));
  backward(loss);
  std::vector<double> g1 = params.grads().to_vector();
  REQUIRE(params.find("conv.weight").grad.to_vector() != std::vector<double>(72, 0.0));
  backward(sum(model.norm->forward(model.conv->forward(x), true)));
  std::vector<double> g2 = params.grads().to_vector();
  for (size_t i = 0; i < g1.size(); ++i) REQUIRE(g2[i] == Approx(2 * g1[i]).margin(1e-6));
  params.zero_grad();
  REQUIRE(params.grads().to_vector() == std::vector<double>(g1.size(), 0.0));
}

TEST_CASE("Adam and AdamW match hand-computed steps", "[optim]") {
  for (bool decoupled : {false, true}) {
    Scalars model(3);
    ParameterSet params(model, 0, Device::CPU, DType::F64);
    AdamConfig config{0.9, 0.99, 1e-8, 0.01, decoupled};
    Adam adam(params, config);
    std::vector<double> p{1, 1, 1}, m(3, 0), v(3, 0);
    const std::vector<std::vector<double>> grads{{0.5, -1, 2}, {0.25, 3, -1}};
    for (size_t step = 1; step <= grads.size(); ++step) {
      params.grads().copy_from(Tensor::from_vector(
          std::vector<double>{grads[step - 1][0], grads[step - 1][1], grads[step - 1][2], 0, 0, 0, 0, 0, 0, 0, 0, 0,
                              0, 0, 0, 0},
          {16}, DType::F64));
      adam.step(0.1);
      for (int i = 0; i < 3; ++i) {
        double g = grads[step - 1][i];
        if (decoupled)
          p[i] -= 0.1 * 0.01 * p[i];
        else
          g += 0.01 * p[i];
        m[i] = 0.9 * m[i] + 0.1 * g;
        v[i] = 0.99 * v[i] + 0.01 * g * g;
        double mhat = m[i] / (1 - std::pow(0.9, step)), vhat = v[i] / (1 - std::pow(0.99, step));
        p[i] -= 0.1 * mhat / (std::sqrt(vhat) + 1e-8);
      }
      std::vector<double> got = model.w.to_vector();
      for (int i = 0; i < 3; ++i) REQUIRE(got[i] == Approx(p[i]).epsilon(1e-14));
    }
    REQUIRE(adam.steps() == 2);
    // Padding past the last parameter stays zero.
    std::vector<double> all = params.values().to_vector();
    for (size_t i = 3; i < all.size(); ++i) REQUIRE(all[i] == 0.0);
  }
}

TEST_CASE("global-norm clipping scales all gradients together", "[optim]") {
  Scalars model(2);
  ParameterSet params(model, 0, Device::CPU, DType::F64);
  std::vector<double> g(16, 0.0);
  g[0] = 3, g[1] = 4;  // norm 5
  params.grads().copy_from(Tensor::from_vector(g, {16}, DType::F64));
  REQUIRE(grad_norm(params) == Approx(5.0));
  REQUIRE(clip_grad_norm(params, 10.0) == Approx(5.0));  // under the limit: untouched
  REQUIRE(params.grads().to_vector()[0] == 3.0);
  REQUIRE(clip_grad_norm(params, 1.0) == Approx(5.0));
  std::vector<double> clipped = params.grads().to_vector();
  REQUIRE(clipped[0] == Approx(0.6));
  REQUIRE(clipped[1] == Approx(0.8));
  REQUIRE(grad_norm(params) == Approx(1.0));
}

TEST_CASE("EMA follows decay * shadow + (1 - decay) * params, over parameters only", "[optim]") {
  Tiny model;
  ParameterSet params(model, 1, Device::CPU, DType::F64);
  Ema ema(params, 0.9);
  REQUIRE(ema.shadow().to_vector() == params.values().to_vector());
  std::vector<double> start = params.values().to_vector();
  Tensor values = params.values();
  values.copy_from(Tensor::full(values.shape(), 2.0, DType::F64));
  ema.update(params);
  ema.update(params);
  std::vector<double> shadow = ema.shadow().to_vector();
  for (size_t i = 0; i < shadow.size(); ++i) {
    double want = 0.81 * start[i] + 0.19 * 2.0;  // two steps toward 2
    REQUIRE(shadow[i] == Approx(want).epsilon(1e-14));
  }
  REQUIRE(ema.shadow().numel() == params.values().numel());  // the buffer is not in it
  REQUIRE(model.table.to_vector() == std::vector<double>(5, 7.0));
  ema.swap_with(params);
  REQUIRE(params.values().to_vector() == shadow);
  REQUIRE(ema.shadow().to_vector() == std::vector<double>(shadow.size(), 2.0));
  int buffers = 0;
  model.visit_buffers([&](const std::string& name, Tensor&) { buffers += name == "table"; });
  REQUIRE(buffers == 1);
}
