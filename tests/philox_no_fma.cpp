// engine/philox.h's normal draws compiled a second time, without fused multiply-add contraction or
// FMA instructions (tests/CMakeLists.txt sets -ffp-contract=off -mno-fma for this file), in its own
// namespace so that the linker cannot merge these inline functions with the main build's. The
// "[rng]" tests compare the two bit for bit: the draws must not depend on what a compiler may
// contract or which fma it calls, which is what makes the CUDA device's draws equal the CPU's.
#include <cmath>
#include <cstdint>
#include <cstring>

namespace no_fma {
#include "engine/philox.h"
}  // namespace no_fma

namespace ddpm::test {
void normal4_without_fma(uint64_t seed, uint64_t stream, uint64_t block, float out[4]) {
  no_fma::ddpm::philox::normal4(seed, stream, block, out);
}
}  // namespace ddpm::test
