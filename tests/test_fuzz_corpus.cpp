// Replays the kept fuzzing corpus (tests/fuzz/corpus/<target>/) and every input that ever crashed
// a parser (tests/fuzz/crashes/<target>/) through the fuzz targets: each must be accepted or
// refused with ddpm::Error, never crash or throw anything else. scripts/fuzz.sh grows the corpus.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "tests/fuzz/targets.h"

namespace fs = std::filesystem;

TEST_CASE("fuzz corpus: every kept input is accepted or refused cleanly", "[fuzz]") {
  for (const auto& target : ddpm::fuzz::kTargets) {
    int inputs = 0;
    for (const char* kind : {"corpus", "crashes"}) {
      const fs::path dir = fs::path(DDPM_SOURCE_DIR) / "tests/fuzz" / kind / target.name;
      if (!fs::exists(dir)) continue;
      for (const auto& entry : fs::directory_iterator(dir)) {
        std::ifstream in(entry.path(), std::ios::binary);
        const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        INFO(entry.path().string());
        REQUIRE_NOTHROW(target.run(bytes.data(), bytes.size()));
        ++inputs;
      }
    }
    INFO(target.name);
    CHECK(inputs > 0);  // every target has at least its seed inputs
  }
}
