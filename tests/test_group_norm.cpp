// group_norm: the saved statistics against the plain-loop reference, float32 over multi-block
// samples, float32 stability at a large mean, shape errors. Forward, gradients and GradSlots for
// small shapes: the op table (tests/op_cases.cpp, tests/test_op_table.cpp).
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <string>

#include "engine/backend.h"
#include "engine/ops.h"
#include "engine/op_args.h"
#include "tests/op_references.h"
#include "tests/support.h"

namespace {

using ddpm::DType;
using ddpm::Shape;
using ddpm::Tensor;

struct Config {
  Shape shape;
  int groups;
  bool fuse_silu;
};

// The configurations every check runs on: NHWC maps, a rank-2 input, one group, one channel per group.
const Config kConfigs[] = {
    {{2, 3, 5, 8}, 4, false}, {{2, 3, 5, 8}, 4, true}, {{3, 6}, 2, false}, {{3, 6}, 3, true},
    {{2, 3, 5, 8}, 1, false}, {{2, 3, 5, 8}, 8, true}, {{2, 4, 6}, 6, false},
};

std::string describe(const Config& cfg) {
  return "x " + ddpm::shape_str(cfg.shape) + ", " + std::to_string(cfg.groups) + " groups" +
         (cfg.fuse_silu ? ", fused SiLU" : "");
}

struct Inputs {
  Tensor x, gamma, beta;
};

Inputs make_inputs(const Shape& shape, uint64_t stream) {
  const int64_t c = shape.back();
  // A non-zero mean and gamma away from zero, so that every term of the gradient matters.
  Tensor x = ddpm::add(ddpm::test::randn(shape, stream, 2.0), Tensor::full({c}, 0.7, DType::F64));
  Tensor gamma = ddpm::add(ddpm::test::randn({c}, stream + 1, 0.5), Tensor::ones({c}, DType::F64));
  Tensor beta = ddpm::test::randn({c}, stream + 2, 0.5);
  return {x, gamma, beta};
}

}  // namespace

TEST_CASE("group_norm forward matches a float64 reference", "[group_norm]") {
  const double eps = 1e-5;
  uint64_t stream = 10;
  for (const Config& cfg : kConfigs) {
    INFO(describe(cfg));
    Inputs in = make_inputs(cfg.shape, stream += 3);
    ddpm::test::ref::GroupNormResult ref = ddpm::test::ref::group_norm(in.x, in.gamma, in.beta,
                                         cfg.groups, eps, cfg.fuse_silu);
    Tensor out = ddpm::group_norm(in.x, in.gamma, in.beta, cfg.groups, eps, cfg.fuse_silu);
    REQUIRE(out.shape() == cfg.shape);
    ddpm::test::require_close(out.to_vector(), ref.out, 1e-12, 1e-12, "group_norm output");

    // The saved statistics are part of the backend contract (the backward and CUDA parity use them).
    const int64_t n = cfg.shape.front();
    Tensor direct = Tensor::empty(cfg.shape, DType::F64);
    Tensor mean = Tensor::empty({n, cfg.groups}, DType::F64), rstd = Tensor::empty({n, cfg.groups}, DType::F64);
    ddpm::backend_for(ddpm::Device::CPU)
        .group_norm_forward({in.x, in.gamma, in.beta, direct, mean, rstd, cfg.groups, eps, cfg.fuse_silu});
    ddpm::test::require_close(mean.to_vector(), ref.mean, 1e-12, 1e-12, "saved mean");
    ddpm::test::require_close(rstd.to_vector(), ref.rstd, 1e-12, 1e-12, "saved rstd");
    REQUIRE(direct.to_vector() == out.to_vector());
  }
}

TEST_CASE("group_norm float32 matches the float64 reference", "[group_norm]") {
  for (bool fuse_silu : {false, true}) {
    INFO("fused SiLU " << fuse_silu);
    // 32K elements per sample: the reductions split each sample into several row blocks, and
    // every pass runs on multiple threads.
    const Shape shape{2, 32, 32, 32};
    Inputs in = make_inputs(shape, 40);
    Tensor x = in.x.to(DType::F32), gamma = in.gamma.to(DType::F32), beta = in.beta.to(DType::F32);
    // The reference sees the same float32-rounded values, so only the kernel's rounding is measured.
    ddpm::test::ref::GroupNormResult ref = ddpm::test::ref::group_norm(x, gamma, beta, 8, 1e-5,
                                         fuse_silu);
    Tensor out = ddpm::group_norm(x, gamma, beta, 8, 1e-5, fuse_silu);
    REQUIRE(out.dtype() == DType::F32);
    // Statistics are in double, so the error is the final rounding to float32 (2^-24 relative).
    ddpm::test::require_close(out.to_vector(), ref.out, 1e-6, 1e-6, "float32 group_norm output");
  }
}

