#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "engine/cpu_runtime.h"

int main(int argc, char** argv) {
  ddpm::configure_cpu_runtime(argv);
  return Catch::Session().run(argc, argv);
}
