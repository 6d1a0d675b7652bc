// bfloat16 mixed precision on CUDA through ParameterSet's compute copy: the Adam + EMA kernel's
// bfloat16 copy against the host's round-to-nearest-even and the CPU twin, the gradient fold
// against the CPU, and run-to-run determinism of a few mixed-precision training steps with dropout
// and random flips (the path of tools/train_step.cpp).
#include <catch2/catch.hpp>

#include <cstring>
#include <vector>

#include "diffusion/gaussian_diffusion.h"
#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/nn/parameters.h"
#include "engine/ops.h"
#include "engine/optim/adam.h"
#include "engine/optim/ema.h"
#include "kernels/cuda/conv2d_impl.h"
#include "models/unet.h"
#include "tests/gpu/small_unet.h"
#include "tests/support.h"
#include "tools/data/dataset.h"

using namespace ddpm;

namespace {
std::vector<uint16_t> bf16_bits(const Tensor& t) {
  const Tensor host = t.to(Device::CPU);
  std::vector<uint16_t> out(static_cast<size_t>(host.numel()));
  std::memcpy(out.data(), host.raw(), host.nbytes());
  return out;
}

std::vector<float> floats(const Tensor& t) {
  const Tensor host = t.to(Device::CPU);
  std::vector<float> out(static_cast<size_t>(host.numel()));
  std::memcpy(out.data(), host.raw(), host.nbytes());
  return out;
}

}  // namespace

TEST_CASE("CUDA Adam + EMA writes the bfloat16 copy of its new weights bit for bit, as the CPU twin does",
          "[gpu][mixed]") {
  UNet gpu_model(test::small_gpu_unet(6)), cpu_model(test::small_gpu_unet(6));
  ParameterSet gpu(gpu_model, 7, Device::CUDA), cpu(cpu_model, 7, Device::CPU);
  gpu.keep_compute_copy(DType::BF16);
  cpu.keep_compute_copy(DType::BF16);
  // Philox initialization is bit-identical on both devices, so the set-up casts must be too.
  REQUIRE(test::float32_bits(gpu.values()) == test::float32_bits(cpu.values()));
  REQUIRE(bf16_bits(gpu.compute_values()) == bf16_bits(cpu.compute_values()));
  Adam gpu_adam(gpu, AdamConfig{}), cpu_adam(cpu, AdamConfig{});
  Ema gpu_ema(gpu, 0.9), cpu_ema(cpu, 0.9);
  const Tensor g = test::randn(gpu.grads().shape(), 21).to(DType::F32);
  for (int step = 0; step < 3; ++step) {
    gpu.grads().copy_from(g.to(Device::CUDA));
    cpu.grads().copy_from(g);
    gpu_adam.step(1e-2, 0.5, &gpu_ema);
    cpu_adam.step(1e-2, 0.5, &cpu_ema);
  }
  // (1) The CUDA copy is exactly the host's round-to-nearest-even of the CUDA float32 weights.
  const std::vector<float> gpu_w = floats(gpu.values()), cpu_w = floats(cpu.values());
  const std::vector<uint16_t> gpu_copy = bf16_bits(gpu.compute_values()), cpu_copy = bf16_bits(cpu.compute_values());
  size_t off_rounding = 0, differ_on_same_weight = 0, same_weight = 0;
  for (size_t i = 0; i < gpu_w.size(); ++i) {
    off_rounding += gpu_copy[i] != float_to_bf16_bits(gpu_w[i]);
    // (2) Where the two devices' float32 weights agree bit for bit (the CUDA update is float32
    // math, the CPU's double, so a few ulps may differ), their bfloat16 copies agree bit for bit.
    if (std::memcmp(&gpu_w[i], &cpu_w[i], 4) == 0) {
      ++same_weight;
      differ_on_same_weight += gpu_copy[i] != cpu_copy[i];
    }
  }
  REQUIRE(off_rounding == 0);
  REQUIRE(differ_on_same_weight == 0);
  REQUIRE(same_weight > gpu_w.size() / 4);  // the comparison covers many weights
  test::require_close(gpu.values().to(Device::CPU).to_vector(), cpu.values().to_vector(), 1e-5, 1e-7, "weights");
}

