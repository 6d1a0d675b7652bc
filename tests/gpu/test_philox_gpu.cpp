// The shared Philox header gives the same draws on the GPU as on the CPU.
#include <catch2/catch.hpp>
#include <vector>

#include "engine/philox.h"
#include "kernels/cuda/philox_probe.h"

TEST_CASE("philox draws on the GPU equal the CPU's", "[gpu][rng]") {
  const int64_t n = 4099;  // not a multiple of 4: the last block is partial
  std::vector<float> uniform(n), normal(n);
  ddpm::cuda_philox_probe(1234, 77, n, uniform.data(), normal.data());
  for (int64_t i = 0; i < n; ++i) {
    REQUIRE(uniform[i] == ddpm::philox::uniform(1234, 77, static_cast<uint64_t>(i)));  // integer path: exact
    // Box-Muller from correctly rounded operations only (engine/philox.h): exact as well.
    REQUIRE(normal[i] == ddpm::philox::normal(1234, 77, static_cast<uint64_t>(i)));
  }
}
