// libFuzzer's entry point for one target of targets.h, chosen at compile time (DDPM_FUZZ_TARGET).
#include "tests/fuzz/targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ddpm::fuzz::DDPM_FUZZ_TARGET(data, size);
  return 0;
}