TEST_CASE("group_norm is stable in float32 for a large mean and a small spread", "[group_norm]") {
  // x = 1e4 + 0.1 z: a one-pass E[x^2] - E[x]^2 in float32 would lose the variance entirely
  // (1e8 against 1e-2, with 24-bit mantissas).
  const Shape shape{2, 4, 4, 16};
  Tensor x64 = ddpm::add(ddpm::test::randn(shape, 50, 0.1), Tensor::full({16}, 1e4, DType::F64));
  Tensor x = x64.to(DType::F32);
  Tensor gamma = Tensor::ones({16}, DType::F32), beta = Tensor::zeros({16}, DType::F32);
  ddpm::test::ref::GroupNormResult ref = ddpm::test::ref::group_norm(x, gamma, beta, 4, 1e-5, false);
  Tensor out = ddpm::group_norm(x, gamma, beta, 4, 1e-5);
  // Normalized values are O(1); the float32 result is right to its last bits.
  ddpm::test::require_close(out.to_vector(), ref.out, 1e-5, 1e-5, "normalized large-mean input");
  // And it really is normalized: the variance of the output is 1 (up to eps / var = 1e-3).
  std::vector<double> v = out.to_vector();
  double mean = 0, sq = 0;
  for (double e : v) mean += e / static_cast<double>(v.size());
  for (double e : v) sq += (e - mean) * (e - mean) / static_cast<double>(v.size());
  REQUIRE(std::fabs(mean) < 1e-5);
  REQUIRE(std::fabs(sq - 1.0) < 2e-3);
}

TEST_CASE("group_norm backward in float32 at a large mean, with float64 statistics", "[group_norm]") {
  // The kernel accepts mean and rstd saved in float64 for a float32 x. A float32 mean of 1e4 is off
  // by up to 5e-4, which shifts xhat by 5e-3 when the spread is 0.1; float64 statistics keep the
  // float32 backward as accurate as its float32 inputs and outputs allow.
  const Shape shape{2, 4, 4, 16};
  const int groups = 4;
  Tensor x = ddpm::add(ddpm::test::randn(shape, 90, 0.1), Tensor::full({16}, 1e4, DType::F64)).to(DType::F32);
  Inputs in = make_inputs(shape, 91);
  Tensor gamma = in.gamma.to(DType::F32), beta = in.beta.to(DType::F32);
  Tensor g = ddpm::test::randn(shape, 94).to(DType::F32);
  ddpm::Backend& cpu = ddpm::backend_for(ddpm::Device::CPU);
  // Runs forward and backward on x, gamma, beta, g converted to `dtype`, statistics in float64.
  auto run = [&](DType dtype) {
    Tensor xx = x.to(dtype), gm = gamma.to(dtype), bt = beta.to(dtype), out = Tensor::empty(shape, dtype);
    Tensor mean = Tensor::empty({2, groups}, DType::F64), rstd = Tensor::empty({2, groups}, DType::F64);
    Tensor dx = Tensor::empty(shape, dtype), dgamma = Tensor::empty({16}, dtype), dbeta = Tensor::empty({16}, dtype);
    cpu.group_norm_forward({xx, gm, bt, out, mean, rstd, groups, 1e-5, true});
    cpu.group_norm_backward({g.to(dtype), xx, gm, bt, mean, rstd, groups, true, {dx, false}, {dgamma, false},
                             {dbeta, false}});
    return std::vector<Tensor>{out, dx, dgamma, dbeta};
  };
  const std::vector<Tensor> f32 = run(DType::F32), f64 = run(DType::F64);
  // dx is O(rstd) = O(10); gamma/beta gradients are sums of 32 terms of O(1).
  ddpm::test::require_close(f32[0].to_vector(), f64[0].to_vector(), 1e-5, 1e-5, "output");
  ddpm::test::require_close(f32[1].to_vector(), f64[1].to_vector(), 1e-5, 1e-4, "grad_x");
  ddpm::test::require_close(f32[2].to_vector(), f64[2].to_vector(), 1e-5, 1e-5, "grad_gamma");
  ddpm::test::require_close(f32[3].to_vector(), f64[3].to_vector(), 1e-5, 1e-5, "grad_beta");
}

TEST_CASE("group_norm rejects bad shapes with the op and the shapes in the message", "[group_norm]") {
  Tensor x = Tensor::zeros({2, 3, 5, 8});
  Tensor gamma = Tensor::ones({8}), beta = Tensor::zeros({8});
  REQUIRE_THROWS_AS(ddpm::group_norm(x, gamma, beta, 3), ddpm::Error);
  REQUIRE_THROWS_WITH(ddpm::group_norm(x, gamma, beta, 3),
                      Catch::Contains("group_norm") && Catch::Contains("[2, 3, 5, 8]") &&
                          Catch::Contains("3 groups"));
  Tensor gamma7 = Tensor::ones({7});
  REQUIRE_THROWS_AS(ddpm::group_norm(x, gamma7, beta, 4), ddpm::Error);
  REQUIRE_THROWS_WITH(ddpm::group_norm(x, gamma7, beta, 4), Catch::Contains("group_norm") &&
                                                                Catch::Contains("gamma") &&
                                                                Catch::Contains("[8]") && Catch::Contains("[7]"));
  Tensor beta9 = Tensor::zeros({9});
  REQUIRE_THROWS_WITH(ddpm::group_norm(x, gamma, beta9, 4),
                      Catch::Contains("group_norm") && Catch::Contains("beta") && Catch::Contains("[9]"));
  REQUIRE_THROWS_WITH(ddpm::group_norm(Tensor::zeros({8}), gamma, beta, 4),
                      Catch::Contains("group_norm") && Catch::Contains("[8]"));
}
