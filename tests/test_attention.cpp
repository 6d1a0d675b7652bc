// attention: float32 over 64 tokens against the plain-loop reference, the equal-keys property,
// large logits, chunked work, q and k as one tensor, shape errors. Forward, gradients and GradSlots
// for small shapes: the op table (tests/op_cases.cpp, tests/test_op_table.cpp).
#include <algorithm>
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

}  // namespace

TEST_CASE("attention float32 matches the float64 reference", "[attention]") {
  // An 8x8 map (T = 64), C = 32, 4 heads of d = 8; inputs of stddev 2 give peaked softmax rows.
  const Shape seq{2, 64, 32};
  Tensor q = ddpm::test::randn(seq, 1, 2.0).to(DType::F32), k = ddpm::test::randn(seq, 2, 2.0).to(DType::F32),
         v = ddpm::test::randn(seq, 3).to(DType::F32);
  Tensor out = ddpm::attention(q, k, v, 4);
  REQUIRE(out.dtype() == DType::F32);
  // The reference sees the same float32 inputs. Logits reach ~|q||k|/sqrt(d) ~ 10, so float32
  // rounding (6e-8 relative) of the logits and of 64-term sums leaves errors near 1e-6 on O(1)
  // outputs: 1e-5 leaves a margin without hiding a real bug (which shows up at 1e-2 and above).
  ddpm::test::require_close(out.to_vector(), ddpm::test::ref::attention(q, k, v, 4), 1e-5, 1e-5, "float32 attention output");
}

TEST_CASE("attention with all-equal keys returns the mean of the value rows", "[attention]") {
  // Every key row equal: all logits of a query row are equal, so softmax is uniform over T.
  const int64_t n = 2, t = 6, c = 8;
  Tensor q = ddpm::test::randn({n, t, c}, 5);
  std::vector<double> key_row = ddpm::test::randn({c}, 6).to_vector(), keys;
  for (int64_t i = 0; i < n * t; ++i) keys.insert(keys.end(), key_row.begin(), key_row.end());
  Tensor k = Tensor::from_vector(keys, {n, t, c}, DType::F64);
  Tensor v = ddpm::test::randn({n, t, c}, 7);
  const std::vector<double> vv = v.to_vector();
  for (int heads : {1, 2, 4}) {
    INFO(heads << " heads");
    std::vector<double> expected(vv.size(), 0.0);
    for (int64_t b = 0; b < n; ++b)
      for (int64_t e = 0; e < c; ++e) {
        double mean = 0;
        for (int64_t j = 0; j < t; ++j) mean += vv[static_cast<size_t>((b * t + j) * c + e)] / t;
        for (int64_t i = 0; i < t; ++i) expected[static_cast<size_t>((b * t + i) * c + e)] = mean;
      }
    ddpm::test::require_close(ddpm::attention(q, k, v, heads).to_vector(), expected, 1e-12, 1e-12,
                              "attention over equal keys");
  }
}

TEST_CASE("attention is stable for large logits in float32", "[attention]") {
  // Logits of several hundred: exp overflows float32 (at 88.7) unless the row max is subtracted.
  const Shape seq{1, 16, 8};
  Tensor q = ddpm::test::randn(seq, 11, 15.0).to(DType::F32), k = ddpm::test::randn(seq, 12, 15.0).to(DType::F32),
         v = ddpm::test::randn(seq, 13).to(DType::F32);
  std::vector<double> out = ddpm::attention(q, k, v, 2).to_vector();
  for (double e : out) REQUIRE(std::isfinite(e));
  // Logits this large amplify float32 input rounding, hence the looser tolerance.
  ddpm::test::require_close(out, ddpm::test::ref::attention(q, k, v, 2), 1e-4, 1e-4, "attention with large logits");
}

