// Mixed precision through ParameterSet's compute copy (keep_compute_copy): Adam writes the narrow
// copy of the new weights in its pass, layers read it without a cast, and their gradients fold into
// the master gradients in one pass. The CPU runs it with float64 masters and float32 compute (and
// stores bfloat16 copies, which it does not compute with); CUDA's bfloat16 case is in
// tests/gpu/test_mixed_precision_gpu.cpp.
#include <catch2/catch.hpp>

#include <cstring>
#include <functional>
#include <set>
#include <vector>

#include "diffusion/gaussian_diffusion.h"
#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/nn/parameters.h"
#include "engine/ops.h"
#include "engine/optim/adam.h"
#include "engine/optim/ema.h"
#include "models/unet.h"
#include "tests/support.h"

using namespace ddpm;

namespace {
UNetConfig small_unet() {
  UNetConfig c;
  c.resolution = 8, c.in_channels = 2, c.out_channels = 4, c.base_channels = 8, c.channel_mult = {1, 2};
  c.num_res_blocks = 1, c.attention_resolutions = {4}, c.heads = 2, c.dropout = 0.2, c.groups = 4;
  return c;
}

std::vector<uint16_t> bf16_bits(const Tensor& t) {  // t: bfloat16 on the CPU
  std::vector<uint16_t> out(static_cast<size_t>(t.numel()));
  std::memcpy(out.data(), t.raw(), t.nbytes());
  return out;
}

std::vector<float> floats(const Tensor& t) {  // t: float32 on the CPU
  std::vector<float> out(static_cast<size_t>(t.numel()));
  std::memcpy(out.data(), t.raw(), t.nbytes());
  return out;
}

// The convert nodes of the graph that produced `root` (each is one cast forward, one backward).
int count_converts(const Tensor& root) {
  std::set<const Node*> seen;
  int converts = 0;
  std::function<void(const std::shared_ptr<Node>&)> walk = [&](const std::shared_ptr<Node>& node) {
    if (!node || !seen.insert(node.get()).second) return;
    if (node->op == OpKind::convert) ++converts;
    for (const Tensor& in : node->inputs)
      if (in.defined()) walk(in.impl().grad_fn);
  };
  walk(root.impl().grad_fn);
  return converts;
}

// Every bfloat16 copy element is the round-to-nearest-even bfloat16 of its float32 master.
void require_bf16_of(const ParameterSet& params) {
  const std::vector<float> master = floats(params.values());
  const std::vector<uint16_t> copy = bf16_bits(params.compute_values());
  REQUIRE(copy.size() == master.size());
  size_t mismatches = 0;
  for (size_t i = 0; i < master.size(); ++i) mismatches += copy[i] != float_to_bf16_bits(master[i]);
  REQUIRE(mismatches == 0);
}
}  // namespace

TEST_CASE("the Adam + EMA pass writes the bfloat16 copy of the new float32 weights bit for bit", "[mixed]") {
  UNet model(small_unet());
  ParameterSet params(model, 3, Device::CPU, DType::F32);
  params.keep_compute_copy(DType::BF16);
  REQUIRE(params.compute_values().dtype() == DType::BF16);
  require_bf16_of(params);  // the set-up sync
  Adam adam(params, AdamConfig{});
  Ema ema(params, 0.9);
  const Tensor before = params.values().clone();
  params.grads().copy_from(test::randn(params.grads().shape(), 11).to(DType::F32));
  adam.step(1e-2, 1.0, &ema);
  REQUIRE(params.values().to_vector() != before.to_vector());
  require_bf16_of(params);

  // Ties round to the even neighbour: with lr = 0 and zero gradients the weights stay put.
  std::vector<float> ties(static_cast<size_t>(params.values().numel()), 0.0f);
  ties[0] = 1.0f + 1.0f / 256;      // between 1 (even) and 1 + 2^-7: rounds down to 0x3f80
  ties[1] = 1.0f + 3.0f / 256;      // between 1 + 2^-7 and 1 + 2^-6 (even): rounds up to 0x3f82
  ties[2] = -(1.0f + 1.0f / 256);   // sign kept: 0xbf80
  ties[3] = 1.0f + 1.0f / 256 + 1.0f / 65536;  // just above the tie: rounds up to 0x3f81
  params.values().copy_from(Tensor::from_vector(std::vector<double>(ties.begin(), ties.end()),
                                                params.values().shape(), DType::F32));
  params.zero_grad();
  adam.step(0.0, 1.0, &ema);
  const std::vector<uint16_t> copy = bf16_bits(params.compute_values());
  REQUIRE(copy[0] == 0x3f80);
  REQUIRE(copy[1] == 0x3f82);
  REQUIRE(copy[2] == 0xbf80);
  REQUIRE(copy[3] == 0x3f81);
  require_bf16_of(params);
}

