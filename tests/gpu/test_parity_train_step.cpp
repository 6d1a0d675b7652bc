// One whole training step of a small UNet (forward, loss, backward, Adam + EMA) from the same seed
// on the CPU and on CUDA, float32 on both: the loss, every gradient and the updated weights agree.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <vector>

#include "diffusion/gaussian_diffusion.h"
#include "engine/autograd.h"
#include "engine/nn/parameters.h"
#include "engine/ops.h"
#include "engine/optim/adam.h"
#include "engine/optim/ema.h"
#include "models/unet.h"
#include "tests/gpu/parity.h"
#include "tests/gpu/small_unet.h"

using namespace ddpm;

namespace {
struct StepResult {
  double loss;
  Tensor grads, params, ema;  // CPU copies
};

StepResult one_step(Device device, bool bfloat16 = false) {
  UNet model(test::small_gpu_unet(6));
  ParameterSet params(model, 7, device);  // Philox initialization: identical on both devices
  Adam adam(params, AdamConfig{});
  Ema ema(params, 0.9);
  DiffusionConfig dc;
  dc.variance = VarianceType::LearnedRange;
  dc.loss = LossType::Hybrid;
  GaussianDiffusion diffusion(Schedule(BetaSchedule::Linear, 1000), dc);
  const Tensor x0 = Tensor::uniform({4, 16, 16, 3}, 1, 2, -1, 1, DType::F32, device);
  const DropoutKey key{3, 4};
  ModelFn network = [&](const Tensor& x, const Tensor& t) { return model.forward(x, t, key); };
  if (bfloat16)  // as tools/factories.cpp's in_bfloat16: the layers compute in bfloat16
    network = [inner = network](const Tensor& x, const Tensor& t) {
      return convert(inner(convert(x, DType::BF16), t), DType::F32);
    };
  auto losses = diffusion.training_losses(network, x0, {0, 10, 500, 999}, 5, 6);
  Tensor loss = mean(losses.loss);
  params.zero_grad();
  backward(loss);
  StepResult r{loss.item(), params.grads().to(Device::CPU), {}, {}};
  clip_grad_norm(params, 1.0);
  adam.step(1e-3, 1.0, &ema);
  r.params = params.values().to(Device::CPU);
  r.ema = ema.shadow().to(Device::CPU);
  return r;
}
}  // namespace

TEST_CASE("a whole UNet training step agrees between the CPU and CUDA", "[gpu][train_step]") {
  const StepResult cpu = one_step(Device::CPU), gpu = one_step(Device::CUDA);
  // float32 on both sides with different summation orders (BLAS vs custom kernels, tree
  // reductions): the loss to 1e-4 relative, gradients to 1e-3 of their largest magnitude, and the
  // weights after Adam to 1e-5 of theirs (Adam normalizes the step, so weight errors stay small).
  INFO("loss cpu " << cpu.loss << " gpu " << gpu.loss);
  REQUIRE(gpu.loss == Approx(cpu.loss).epsilon(1e-4));
  const double grad_error = test::normalized_error(gpu.grads, cpu.grads);
  INFO("gradient normalized error " << grad_error);
  REQUIRE(grad_error <= 1e-3);
  REQUIRE(test::normalized_error(gpu.params, cpu.params) <= 1e-5);
  REQUIRE(test::normalized_error(gpu.ema, cpu.ema) <= 1e-5);
}

TEST_CASE("a mixed-precision (bfloat16) UNet step stays close to the float32 CPU step", "[gpu][train_step]") {
  const StepResult cpu = one_step(Device::CPU), gpu = one_step(Device::CUDA, true);
  // bfloat16 activations keep 8 significand bits: the loss to 2%, gradients to 5% of their largest
  // magnitude.
  INFO("loss cpu " << cpu.loss << " gpu bf16 " << gpu.loss);
  REQUIRE(gpu.loss == Approx(cpu.loss).epsilon(2e-2));
  const double grad_error = test::normalized_error(gpu.grads, cpu.grads);
  INFO("gradient normalized error " << grad_error);
  REQUIRE(grad_error <= 5e-2);
  // Adam's first step is lr g / (|g| + eps) (m_hat = g, v_hat = g^2): lr sign(g) for |g| >> eps,
  // whatever the gradient's size. Where the float32 gradient is smaller than the bfloat16 step's
  // gradient error its sign may flip, and the weights then differ by up to 2 lr (2e-3 of max|w| ~ 1
  // on 2026-11-30). So: every weight within 2 lr (+ float32 rounding) of the CPU's, and where the
  // gradient is clearly larger than that error (|g| > 4 grad_error max|g|) its update agrees to
  // 1e-3 lr (the clipping scale cancels in Adam's ratio; eps / |g| is what remains).
  const std::vector<double> g = cpu.grads.to_vector(), w_cpu = cpu.params.to_vector(), w_gpu = gpu.params.to_vector();
  double g_max = 0;
  for (double v : g) g_max = std::max(g_max, std::fabs(v));
  const double lr = 1e-3, sure = 4 * grad_error * g_max;
  for (size_t i = 0; i < g.size(); ++i) {
    const double diff = std::fabs(w_gpu[i] - w_cpu[i]), ulp = std::ldexp(std::fabs(w_cpu[i]) + lr, -22);
    INFO("weight " << i << ": cpu " << w_cpu[i] << ", gpu " << w_gpu[i] << ", cpu gradient " << g[i]);
    if (diff > 2 * lr + ulp) REQUIRE(false);
    if (std::fabs(g[i]) > sure && diff > 1e-3 * lr + ulp) REQUIRE(false);
  }
}
