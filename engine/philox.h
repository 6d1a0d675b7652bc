// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011), shared
// verbatim by CPU and CUDA code so that one (seed, stream, index) gives the same number on both.
//
// Addressing: element i of a draw keyed by (seed, stream) comes from the block
//   philox(counter = {i/4 low, i/4 high, stream low, stream high}, key = {seed low, seed high})
// word i % 4. Normals pair words (0,1) and (2,3) through Box-Muller: the even element of a pair
// takes r cos(theta), the odd one r sin(theta).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define DDPM_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define DDPM_HOST_DEVICE inline
#endif

namespace ddpm::philox {

struct Block {
  uint32_t v[4];
};

DDPM_HOST_DEVICE uint32_t mulhilo(uint32_t a, uint32_t b, uint32_t* hi) {
  uint64_t product = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(product >> 32);
  return static_cast<uint32_t>(product);
}

// Ten rounds of Philox4x32 on one counter block.
DDPM_HOST_DEVICE Block philox4x32_10(Block counter, uint32_t key0, uint32_t key1) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, hi1;
    uint32_t lo0 = mulhilo(kMul0, counter.v[0], &hi0);
    uint32_t lo1 = mulhilo(kMul1, counter.v[2], &hi1);
    counter = Block{{hi1 ^ counter.v[1] ^ key0, lo1, hi0 ^ counter.v[3] ^ key1, lo0}};
    key0 += kWeyl0;
    key1 += kWeyl1;
  }
  return counter;
}

DDPM_HOST_DEVICE Block block_at(uint64_t seed, uint64_t stream, uint64_t block_index) {
  Block counter{{static_cast<uint32_t>(block_index), static_cast<uint32_t>(block_index >> 32),
                 static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32)}};
  return philox4x32_10(counter, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// Uniform in the open interval (0, 1) from the top 24 bits: exact in float32.
DDPM_HOST_DEVICE float to_unit_open(uint32_t bits) {
  return (static_cast<float>(bits >> 8) + 0.5f) * (1.0f / 16777216.0f);
}

DDPM_HOST_DEVICE float uniform(uint64_t seed, uint64_t stream, uint64_t index) {
  return to_unit_open(block_at(seed, stream, index >> 2).v[index & 3]);
}

// Box-Muller needs log, cos and sin. The math libraries differ (glibc's logf/cosf/sinf against
// CUDA's: 1-2 ulp apart, and one such ulp can cross a bfloat16 rounding boundary), so both sides
// use the functions below instead: only operations IEEE 754 rounds correctly (+, -, *, /, sqrt and
// fused multiply-add), each written out so that no compiler may fuse or reorder it (every a*b + c
// is an explicit fma; GCC and nvcc both contract a bare a*b + c into an fma by default). The same
// inputs then give the same float bits on the host and on the device.
DDPM_HOST_DEVICE float exact_fma(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}
DDPM_HOST_DEVICE float exact_div(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);  // IEEE division even under --use_fast_math
#else
  return a / b;
#endif
}
DDPM_HOST_DEVICE float exact_sqrt(float a) {
#if defined(__CUDA_ARCH__)
  return __fsqrt_rn(a);
#else
  return std::sqrt(a);
#endif
}

// ln(u) for u in (0, 1) (u = to_unit_open: a positive normal float). u = m 2^e with m in
// [sqrt(1/2), sqrt(2)); ln m = 2 atanh(s) = 2 (s + s^3/3 + ... + s^11/11), s = (m - 1) / (m + 1),
// |s| <= 0.172 (the next term is below 2^-30 relative); e ln 2 adds in two parts (ln2_hi has 16
// significant bits, so e ln2_hi is exact for |e| < 2^8).
DDPM_HOST_DEVICE float portable_log_unit(float u) {
  uint32_t bits;
  memcpy(&bits, &u, 4);
  int e = static_cast<int>(bits >> 23) - 127;
  bits = (bits & 0x007fffffu) | 0x3f800000u;  // m in [1, 2)
  if (bits > 0x3fb504f3u) {                   // m > sqrt(2): use m / 2
    bits -= 0x00800000u;
    ++e;
  }
  float m;
  memcpy(&m, &bits, 4);
  const float s = exact_div(m - 1.0f, m + 1.0f);  // m - 1 and m + 1 are exact
  const float s2 = s * s;
  float poly = 1.0f / 11.0f;
  poly = exact_fma(poly, s2, 1.0f / 9.0f);
  poly = exact_fma(poly, s2, 1.0f / 7.0f);
  poly = exact_fma(poly, s2, 1.0f / 5.0f);
  poly = exact_fma(poly, s2, 1.0f / 3.0f);
  const float s3 = s2 * s;
  const float log_m = 2.0f * exact_fma(s3, poly, s);  // ln m = 2 (s + s^3 poly)
  const float fe = static_cast<float>(e);
  constexpr float kLn2Hi = 0.693145751953125f, kLn2Lo = 1.42860682030941723e-6f;
  return exact_fma(fe, kLn2Hi, exact_fma(fe, kLn2Lo, log_m));
}

