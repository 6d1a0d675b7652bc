// Independent Philox seeds per use, so that draws for different purposes never share addresses.
#pragma once
#include <cstdint>

namespace ddpm {

enum class Purpose : uint64_t { Flip = 1, Timesteps, Noise, Dropout, Sampling, Evaluation };
uint64_t seed_for(uint64_t seed, Purpose purpose);

}  // namespace ddpm
