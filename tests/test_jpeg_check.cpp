// tools/data/jpeg_check: the JPEG that made Debian's stb_image write past its Huffman table (found
// by fuzzing) is refused before decoding, with the reason; sound JPEGs and other files pass.
#include <catch2/catch.hpp>
#include <filesystem>

#include "tools/data/file_bytes.h"
#include "tools/data/jpeg_check.h"

namespace fs = std::filesystem;

TEST_CASE("JPEG Huffman tables that overflow stb_image are refused before decoding", "[data][jpeg]") {
  const fs::path fuzz = fs::path(DDPM_SOURCE_DIR) / "tests/fuzz";
  // The two inputs that overflowed the table (a third crash file there is stb's signed-integer
  // overflow in dequantization: undefined behaviour that wraps in practice, not fixed here).
  for (const char* name : {"crash-d090264c308a8b6bcf19e54233f3492954536896", "crash-a86ca94f73797e769b7bac8bbe93227897c27674"}) {
    const fs::path path = fuzz / "crashes/image_folder" / name;
    const std::vector<uint8_t> bytes = ddpm::read_file_bytes(path.string());
    INFO(path.string());
    REQUIRE_THAT(ddpm::jpeg_huffman_problem(bytes.data(), bytes.size()), Catch::Contains("Huffman table"));
  }
  // A sound table: 2 codes of length 1, then their 2 symbols.
  std::vector<uint8_t> dht{0xFF, 0xD8, 0xFF, 0xC4, 0x00, 0x15, 0x00, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 9, 0xFF, 0xD9};
  REQUIRE(ddpm::jpeg_huffman_problem(dht.data(), dht.size()).empty());
  // 16 x 17 = 272 codes in one table: refused.
  for (int i = 7; i < 23; ++i) dht[static_cast<size_t>(i)] = 17;
  REQUIRE_THAT(ddpm::jpeg_huffman_problem(dht.data(), dht.size()), Catch::Contains("272 codes"));
  const std::vector<uint8_t> png{0x89, 'P', 'N', 'G'};
  REQUIRE(ddpm::jpeg_huffman_problem(png.data(), png.size()).empty());
}
