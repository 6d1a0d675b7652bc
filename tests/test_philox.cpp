// Philox4x32-10 against Random123's published known-answer vectors, and the draws built on it.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/philox.h"
#include "engine/tensor.h"

using ddpm::philox::Block;

TEST_CASE("philox4x32-10 matches the Random123 known-answer vectors", "[rng]") {
  struct Kat {
    Block counter;
    uint32_t key0, key1;
    Block expected;
  };
  const Kat kats[] = {
      {{{0, 0, 0, 0}}, 0, 0, {{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}}},
      {{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, 0xffffffffu, 0xffffffffu,
       {{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}}},
      {{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}}, 0xa4093822u, 0x299f31d0u,
       {{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}}},
  };
  for (const Kat& k : kats) {
    Block out = ddpm::philox::philox4x32_10(k.counter, k.key0, k.key1);
    for (int i = 0; i < 4; ++i) REQUIRE(out.v[i] == k.expected.v[i]);
  }
}

TEST_CASE("philox addressing: (seed, stream, index) picks the block and word", "[rng]") {
  // Element 4b + w of (seed, stream) is word w of the block with counter {b, 0, stream, 0}.
  const uint64_t seed = 0x299f31d0a4093822ull, stream = 7;
  Block b = ddpm::philox::philox4x32_10(Block{{5, 0, 7, 0}}, 0xa4093822u, 0x299f31d0u);
  REQUIRE(ddpm::philox::uniform(seed, stream, 4 * 5 + 2) == ddpm::philox::to_unit_open(b.v[2]));
  // Different streams and seeds give different numbers.
  REQUIRE(ddpm::philox::uniform(seed, stream, 0) != ddpm::philox::uniform(seed, stream + 1, 0));
  REQUIRE(ddpm::philox::uniform(seed, stream, 0) != ddpm::philox::uniform(seed + 1, stream, 0));
}

TEST_CASE("uniform and normal draws have the right moments", "[rng]") {
  const int64_t n = 1 << 18;
  ddpm::Tensor u = ddpm::Tensor::uniform({n}, 42, 1, -1.0, 3.0, ddpm::DType::F64);
  ddpm::Tensor z = ddpm::Tensor::normal({n}, 42, 2, 0.5, 2.0, ddpm::DType::F64);
  auto moments = [](const std::vector<double>& v) {
    double m = 0, s = 0;
    for (double x : v) m += x;
    m /= static_cast<double>(v.size());
    for (double x : v) s += (x - m) * (x - m);
    return std::pair<double, double>{m, s / static_cast<double>(v.size())};
  };
  auto [um, uv] = moments(u.to_vector());
  auto [zm, zv] = moments(z.to_vector());
  // Uniform(-1, 3): mean 1, variance 16/12. Normal: mean 0.5, variance 4. Five standard errors.
  REQUIRE(std::fabs(um - 1.0) < 5 * std::sqrt(16.0 / 12 / n));
  REQUIRE(std::fabs(uv - 16.0 / 12) < 5 * std::sqrt(16.0 * 16.0 / 180 / n));
  REQUIRE(std::fabs(zm - 0.5) < 5 * std::sqrt(4.0 / n));
  REQUIRE(std::fabs(zv - 4.0) < 5 * std::sqrt(2 * 16.0 / n));
  for (double x : u.to_vector()) REQUIRE((x > -1.0 && x < 3.0));
  // A normal tail check: P(|z| > 3 sigma) = 0.0027.
  int64_t tail = 0;
  for (double x : z.to_vector()) tail += std::fabs(x - 0.5) > 6.0;
  REQUIRE(std::fabs(static_cast<double>(tail) / n - 0.0027) < 5 * std::sqrt(0.0027 / n));
}

TEST_CASE("the same (seed, stream) gives the same tensor; float32 equals float64 rounded", "[rng]") {
  ddpm::Tensor a = ddpm::Tensor::normal({1000}, 9, 3);
  ddpm::Tensor b = ddpm::Tensor::normal({1000}, 9, 3);
  ddpm::Tensor c = ddpm::Tensor::normal({1000}, 9, 3, 0.0, 1.0, ddpm::DType::F64);
  REQUIRE(a.to_vector() == b.to_vector());
  std::vector<double> av = a.to_vector(), cv = c.to_vector();
  for (size_t i = 0; i < av.size(); ++i) REQUIRE(av[i] == static_cast<double>(static_cast<float>(cv[i])));
}

namespace ddpm::test {
void normal4_without_fma(uint64_t seed, uint64_t stream, uint64_t block, float out[4]);  // philox_no_fma.cpp
}

TEST_CASE("Box-Muller's log, cos and sin are within 2 float ulps of double libm", "[rng]") {
  // Every u that to_unit_open can produce near the ends, and a sweep through the middle.
  auto ulps = [](float got, double want) {
    return std::fabs(got - want) / std::ldexp(1.0, std::ilogb(static_cast<float>(want)) - 23);
  };
  double worst_log = 0, worst_trig = 0;
  for (uint32_t i = 0; i < (1u << 20); ++i) {
    for (uint32_t bits : {i << 8, (i * 4093u) << 8, 0xffffffffu - (i << 8)}) {
      const float u = ddpm::philox::to_unit_open(bits);
      worst_log = std::max(worst_log, ulps(ddpm::philox::portable_log_unit(u), std::log(static_cast<double>(u))));
      float c, s;
      ddpm::philox::portable_cos_sin_2pi(u, &c, &s);
      const double angle = 2 * M_PI * static_cast<double>(u);
      // Near a zero of cos or sin the ulp is tiny: measure against the larger of the two.
      const double big = std::max(std::fabs(std::cos(angle)), std::fabs(std::sin(angle)));
      worst_trig = std::max(worst_trig, std::max(std::fabs(c - std::cos(angle)), std::fabs(s - std::sin(angle))) /
                                            std::ldexp(1.0, std::ilogb(static_cast<float>(big)) - 23));
    }
  }
  INFO("log: worst " << worst_log << " ulp; cos/sin: worst " << worst_trig << " ulp");
  REQUIRE(worst_log <= 2);
  REQUIRE(worst_trig <= 2);
}

TEST_CASE("normal draws do not depend on fma contraction (what makes CUDA's equal the CPU's)", "[rng]") {
  // The same header compiled with -ffp-contract=off -mno-fma (tests/philox_no_fma.cpp) gives the
  // same bits as the main build (contraction on, -march=native FMA): the result is fixed by the
  // explicit fma/division/sqrt calls alone, so nvcc's contraction cannot change it either.
  for (uint64_t block = 0; block < (1u << 18); ++block) {
    float main_build[4], no_fma[4];
    ddpm::philox::normal4(5, 10, block, main_build);
    ddpm::test::normal4_without_fma(5, 10, block, no_fma);
    for (int w = 0; w < 4; ++w)
      if (std::memcmp(&main_build[w], &no_fma[w], 4) != 0) {
        INFO("block " << block << " word " << w << ": " << main_build[w] << " vs " << no_fma[w]);
        REQUIRE(false);
      }
  }
}
