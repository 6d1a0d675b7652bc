// The UNet's fused ops (UNetConfig::fused): attention's q/k/v projection as one op (linear_qkv +
// attention_qkv), and the time-embedding add and the dropout inside the second GroupNorm of each
// residual block (group_norm's sample_bias and dropout). The fused UNet gives the same results as the ops they replace (float64,
// forward and every parameter gradient) and makes fewer backend calls per step (counted by
// BackendCallCounter); the new ops' errors. The ops' forward, gradients and GradSlots against
// plain-loop references: the op table (tests/op_cases.cpp).
#include <catch2/catch.hpp>

#include "engine/autograd.h"
#include "engine/backend_call_counter.h"
#include "engine/nn/parameters.h"
#include "engine/ops.h"
#include "models/unet.h"
#include "tests/support.h"

using namespace ddpm;

namespace {
// The small UNet of test_models: attention at 4x4 in down.1 (1 block), the middle (1) and up.1 (2).
UNetConfig small_unet() {
  UNetConfig c;
  c.resolution = 8, c.in_channels = 1, c.out_channels = 2, c.base_channels = 8, c.channel_mult = {1, 2};
  c.num_res_blocks = 1, c.attention_resolutions = {4}, c.heads = 2, c.dropout = 0.1, c.groups = 4;
  return c;
}
constexpr int kAttentionBlocks = 4;
constexpr int kResBlocks = 8;  // down 2 x 1, middle 2, up 2 x 2

struct StepResult {
  std::vector<double> out, grads;
  uint64_t backend_calls = 0;
};

// One training-mode forward (dropout on) and backward of sum(out * w) at random parameters.
StepResult step(bool fuse, DType dtype) {
  UNet model(small_unet());
  model.set_fused(fuse);
  ParameterSet params(model, 3, Device::CPU, dtype);
  params.values().copy_from(test::randn(params.values().shape(), 5, 0.2).to(dtype));
  const Tensor x = test::randn({2, 8, 8, 1}, 1).to(dtype);
  const Tensor t = Tensor::from_vector(std::vector<double>{3, 500}, {2}, dtype);
  const Tensor w = test::randn({2, 8, 8, 2}, 77).to(dtype);
  params.zero_grad();
  StepResult r;
  {
    BackendCallCounter counter;
    const Tensor out = model.forward(x, t, {1, 2});
    backward(sum(mul(out, w)));
    r.backend_calls = counter.calls();
    r.out = out.to_vector();
  }
  r.grads = params.grads().to_vector();
  return r;
}
}  // namespace

TEST_CASE("fused UNet: outputs and gradients equal the unfused ops' (float64)", "[unet-fusion]") {
  const StepResult fused = step(true, DType::F64), unfused = step(false, DType::F64);
  // The same products summed in the same order; a bound far below any structural difference.
  test::require_close(fused.out, unfused.out, 1e-13, 1e-15, "output");
  test::require_close(fused.grads, unfused.grads, 1e-12, 1e-14, "parameter gradients");
  bool nonzero = false;
  for (double g : fused.grads) nonzero = nonzero || g != 0;
  REQUIRE(nonzero);
}

TEST_CASE("fused UNet: float32 stays within float32 rounding of the unfused float32 run", "[unet-fusion]") {
  const StepResult fused = step(true, DType::F32), unfused = step(false, DType::F32);
  test::require_close(fused.out, unfused.out, 1e-5, 1e-6, "output");
  test::require_close(fused.grads, unfused.grads, 1e-4, 1e-5, "parameter gradients");
}

TEST_CASE("fused UNet: fewer backend calls per step, by what each fusion removes", "[unet-fusion][launch-count]") {
  const StepResult fused = step(true, DType::F64), unfused = step(false, DType::F64);
  // Per attention block, unfused: 3 linear forwards + 3 backwards + attention's 2; fused:
  // linear_qkv's 2 + attention's 2. Per residual block, the add's and the dropout's forward and
  // backward go (training mode, dropout 0.1).
  INFO("fused " << fused.backend_calls << ", unfused " << unfused.backend_calls);
  REQUIRE(fused.backend_calls > 0);
  REQUIRE(unfused.backend_calls - fused.backend_calls == 4 * kAttentionBlocks + 4 * kResBlocks);
}

TEST_CASE("BackendCallCounter counts each backend call once and refuses a second live counter", "[launch-count]") {
  const Tensor x = test::randn({3, 4}, 1), w = test::randn({5, 4}, 2);
  BackendCallCounter counter;
  REQUIRE(counter.calls() == 0);
  linear(x, w);
  REQUIRE(counter.calls() == 1);
  add(x, x);
  REQUIRE(counter.calls() == 2);
  REQUIRE_THROWS_WITH(BackendCallCounter(), Catch::Contains("another counter"));
  REQUIRE(cuda_launch_counts().kernels == 0);  // nothing ran on a GPU here (or no CUDA at all)
}

TEST_CASE("linear_qkv and attention_qkv refuse bad inputs with the op and the shapes", "[unet-fusion][errors]") {
  const Tensor x = test::randn({2, 3, 4}, 1), w = test::randn({5, 4}, 2), b = test::randn({5}, 3);
  REQUIRE(linear_qkv(x, {w, w, w}, {b, b, b}).shape() == Shape{3, 2, 3, 5});
  REQUIRE_THROWS_WITH(linear_qkv(x, {w, w, w}, {b, Tensor(), b}),
                      Catch::Contains("linear_qkv") && Catch::Contains("all three biases or none"));
  REQUIRE_THROWS_WITH(linear_qkv(x, {w, test::randn({5, 3}, 4), w}, {}),
                      Catch::Contains("linear_qkv") && Catch::Contains("[5, 3]") && Catch::Contains("[5, 4]"));
  REQUIRE_THROWS_WITH(linear_qkv(test::randn({2, 3}, 5), {w, w, w}, {}),
                      Catch::Contains("linear_qkv") && Catch::Contains("[2, 3]"));
  REQUIRE_THROWS_WITH(linear_qkv(x, {w, w, w}, {b, b, test::randn({4}, 6)}),
                      Catch::Contains("linear_qkv") && Catch::Contains("[4]"));
  REQUIRE_THROWS_WITH(attention_qkv(test::randn({2, 2, 3, 4}, 7), 1),
                      Catch::Contains("attention_qkv") && Catch::Contains("[2, 2, 3, 4]"));
  REQUIRE_THROWS_WITH(attention_qkv(test::randn({3, 2, 3, 4}, 8), 3),
                      Catch::Contains("attention_qkv") && Catch::Contains("3 heads"));
}

TEST_CASE("group_norm refuses a sample bias of the wrong shape and dropout p outside [0, 1)", "[unet-fusion][errors]") {
  const Tensor x = test::randn({2, 3, 3, 4}, 1), c4 = Tensor::ones({4}, DType::F64);
  REQUIRE_THROWS_WITH(group_norm(x, c4, c4, 2, 1e-5, false, test::randn({2, 3}, 2)),
                      Catch::Contains("group_norm") && Catch::Contains("sample_bias") && Catch::Contains("[2, 3]") &&
                          Catch::Contains("[2, 4]"));
  REQUIRE_THROWS_WITH(group_norm(x, c4, c4, 2, 1e-5, false, {}, DropoutMask{1.0, 1, 2, 0}),
                      Catch::Contains("group_norm") && Catch::Contains("dropout p"));
}
