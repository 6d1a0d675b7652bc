// attention: forward against a plain-loop float64 reference (heads 1, 2, 4; float32 too), the
// equal-keys property, large logits, float64 central-difference gradients, every GradSlot mode,
// shape errors.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <string>

#include "engine/backend.h"
#include "engine/ops.h"
#include "engine/op_args.h"
#include "tests/support.h"

namespace {

using ddpm::DType;
using ddpm::Shape;
using ddpm::Tensor;

// q, k, v [N, T, C] as flat vectors; per (n, head, query i): softmax over keys j, then the
// weighted sum of v rows. Written with plain loops, independently of the kernel.
std::vector<double> reference_attention(const std::vector<double>& q, const std::vector<double>& k,
                                        const std::vector<double>& v, int64_t n, int64_t t, int64_t c,
                                        int64_t heads) {
  const int64_t d = c / heads;
  auto at = [&](int64_t b, int64_t row, int64_t ch) { return static_cast<size_t>((b * t + row) * c + ch); };
  std::vector<double> out(q.size(), 0.0), w(static_cast<size_t>(t));
  for (int64_t b = 0; b < n; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < t; ++i) {
        double largest = -INFINITY;
        for (int64_t j = 0; j < t; ++j) {
          double s = 0;
          for (int64_t e = h * d; e < (h + 1) * d; ++e) s += q[at(b, i, e)] * k[at(b, j, e)];
          w[static_cast<size_t>(j)] = s / std::sqrt(static_cast<double>(d));
          largest = std::max(largest, w[static_cast<size_t>(j)]);
        }
        double total = 0;
        for (double& x : w) total += (x = std::exp(x - largest));
        for (int64_t j = 0; j < t; ++j)
          for (int64_t e = h * d; e < (h + 1) * d; ++e)
            out[at(b, i, e)] += w[static_cast<size_t>(j)] / total * v[at(b, j, e)];
      }
  return out;
}

std::vector<double> reference_of(const Tensor& q, const Tensor& k, const Tensor& v, int heads) {
  return reference_attention(q.to_vector(), k.to_vector(), v.to_vector(), q.dim(0), q.dim(1), q.dim(2), heads);
}

}  // namespace

TEST_CASE("attention forward matches a float64 reference", "[attention]") {
  // T = 6: a 2x3 NHWC map [N, H, W, C] viewed as [N, H*W, C].
  const Shape map{2, 2, 3, 8}, seq{2, 6, 8};
  for (int heads : {1, 2, 4}) {
    INFO(heads << " heads");
    const uint64_t s = 10 * static_cast<uint64_t>(heads);
    Tensor q = ddpm::test::randn(map, s).reshape(seq), k = ddpm::test::randn(map, s + 1).reshape(seq),
           v = ddpm::test::randn(map, s + 2).reshape(seq);
    Tensor out = ddpm::attention(q, k, v, heads);
    REQUIRE(out.shape() == seq);
    ddpm::test::require_close(out.to_vector(), reference_of(q, k, v, heads), 1e-12, 1e-12, "attention output");
  }
}

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
  ddpm::test::require_close(out.to_vector(), reference_of(q, k, v, 4), 1e-5, 1e-5, "float32 attention output");
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
  ddpm::test::require_close(out, reference_of(q, k, v, 2), 1e-4, 1e-4, "attention with large logits");
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
  ddpm::test::require_close(batched[0].to_vector(), reference_of(q, k, v, heads), 1e-12, 1e-12,
                            "long-sequence output");
  const char* names[] = {"output", "grad_q", "grad_k", "grad_v"};
  for (int64_t n = 0; n < 2; ++n) {
    const std::vector<Tensor> single = run(sample(q, n), sample(k, n), sample(v, n), sample(g, n));
    for (size_t i = 0; i < single.size(); ++i)
      ddpm::test::require_close(sample(batched[i], n).to_vector(), single[i].to_vector(), 1e-14, 1e-14,
                                std::string(names[i]) + " of sample " + std::to_string(n));
  }
}

