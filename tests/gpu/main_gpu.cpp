// GPU tests: report "skipped" to ctest (exit 77) when this machine has no usable GPU, so that a
// GPU-less run never counts them as passed.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <cstdio>

#include "engine/device.h"

int main(int argc, char** argv) {
  if (!ddpm::cuda_available()) {
    std::puts("no CUDA device: gpu tests skipped");
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