TEST_CASE("float64 masters keep a float32 copy that follows Adam, EMA swaps and explicit syncs", "[mixed]") {
  UNet model(small_unet());
  ParameterSet params(model, 3, Device::CPU, DType::F64);
  params.keep_compute_copy(DType::F32);
  auto require_copy_is_rounded_master = [&] {
    REQUIRE(params.compute_values().to_vector() == params.values().to(DType::F32).to_vector());
  };
  require_copy_is_rounded_master();
  Adam adam(params, AdamConfig{});
  Ema ema(params, 0.5);
  params.grads().copy_from(test::randn(params.grads().shape(), 12));
  adam.step(1e-2, 1.0, &ema);
  require_copy_is_rounded_master();
  ema.swap_with(params);  // the live weights become the shadow: the copy must follow
  require_copy_is_rounded_master();
  params.values().copy_from(test::randn(params.values().shape(), 13));
  params.sync_compute_copy();
  require_copy_is_rounded_master();
  REQUIRE_THROWS_WITH(params.keep_compute_copy(DType::F32), Catch::Contains("already"));
  UNet other(small_unet());
  ParameterSet wide(other, 3, Device::CPU, DType::F32);
  REQUIRE_THROWS_WITH(wide.keep_compute_copy(DType::F64), Catch::Contains("narrower"));
}

TEST_CASE("the fold adds the narrow gradients into the masters' and clears them", "[mixed]") {
  const Tensor g = test::randn({40}, 14).to(DType::F32);
  const Tensor master = test::randn({40}, 15);
  Tensor out = master.clone(), in = g.clone();
  backend_for(Device::CPU).accumulate_cast({in, out});
  const std::vector<double> gv = g.to_vector(), mv = master.to_vector(), ov = out.to_vector();
  for (size_t i = 0; i < gv.size(); ++i) REQUIRE(ov[i] == mv[i] + static_cast<double>(static_cast<float>(gv[i])));
  REQUIRE(in.to_vector() == std::vector<double>(40, 0.0));
  // bfloat16 into float32: the float32 sum of the widened value, as convert's backward + deposit did.
  const Tensor gb = g.to(DType::BF16), m32 = master.to(DType::F32);
  Tensor out32 = m32.clone(), inb = gb.clone();
  backend_for(Device::CPU).accumulate_cast({inb, out32});
  const std::vector<double> gbv = gb.to_vector(), m32v = m32.to_vector(), o32 = out32.to_vector();
  for (size_t i = 0; i < gbv.size(); ++i)
    REQUIRE(o32[i] == static_cast<double>(static_cast<float>(m32v[i]) + static_cast<float>(gbv[i])));
  REQUIRE(inb.to_vector() == std::vector<double>(40, 0.0));
  REQUIRE_THROWS_WITH(backend_for(Device::CPU).accumulate_cast({g.clone(), g.clone()}), Catch::Contains("two dtypes"));
}