TEST_CASE("attention gradients match central differences", "[attention]") {
  const Shape map{2, 2, 3, 8}, seq{2, 6, 8};
  for (int heads : {1, 2, 4}) {
    INFO(heads << " heads");
    const uint64_t s = 100 + 10 * static_cast<uint64_t>(heads);
    // The inputs are leaves of map shape, reshaped inside f: attention then writes its input
    // gradients into fresh activation buffers (accumulate = false) that the reshape passes on.
    ddpm::test::check_gradients(
        [&](const std::vector<Tensor>& t) {
          return ddpm::attention(t[0].reshape(seq), t[1].reshape(seq), t[2].reshape(seq), heads);
        },
        {ddpm::test::randn(map, s), ddpm::test::randn(map, s + 1), ddpm::test::randn(map, s + 2)}, 1e-6, 1e-7);
    // And straight on leaves (accumulating slots), with one input as both q and k: its gradient
    // must receive both contributions.
    ddpm::test::check_gradients(
        [&](const std::vector<Tensor>& t) { return ddpm::attention(t[0], t[0], t[1], heads); },
        {ddpm::test::randn(seq, s + 3), ddpm::test::randn(seq, s + 4)}, 1e-6, 1e-7);
  }
}

TEST_CASE("attention backward honors every GradSlot mode", "[attention]") {
  const Shape seq{2, 6, 8};
  const int heads = 2;
  Tensor q = ddpm::test::randn(seq, 200), k = ddpm::test::randn(seq, 201), v = ddpm::test::randn(seq, 202);
  Tensor g = ddpm::test::randn(seq, 203);
  ddpm::Backend& cpu = ddpm::backend_for(ddpm::Device::CPU);
  Tensor out = Tensor::empty(seq, DType::F64);
  cpu.attention_forward({q, k, v, out, heads});
  auto backward = [&](ddpm::GradSlot gq, ddpm::GradSlot gk, ddpm::GradSlot gv) {
    cpu.attention_backward({g, q, k, v, out, heads, gq, gk, gv});
  };
  const double nan = std::numeric_limits<double>::quiet_NaN();

  // Written slots start as NaN: a kernel that reads them (or skips an element) leaves a NaN.
  Tensor dq = Tensor::full(seq, nan, DType::F64), dk = Tensor::full(seq, nan, DType::F64),
         dv = Tensor::full(seq, nan, DType::F64);
  backward({dq, false}, {dk, false}, {dv, false});
  for (const Tensor& t : {dq, dk, dv})
    for (double e : t.to_vector()) REQUIRE(std::isfinite(e));

  // Accumulating slots add onto what they hold.
  const double base[3] = {1.5, -2.0, 0.25};
  Tensor aq = Tensor::full(seq, base[0], DType::F64), ak = Tensor::full(seq, base[1], DType::F64),
         av = Tensor::full(seq, base[2], DType::F64);
  backward({aq, true}, {ak, true}, {av, true});
  const Tensor written[3] = {dq, dk, dv}, accumulated[3] = {aq, ak, av};
  for (int i = 0; i < 3; ++i) {
    std::vector<double> expected = written[i].to_vector();
    for (double& e : expected) e += base[i];
    ddpm::test::require_close(accumulated[i].to_vector(), expected, 1e-13, 1e-13,
                              "accumulated gradient of input " + std::to_string(i));
  }

  // Unwanted slots are skipped; each wanted one alone gets the same values.
  Tensor only_q = Tensor::full(seq, nan, DType::F64), only_k = Tensor::full(seq, nan, DType::F64),
         only_v = Tensor::full(seq, nan, DType::F64);
  backward({only_q, false}, {}, {});
  backward({}, {only_k, false}, {});
  backward({}, {}, {only_v, false});
  REQUIRE(only_q.to_vector() == dq.to_vector());
  REQUIRE(only_k.to_vector() == dk.to_vector());
  REQUIRE(only_v.to_vector() == dv.to_vector());
  backward({}, {}, {});  // nothing wanted: a no-op
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
