// Differentiable dtype conversion and the mixed-precision path it enables: master weights in a
// wide type feed layers that compute in a narrower one. On the CPU this is float64 masters with
// float32 compute; CUDA's bfloat16 case is in tests/gpu/test_parity_train_step.cpp.
#include <catch2/catch.hpp>

#include "engine/autograd.h"
#include "engine/nn/parameters.h"
#include "engine/ops.h"
#include "models/unet.h"
#include "tests/support.h"

using namespace ddpm;

TEST_CASE("convert rounds forward and carries the gradient back into the source dtype", "[mixed]") {
  Tensor x = test::randn({3, 5}, 1).set_requires_grad(true);
  Tensor y = convert(x, DType::F32);
  REQUIRE(y.dtype() == DType::F32);
  REQUIRE(y.to_vector() == x.to(DType::F32).to_vector());
  REQUIRE(convert(x, DType::F64).same(x));  // nothing to do: the same tensor
  Tensor w = test::randn({3, 5}, 2).to(DType::F32);
  backward(sum(mul(y, w)));
  REQUIRE(x.grad().dtype() == DType::F64);
  REQUIRE(x.grad().to_vector() == w.to_vector());
  // A second use accumulates, in the master's dtype.
  backward(sum(mul(convert(x, DType::F32), w)));
  std::vector<double> twice = w.to_vector();
  for (double& v : twice) v *= 2;
  REQUIRE(x.grad().to_vector() == twice);
}

TEST_CASE("a UNet with float64 master weights computing in float32 matches a float32 UNet", "[mixed]") {
  UNetConfig c;
  c.resolution = 8, c.in_channels = 1, c.out_channels = 1, c.base_channels = 8, c.channel_mult = {1, 2};
  c.num_res_blocks = 1, c.attention_resolutions = {4}, c.heads = 2, c.dropout = 0.0, c.groups = 4;
  UNet mixed_model(c), plain_model(c);
  ParameterSet master(mixed_model, 9, Device::CPU, DType::F64), plain(plain_model, 9, Device::CPU, DType::F32);
  // Give the zero-initialized layers values too, identical in both (float32-representable).
  const Tensor values = test::randn(plain.values().shape(), 3, 0.2).to(DType::F32);
  plain.values().copy_from(values);
  master.values().copy_from(values.to(DType::F64));
  const Tensor x = test::randn({2, 8, 8, 1}, 4).to(DType::F32);
  const Tensor t = Tensor::from_vector(std::vector<float>{7, 900}, {2});
  const Tensor w = test::randn({2, 8, 8, 1}, 5).to(DType::F32);
  Tensor y_mixed = mixed_model.forward(x, t, {}), y_plain = plain_model.forward(x, t, {});
  REQUIRE(y_mixed.dtype() == DType::F32);
  REQUIRE(y_mixed.to_vector() == y_plain.to_vector());  // the same float32 arithmetic
  backward(sum(mul(y_mixed, w)));
  backward(sum(mul(y_plain, w)));
  REQUIRE(master.grads().dtype() == DType::F64);
  // Each parameter's float32 gradient contributions, summed in float64 instead of float32.
  test::require_close(master.grads().to_vector(), plain.grads().to_vector(), 1e-5, 1e-7, "master gradients");
}
