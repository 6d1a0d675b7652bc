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

// Box-Muller on one word pair: (r cos(theta), r sin(theta)).
DDPM_HOST_DEVICE void box_muller(uint32_t w1, uint32_t w2, float* even, float* odd) {
  const float radius = sqrtf(-2.0f * logf(to_unit_open(w1)));
  const float angle = 6.2831853071795865f * to_unit_open(w2);
  *even = radius * cosf(angle);
  *odd = radius * sinf(angle);
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