// cos(2 pi u) and sin(2 pi u) for u in (0, 1) (a multiple of 2^-25). The octant reduction is on u
// itself and exact: u = k / 4 + r with |r| <= 1 / 8 (r keeps u's 2^-25 grid), then Taylor series
// of x = 2 pi r, |x| <= pi / 4: sin to x^11, cos to x^12 (remainders below 2^-27).
DDPM_HOST_DEVICE void portable_cos_sin_2pi(float u, float* c, float* s) {
  const float k = static_cast<float>(static_cast<int>(u * 4.0f + 0.5f));  // nearest quarter turn, 0..4
  const float r = u - 0.25f * k;                                            // exact
  const float x = 6.28318530717958647f * r;
  const float x2 = x * x;
  float ps = -1.0f / 39916800.0f;  // sin x = x + x^3 (-1/3! + x^2 (1/5! - ...))
  ps = exact_fma(ps, x2, 1.0f / 362880.0f);
  ps = exact_fma(ps, x2, -1.0f / 5040.0f);
  ps = exact_fma(ps, x2, 1.0f / 120.0f);
  ps = exact_fma(ps, x2, -1.0f / 6.0f);
  const float sin_x = exact_fma(x2 * x, ps, x);
  float pc = 1.0f / 479001600.0f;  // cos x = 1 + x^2 (-1/2 + x^2 (1/4! - ...))
  pc = exact_fma(pc, x2, -1.0f / 3628800.0f);
  pc = exact_fma(pc, x2, 1.0f / 40320.0f);
  pc = exact_fma(pc, x2, -1.0f / 720.0f);
  pc = exact_fma(pc, x2, 1.0f / 24.0f);
  pc = exact_fma(pc, x2, -0.5f);
  const float cos_x = exact_fma(x2, pc, 1.0f);
  // (cos, sin)(x + k pi / 2)
  switch (static_cast<int>(k) & 3) {
    case 0: *c = cos_x, *s = sin_x; break;
    case 1: *c = -sin_x, *s = cos_x; break;
    case 2: *c = -cos_x, *s = -sin_x; break;
    default: *c = sin_x, *s = -cos_x; break;
  }
}

// Box-Muller on one word pair: (r cos(theta), r sin(theta)), r = sqrt(-2 ln u1), theta = 2 pi u2,
// bit-identical on host and device (see above).
DDPM_HOST_DEVICE void box_muller(uint32_t w1, uint32_t w2, float* even, float* odd) {
  const float radius = exact_sqrt(-2.0f * portable_log_unit(to_unit_open(w1)));
  float c, s;
  portable_cos_sin_2pi(to_unit_open(w2), &c, &s);
  *even = radius * c;
  *odd = radius * s;
}

// Standard normal for element `index` (Box-Muller on the word pair that holds it).
DDPM_HOST_DEVICE float normal(uint64_t seed, uint64_t stream, uint64_t index) {
  Block b = block_at(seed, stream, index >> 2);
  unsigned pair = static_cast<unsigned>(index & 2);
  float even, odd;
  box_muller(b.v[pair], b.v[pair + 1], &even, &odd);
  return (index & 1) ? odd : even;
}

// Elements 4 block .. 4 block + 3 at once, the same values as uniform() / normal() give them one
// by one (loops over many elements use these: one Philox evaluation per four draws).
DDPM_HOST_DEVICE void uniform4(uint64_t seed, uint64_t stream, uint64_t block, float out[4]) {
  const Block b = block_at(seed, stream, block);
  for (int w = 0; w < 4; ++w) out[w] = to_unit_open(b.v[w]);
}
DDPM_HOST_DEVICE void normal4(uint64_t seed, uint64_t stream, uint64_t block, float out[4]) {
  const Block b = block_at(seed, stream, block);
  box_muller(b.v[0], b.v[1], &out[0], &out[1]);
  box_muller(b.v[2], b.v[3], &out[2], &out[3]);
}

}  // namespace ddpm::philox
