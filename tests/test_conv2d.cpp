// conv2d (NHWC, im2col + GEMM on the CPU): chunked im2col, the Conv2d module, shape errors.
// Forward against the loop nest, gradients and GradSlots for square and rectangular kernels,
// four-sided padding and both dx paths: the op table (tests/op_cases.cpp, tests/test_op_table.cpp).
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/nn/layers.h"
#include "engine/nn/parameters.h"
#include "engine/ops.h"
#include "kernels/cpu/conv2d.h"
#include "tests/op_references.h"
#include "tests/support.h"


namespace {

using ddpm::DType;
using ddpm::Shape;
using ddpm::Tensor;

Tensor nan_like(const Tensor& t) {
  return Tensor::full(t.shape(), std::numeric_limits<double>::quiet_NaN(), t.dtype());
}

}  // namespace

TEST_CASE("conv2d splits the batch into im2col chunks without changing the result", "[conv2d]") {
  ddpm::Backend& cpu = ddpm::cpu_backend();
  const int stride = 1, pad = 1;
  // Batch 5 with a 3x3x3 kernel: one sample's column matrix is 5*7*27 doubles = 7560 bytes.
  Tensor x = ddpm::test::randn({5, 5, 7, 3}, 51), w = ddpm::test::randn({4, 3, 3, 3}, 52, 0.3),
         b = ddpm::test::randn({4}, 53);
  auto run = [&](int64_t chunk_bytes) {
    const int64_t previous = ddpm::cpu::set_conv2d_chunk_bytes(chunk_bytes);
    Tensor out = ddpm::conv2d(x, w, b, stride, pad);
    Tensor g = ddpm::test::randn(out.shape(), 54);
    Tensor dx = nan_like(x), dw = nan_like(w), db = nan_like(b);
    cpu.conv2d_backward({g, x, w, stride, pad, {dx, false}, {dw, false}, {db, false}});
    ddpm::cpu::set_conv2d_chunk_bytes(previous);
    return std::vector<std::vector<double>>{out.to_vector(), dx.to_vector(), dw.to_vector(), db.to_vector()};
  };
  const auto whole = run(0);             // the default bound: one chunk
  const auto pairs = run(2 * 7560);      // chunks of 2, 2, 1 samples
  const auto singles = run(1);           // below one sample: still one sample per chunk
  ddpm::test::require_close(whole[0], ddpm::test::ref::conv2d(x, w, b, stride, pad),
                            1e-12, 1e-12, "unchunked forward");
  const char* what[] = {"forward", "grad x", "grad weight", "grad bias"};
  for (size_t i = 0; i < whole.size(); ++i) {
    ddpm::test::require_close(pairs[i], whole[i], 1e-12, 1e-12, std::string("chunks of 2: ") + what[i]);
    ddpm::test::require_close(singles[i], whole[i], 1e-12, 1e-12, std::string("chunks of 1: ") + what[i]);
  }
}

TEST_CASE("conv2d rejects mismatched shapes with messages that name the op and shapes", "[conv2d]") {
  Tensor x = Tensor::zeros({2, 5, 7, 3}), w = Tensor::zeros({4, 3, 3, 3});
  using Catch::Contains;

  Tensor w_wrong_cin = Tensor::zeros({4, 3, 3, 2});
  REQUIRE_THROWS_AS(ddpm::conv2d(x, w_wrong_cin), ddpm::Error);
  REQUIRE_THROWS_WITH(ddpm::conv2d(x, w_wrong_cin), Contains("conv2d") && Contains("[2, 5, 7, 3]") &&
                                                         Contains("[4, 3, 3, 2]") && Contains("channels"));

  Tensor x_rank3 = Tensor::zeros({5, 7, 3});
  REQUIRE_THROWS_AS(ddpm::conv2d(x_rank3, w), ddpm::Error);
  REQUIRE_THROWS_WITH(ddpm::conv2d(x_rank3, w),
                      Contains("conv2d") && Contains("[5, 7, 3]") && Contains("[N,H,W,Cin]"));

  Tensor b_wrong = Tensor::zeros({3});
  REQUIRE_THROWS_AS(ddpm::conv2d(x, w, b_wrong), ddpm::Error);
  REQUIRE_THROWS_WITH(ddpm::conv2d(x, w, b_wrong), Contains("conv2d") && Contains("bias") &&
                                                       Contains("[4]") && Contains("[3]"));
}


TEST_CASE("Conv2d module takes rectangular kernels, four-sided padding and no bias", "[conv2d]") {
  ddpm::Conv2dOptions options;
  options.kernel_h = 1;
  options.kernel_w = 7;
  options.pad = ddpm::Pad2d(0, 0, 3, 3);
  options.bias = false;
  ddpm::Conv2d conv(5, 6, options);
  ddpm::ParameterSet params(conv, 7, ddpm::Device::CPU, DType::F64);
  REQUIRE(params.count() == 6 * 1 * 7 * 5);  // the weight only
  Tensor x = ddpm::test::randn({1, 4, 9, 5}, 81);
  Tensor out = conv.forward(x);
  REQUIRE(out.shape() == Shape{1, 4, 9, 6});
  ddpm::test::require_close(out.to_vector(),
                            ddpm::test::ref::conv2d(x, params.find("weight").value, Tensor(), 1, options.pad),
                            1e-12, 1e-12, "Conv2d 1x7 module");
}

TEST_CASE("conv2d rejects negative padding", "[conv2d]") {
  Tensor x = Tensor::zeros({1, 5, 7, 3}), w = Tensor::zeros({4, 3, 3, 3});
  REQUIRE_THROWS_WITH(ddpm::conv2d(x, w, Tensor(), 1, ddpm::Pad2d(0, -1, 0, 0)),
                      Catch::Contains("conv2d") && Catch::Contains("pad") && Catch::Contains("bottom -1"));
}
