#include "tools/seeds.h"

namespace ddpm {

uint64_t seed_for(uint64_t seed, Purpose purpose) {
  // Distinct Philox keys per purpose: (seed, purpose) through a 64-bit mix.
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(purpose);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace ddpm
