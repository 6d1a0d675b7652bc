// Tensor creation, copies, conversions and errors.
#include <catch2/catch.hpp>

#include "engine/backend.h"
#include "engine/tensor.h"

using namespace ddpm;

TEST_CASE("creation helpers fill the right values", "[tensor]") {
  REQUIRE(Tensor::zeros({2, 3}).to_vector() == std::vector<double>(6, 0.0));
  REQUIRE(Tensor::ones({4}, DType::F64).to_vector() == std::vector<double>(4, 1.0));
  REQUIRE(Tensor::full({2}, -2.5).to_vector() == std::vector<double>{-2.5, -2.5});
  Tensor t = Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  REQUIRE(t.dtype() == DType::F32);
  REQUIRE(t.dim(-1) == 3);
  REQUIRE(t.describe() == "float32[2, 3] on cpu");
  REQUIRE(Tensor::zeros({}).numel() == 1);
  REQUIRE_THROWS_WITH(Tensor::from_vector(std::vector<float>{1, 2}, {3}), Catch::Contains("[3]"));
  REQUIRE_THROWS_WITH(t.dim(2), Catch::Contains("out of range"));
  REQUIRE_THROWS_WITH(t.data<double>(), Catch::Contains("float32"));
}

TEST_CASE("clone copies storage; detach shares it", "[tensor]") {
  Tensor t = Tensor::from_vector(std::vector<double>{1, 2, 3}, {3}, DType::F64);
  Tensor c = t.clone(), d = t.detach();
  t.data<double>()[0] = 9;
  REQUIRE(c.to_vector()[0] == 1);
  REQUIRE(d.to_vector()[0] == 9);
}

TEST_CASE("dtype conversions round trip; bfloat16 rounds to nearest even", "[tensor]") {
  std::vector<double> values{1.0, -2.5, 3.140625, 1e-3, 65504.0};
  Tensor t = Tensor::from_vector(values, {5}, DType::F64);
  REQUIRE(t.to(DType::F32).to(DType::F64).to_vector() == std::vector<double>{1.0, -2.5, 3.140625,
                                                                             static_cast<float>(1e-3), 65504.0});
  // bfloat16 keeps 8 significand bits: 1 + 2^-8 is a tie and rounds to even (1.0); 1 + 3 * 2^-8 -> 1 + 2^-6.
  Tensor ties = Tensor::from_vector(std::vector<double>{1.0 + 1.0 / 256, 1.0 + 3.0 / 256, -2.5}, {3}, DType::F64);
  REQUIRE(ties.to(DType::BF16).to_vector() == std::vector<double>{1.0, 1.0 + 4.0 / 256, -2.5});
  REQUIRE(float_to_bf16_bits(1.0f) == 0x3f80);
}

TEST_CASE("CUDA tensors work where a GPU is available; elsewhere asking for one explains", "[tensor][cuda]") {
  if (cuda_available()) {  // a CUDA build on a GPU machine: a round trip keeps the values
    const Tensor t = Tensor::from_vector(std::vector<float>{1.5f, -2.0f}, {2});
    const Tensor on_gpu = t.to(Device::CUDA);
    REQUIRE(on_gpu.device() == Device::CUDA);
    REQUIRE(on_gpu.to(Device::CPU).to_vector() == t.to_vector());
  } else {
    REQUIRE_THROWS_WITH(Tensor::zeros({2}, DType::F32, Device::CUDA), Catch::Contains("CUDA"));
  }
}