TEST_CASE("attention over many long sequences: chunked work gives the per-sample results", "[attention]") {
  // T = 1100: the kernel's [T, T] scratch holds 3 of the 4 (sample, head) pairs, so the work runs
  // in a chunk of 3 and a chunk of 1. Each sample alone is a single chunk; the results must agree.
  const int64_t t = 1100, c = 4;
  const int heads = 2;
  Tensor q = ddpm::test::randn({2, t, c}, 21), k = ddpm::test::randn({2, t, c}, 22),
         v = ddpm::test::randn({2, t, c}, 23), g = ddpm::test::randn({2, t, c}, 24);
  ddpm::Backend& cpu = ddpm::backend_for(ddpm::Device::CPU);
  auto run = [&](const Tensor& qq, const Tensor& kk, const Tensor& vv, const Tensor& gg) {
    Tensor out = Tensor::empty(qq.shape(), DType::F64), dq = Tensor::empty(qq.shape(), DType::F64),
           dk = Tensor::empty(qq.shape(), DType::F64), dv = Tensor::empty(qq.shape(), DType::F64);
    cpu.attention_forward({qq, kk, vv, out, heads});
    cpu.attention_backward({gg, qq, kk, vv, out, heads, {dq, false}, {dk, false}, {dv, false}});
    return std::vector<Tensor>{out, dq, dk, dv};
  };
  auto sample = [&](const Tensor& x, int64_t n) {
    std::vector<double> all = x.to_vector();
    const auto begin = all.begin() + n * t * c;
    return Tensor::from_vector(std::vector<double>(begin, begin + t * c), {1, t, c}, DType::F64);
  };
  const std::vector<Tensor> batched = run(q, k, v, g);
  ddpm::test::require_close(batched[0].to_vector(), ddpm::test::ref::attention(q, k, v, heads), 1e-12, 1e-12,
                            "long-sequence output");
  const char* names[] = {"output", "grad_q", "grad_k", "grad_v"};
  for (int64_t n = 0; n < 2; ++n) {
    const std::vector<Tensor> single = run(sample(q, n), sample(k, n), sample(v, n), sample(g, n));
    for (size_t i = 0; i < single.size(); ++i)
      ddpm::test::require_close(sample(batched[i], n).to_vector(), single[i].to_vector(), 1e-14, 1e-14,
                                std::string(names[i]) + " of sample " + std::to_string(n));
  }
}

TEST_CASE("attention gradients: one tensor as both q and k gets both contributions", "[attention]") {
  const Shape seq{2, 6, 8};
  for (int heads : {1, 2, 4}) {
    INFO(heads << " heads");
    const uint64_t s = 100 + 10 * static_cast<uint64_t>(heads);
    // Straight on leaves (accumulating slots), with one input as both q and k: its gradient must
    // receive both contributions. (Each input alone, through a non-leaf graph: the op table.)
    ddpm::test::check_gradients(
        [&](const std::vector<Tensor>& t) { return ddpm::attention(t[0], t[0], t[1], heads); },
        {ddpm::test::randn(seq, s + 3), ddpm::test::randn(seq, s + 4)}, 1e-6, 1e-7);
  }
}

TEST_CASE("attention rejects bad shapes with the op and the shapes in the message", "[attention]") {
  Tensor q = Tensor::zeros({2, 6, 8}), k5 = Tensor::zeros({2, 5, 8});
  REQUIRE_THROWS_AS(ddpm::attention(q, k5, q, 2), ddpm::Error);
  REQUIRE_THROWS_WITH(ddpm::attention(q, k5, q, 2), Catch::Contains("attention") && Catch::Contains("k") &&
                                                        Catch::Contains("[2, 6, 8]") &&
                                                        Catch::Contains("[2, 5, 8]"));
  REQUIRE_THROWS_WITH(ddpm::attention(q, q, Tensor::zeros({2, 6, 4}), 2),
                      Catch::Contains("attention") && Catch::Contains("v") && Catch::Contains("[2, 6, 4]"));
  REQUIRE_THROWS_AS(ddpm::attention(q, q, q, 3), ddpm::Error);
  REQUIRE_THROWS_WITH(ddpm::attention(q, q, q, 3), Catch::Contains("attention") && Catch::Contains("[2, 6, 8]") &&
                                                      Catch::Contains("3 heads"));
  REQUIRE_THROWS_WITH(ddpm::attention(Tensor::zeros({6, 8}), Tensor::zeros({6, 8}), Tensor::zeros({6, 8}), 1),
                      Catch::Contains("attention") && Catch::Contains("[6, 8]"));
}