namespace {
struct RunResult {
  std::vector<double> losses, norms;
  Tensor values, grads, ema, m, v;
  std::vector<int> converts;  // convert nodes in each step's graph
};

// Three training steps of a small UNet with dropout, float64 masters computing in float32, as
// tools/train_step.cpp runs them: forward, loss, zero_grad, backward, fold, clip, Adam + EMA.
RunResult train(bool compute_copy) {
  UNet model(small_unet());
  ParameterSet params(model, 5, Device::CPU, DType::F64);
  // Non-zero values everywhere (the zero-initialized output layers too).
  params.values().copy_from(test::randn(params.values().shape(), 16, 0.2));
  if (compute_copy) params.keep_compute_copy(DType::F32);
  Adam adam(params, AdamConfig{});
  Ema ema(params, 0.9);
  DiffusionConfig dc;
  dc.variance = VarianceType::LearnedRange;
  dc.loss = LossType::Hybrid;
  GaussianDiffusion diffusion(Schedule(BetaSchedule::Linear, 100), dc);
  RunResult r;
  model.train(true);
  for (uint64_t step = 1; step <= 3; ++step) {
    const Tensor x0 = Tensor::uniform({3, 8, 8, 2}, 1, step, -1, 1, DType::F32, Device::CPU);
    const DropoutKey key{3, step};
    ModelFn network = [&](const Tensor& x, const Tensor& t) { return model.forward(x, t, key); };
    Tensor loss = mean(diffusion.training_losses(network, x0, {0, 40, 99}, 5, step).loss);
    r.converts.push_back(count_converts(loss));
    r.losses.push_back(loss.item());
    params.zero_grad();
    backward(loss);
    params.fold_compute_grads();
    if (compute_copy) REQUIRE(params.compute_grads().to_vector() == std::vector<double>(params.compute_grads().numel(), 0.0));
    r.norms.push_back(clip_grad_norm(params, 1.0));
    adam.step(1e-3, 1.0, &ema);
  }
  r.values = params.values().clone();
  r.grads = params.grads().clone();
  r.ema = ema.shadow().clone();
  r.m = adam.first_moment().clone();
  r.v = adam.second_moment().clone();
  return r;
}
}  // namespace

TEST_CASE("training through the compute copy equals the per-layer-cast path bit for bit", "[mixed]") {
  const RunResult cast = train(false), copy = train(true);
  // The same arithmetic in the same order: each weight rounded once to float32 (by the cast, or by
  // Adam's pass), each float32 weight gradient written once and widened into the float64 master
  // gradient (by convert's backward, or by the fold); no parameter is read twice per forward.
  REQUIRE(copy.losses == cast.losses);
  REQUIRE(copy.norms == cast.norms);
  REQUIRE(copy.grads.to_vector() == cast.grads.to_vector());
  REQUIRE(copy.values.to_vector() == cast.values.to_vector());
  REQUIRE(copy.ema.to_vector() == cast.ema.to_vector());
  REQUIRE(copy.m.to_vector() == cast.m.to_vector());
  REQUIRE(copy.v.to_vector() == cast.v.to_vector());
  REQUIRE(cast.values.to_vector() != test::randn(cast.values.shape(), 16, 0.2).to_vector());  // it trained
}

TEST_CASE("the compute copy removes every per-parameter convert from a training step", "[mixed]") {
  UNet probe(small_unet());
  const ParameterSet probe_params(probe, 5, Device::CPU, DType::F64);
  const int parameters = static_cast<int>(probe_params.entries().size());
  const RunResult cast = train(false), copy = train(true);
  for (size_t s = 0; s < cast.converts.size(); ++s) {
    // One convert per parameter tensor per step before (each is a cast forward and one backward).
    REQUIRE(cast.converts[s] - copy.converts[s] == parameters);
    REQUIRE(copy.converts[s] == 0);  // float32 data in: nothing else to convert
  }
}
