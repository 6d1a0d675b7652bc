#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "engine/cpu_runtime.h"

int main(int argc, char** argv) {
  ddpm::ensure_fast_blas(argv);
  return Catch::Session().run(argc, argv);
}
