// The UNet's fused ops on CUDA beyond the op table: linear_qkv's two weight paths (read in place at
// a uniform spacing, as the float32 master weights lie; packed into scratch otherwise) against the
// CPU in float64, and a whole UNet training step fused against unfused on the GPU.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "diffusion/gaussian_diffusion.h"
#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/nn/parameters.h"
#include "engine/ops.h"
#include "models/unet.h"
#include "tests/gpu/parity.h"
#include "tests/gpu/small_unet.h"

using namespace ddpm;

namespace {
// A [rows, cols] view at element `offset` of buffer (no graph).
Tensor view_at(const Tensor& buffer, const Shape& shape, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = buffer.impl().storage;
  impl->offset = buffer.impl().offset + static_cast<size_t>(offset) * dtype_size(buffer.dtype());
  impl->shape = shape;
  impl->dtype = buffer.dtype();
  impl->device = buffer.device();
  return Tensor(std::move(impl));
}

// linear_qkv forward and backward (every slot written) with the three CUDA weights at element
// offsets {0, o1, o2} of one buffer, against the CPU in float64.
void check_linear_qkv(DType dt, int64_t o1, int64_t o2, const std::string& what) {
  const int64_t m = 37, n = 24, k = 40;  // x [37, 40] -> [3, 37, 24]
  const test::In x = test::input(test::randn({m, k}, 1), dt);
  std::vector<test::In> w, b;
  for (int g = 0; g < 3; ++g) {
    w.push_back(test::input(test::randn({n, k}, 10 + static_cast<uint64_t>(g), 0.3), dt));
    b.push_back(test::input(test::randn({n}, 20 + static_cast<uint64_t>(g)), dt));
  }
  const Tensor buffer = Tensor::zeros({o2 + n * k}, dt, Device::CUDA);
  const int64_t offsets[3] = {0, o1, o2};
  Tensor wg[3];
  for (int g = 0; g < 3; ++g) {
    wg[g] = view_at(buffer, {n, k}, offsets[g]);
    wg[g].copy_from(w[static_cast<size_t>(g)].gpu);
  }
  const double bound = dt == DType::F32 ? test::kBoundF32 : test::kBoundBF16;
  Backend &cpu = cpu_backend(), &gpu = cuda_backend();

  test::Out out = test::output({3, m, n}, dt);
  cpu.linear_qkv_forward({x.cpu, {w[0].cpu, w[1].cpu, w[2].cpu}, {b[0].cpu, b[1].cpu, b[2].cpu}, out.cpu});
  gpu.linear_qkv_forward({x.gpu, {wg[0], wg[1], wg[2]}, {b[0].gpu, b[1].gpu, b[2].gpu}, out.gpu.tensor});
  test::require_parity(out.gpu, out.cpu, bound, what + " forward");

  const test::In g = test::input(test::randn({3, m, n}, 30), dt);
  test::Out dx = test::output({m, k}, dt);
  std::vector<test::Out> dw, db;
  for (int j = 0; j < 3; ++j) {
    dw.push_back(test::output({n, k}, dt, j == 1, 40 + static_cast<uint64_t>(j)));  // k's slots accumulate
    db.push_back(test::output({n}, dt, j == 1, 50 + static_cast<uint64_t>(j)));
  }
  cpu.linear_qkv_backward({g.cpu, x.cpu, {w[0].cpu, w[1].cpu, w[2].cpu}, dx.cpu_slot(),
                           {dw[0].cpu_slot(), dw[1].cpu_slot(), dw[2].cpu_slot()},
                           {db[0].cpu_slot(), db[1].cpu_slot(), db[2].cpu_slot()}});
  gpu.linear_qkv_backward({g.gpu, x.gpu, {wg[0], wg[1], wg[2]}, dx.gpu_slot(),
                           {dw[0].gpu_slot(), dw[1].gpu_slot(), dw[2].gpu_slot()},
                           {db[0].gpu_slot(), db[1].gpu_slot(), db[2].gpu_slot()}});
  test::require_parity(dx.gpu, dx.cpu, bound, what + " dx");
  for (size_t j = 0; j < 3; ++j) {
    test::require_parity(dw[j].gpu, dw[j].cpu, bound, what + " dW " + std::to_string(j));
    test::require_parity(db[j].gpu, db[j].cpu, bound, what + " db " + std::to_string(j));
  }
}

// Loss and parameter gradients of one training step of a small UNet on CUDA (float32).
std::pair<double, Tensor> cuda_step(bool fused) {
  UNet model(test::small_gpu_unet(3));
  model.set_fused(fused);
  ParameterSet params(model, 7, Device::CUDA);
  params.values().copy_from(test::randn(params.values().shape(), 5, 0.1).to(DType::F32).to(Device::CUDA));
  GaussianDiffusion diffusion(Schedule(BetaSchedule::Linear, 1000), DiffusionConfig{});
  const Tensor x0 = Tensor::uniform({4, 16, 16, 3}, 1, 2, -1, 1, DType::F32, Device::CUDA);
  ModelFn network = [&](const Tensor& x, const Tensor& t) { return model.forward(x, t, {3, 4}); };
  Tensor loss = mean(diffusion.training_losses(network, x0, {0, 10, 500, 999}, 5, 6).loss);
  params.zero_grad();
  backward(loss);
  return {loss.item(), params.grads().to(Device::CPU)};
}
}  // namespace

TEST_CASE("linear_qkv on CUDA: weights read in place and packed both match the CPU", "[gpu][fusion]") {
  const int64_t matrix = 24 * 40, spacing = matrix + 32;  // the padded spacing of a flat buffer
  for (DType dt : {DType::F32, DType::BF16}) {
    check_linear_qkv(dt, spacing, 2 * spacing, std::string("in place ") + dtype_name(dt));
    check_linear_qkv(dt, spacing, 3 * spacing, std::string("packed ") + dtype_name(dt));  // not uniform
  }
}

TEST_CASE("a UNet training step on CUDA: fused ops equal the unfused ones", "[gpu][fusion]") {
  const auto fused = cuda_step(true), unfused = cuda_step(false);
  // float32 with different summation orders (one batched GEMM against three, GroupNorm's bias sum
  // against a separate add): the loss to 1e-5 relative, gradients to 1e-4 of their largest magnitude.
  REQUIRE(fused.first == Approx(unfused.first).epsilon(1e-5));
  const double error = test::normalized_error(fused.second, unfused.second);
  INFO("gradient normalized error " << error);
  REQUIRE(error <= 1e-4);
}