TEST_CASE("CUDA's gradient fold equals the CPU's bit for bit and clears the bfloat16 gradients", "[gpu][mixed]") {
  const Tensor in = test::randn({1000}, 22).to(DType::BF16), out = test::randn({1000}, 23).to(DType::F32);
  Tensor gpu_in = in.to(Device::CUDA), gpu_out = out.to(Device::CUDA);
  Tensor cpu_in = in.clone(), cpu_out = out.clone();
  backend_for(Device::CUDA).accumulate_cast({gpu_in, gpu_out});
  backend_for(Device::CPU).accumulate_cast({cpu_in, cpu_out});
  REQUIRE(test::float32_bits(gpu_out) == test::float32_bits(cpu_out));
  REQUIRE(bf16_bits(gpu_in) == std::vector<uint16_t>(1000, 0));
}

namespace {
struct Run {
  std::vector<double> losses, norms;
  std::vector<uint32_t> weights, ema, m, v;
  std::vector<uint16_t> copy;
};

// A few mixed-precision steps as tools/train_step.cpp takes them: flipped batches, dropout,
// bfloat16 layers over the compute copy, the fold, clipping and the fused Adam + EMA + copy.
Run train_mixed() {
  UNet model(test::small_gpu_unet(6));
  ParameterSet params(model, 7, Device::CUDA);
  Adam adam(params, AdamConfig{});
  Ema ema(params, 0.9);
  params.keep_compute_copy(DType::BF16);
  DiffusionConfig dc;
  dc.variance = VarianceType::LearnedRange;
  dc.loss = LossType::Hybrid;
  GaussianDiffusion diffusion(Schedule(BetaSchedule::Linear, 1000), dc);
  ImageSet data;
  data.images = Tensor::uniform({8, 16, 16, 3}, 9, 1, -1, 1, DType::F32, Device::CPU);
  model.train(true);
  Run r;
  for (uint64_t step = 1; step <= 3; ++step) {
    const Tensor x0 = gather_batch(data, {0, 3, 5, 6}, true, 11, step).to(Device::CUDA);
    const DropoutKey key{12, step};
    ModelFn network = [&](const Tensor& x, const Tensor& t) {
      return convert(model.forward(convert(x, DType::BF16), t, key), DType::F32);  // as in_bfloat16
    };
    Tensor loss = mean(diffusion.training_losses(network, x0, {1, 200, 600, 999}, 13, step).loss);
    r.losses.push_back(loss.item());
    params.zero_grad();
    backward(loss);
    params.fold_compute_grads();
    r.norms.push_back(clip_grad_norm(params, 1.0));
    adam.step(1e-3, 1.0, &ema);
  }
  r.weights = test::float32_bits(params.values());
  r.ema = test::float32_bits(ema.shadow());
  r.m = test::float32_bits(adam.first_moment());
  r.v = test::float32_bits(adam.second_moment());
  r.copy = bf16_bits(params.compute_values());
  return r;
}

void require_identical(const Run& a, const Run& b) {
  REQUIRE(a.losses == b.losses);
  REQUIRE(a.norms == b.norms);
  REQUIRE(a.weights == b.weights);
  REQUIRE(a.ema == b.ema);
  REQUIRE(a.m == b.m);
  REQUIRE(a.v == b.v);
  REQUIRE(a.copy == b.copy);
}
}  // namespace

// train.deterministic (the default) on the cuDNN path: only algorithms with a fixed summation
// order, so the promise holds with conv_impl = cudnn too. (false may pick atomics: not asserted.)
TEST_CASE("two runs with cuDNN convolutions and train.deterministic are bit-identical", "[gpu][mixed]") {
  cuda::set_conv2d_impl(cuda::ConvImpl::Cudnn);
  cuda::set_conv2d_deterministic(true);
  const Run a = train_mixed(), b = train_mixed();
  cuda::set_conv2d_impl(cuda::ConvImpl::Custom);
  require_identical(a, b);
}

TEST_CASE("two mixed-precision CUDA runs from the same seed are bit-identical", "[gpu][mixed]") {
  const Run a = train_mixed(), b = train_mixed();
  require_identical(a, b);
  for (size_t i = 0; i < a.weights.size(); i += 97) {  // and the copy follows the trained weights
    float w;
    std::memcpy(&w, &a.weights[i], 4);
    REQUIRE(a.copy[i] == float_to_bf16_bits(w));
  }
}
