#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "engine/cpu_startup_env.h"

int main(int argc, char** argv) {
  ddpm::set_cpu_startup_env(argv);
  return Catch::Session().run(argc, argv);
}
