// Random draws for elementwise kernels, one Philox evaluation per four elements. Element i of a
// tensor whose element 0 sits at Philox address `offset` draws the value at address offset + i,
// exactly as cpu::for_each_draw does; a thread that owns Philox block b computes its four values
// at once (philox::normal4 / uniform4) instead of running the 10 rounds, and Box-Muller, per
// element and throwing three quarters away.
#pragma once
#include <cstdint>

#include "engine/philox.h"

namespace ddpm::cuda {

// The Philox blocks that cover addresses [offset, offset + n).
struct DrawBlocks {
  uint64_t first = 0;
  int64_t count = 0;
};
__host__ __device__ inline DrawBlocks draw_blocks(int64_t n, uint64_t offset) {
  const uint64_t first = offset / 4, end = (offset + static_cast<uint64_t>(n) + 3) / 4;
  return {first, static_cast<int64_t>(end - first)};
}

// body(i, draw) for the (up to four) elements i in [0, n) that Philox block `block` covers.
template <bool Normal, class Body>
__device__ __forceinline__ void draw_block(uint64_t seed, uint64_t stream, uint64_t offset, int64_t n, uint64_t block,
                                           Body&& body) {
  float draws[4];
  if (Normal)
    philox::normal4(seed, stream, block, draws);
  else
    philox::uniform4(seed, stream, block, draws);
  // Not unrolled: four inlined copies of a large body (the reverse step's) multiply compile time
  // many times over; the select keeps the draws in registers without a run-time array index.
#pragma unroll 1
  for (int w = 0; w < 4; ++w) {
    const int64_t i = static_cast<int64_t>(4 * block + static_cast<uint64_t>(w) - offset);
    const float draw = w == 0 ? draws[0] : w == 1 ? draws[1] : w == 2 ? draws[2] : draws[3];
    if (i >= 0 && i < n) body(i, draw);
  }
}

}  // namespace ddpm::cuda
