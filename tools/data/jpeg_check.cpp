#include "tools/data/jpeg_check.h"

namespace ddpm {

namespace {
// Byte i of the file, 0 past its end (as stb_image reads it).
uint8_t byte_at(const uint8_t* b, size_t size, size_t i) { return i < size ? b[i] : 0; }

// Walks a DHT segment whose length field is at `at` the way stb_image does: L = length - 2, then
// tables of a class/id byte, 16 code counts and that many symbols, while L > 0.
std::string check_dht(const uint8_t* b, size_t size, size_t at) {
  long remaining = (static_cast<long>(byte_at(b, size, at)) << 8 | byte_at(b, size, at + 1)) - 2;
  size_t table = at + 2;
  while (remaining > 0 && table < size) {
    unsigned codes = 0;
    for (size_t i = 1; i <= 16; ++i) codes += byte_at(b, size, table + i);
    if (codes > 256)
      return "a Huffman table (DHT) declares " + std::to_string(codes) + " codes (at most 256 are possible)";
    table += 17 + codes;
    remaining -= 17 + static_cast<long>(codes);
  }
  return "";
}
}  // namespace

std::string jpeg_huffman_problem(const uint8_t* b, size_t size) {
  if (size < 2 || b[0] != 0xFF || b[1] != 0xD8) return "";  // not a JPEG
  // stb_image skips stray bytes between markers and reads a DHT wherever it meets FF C4, so every
  // FF C4 in the file is checked as one. A sound JPEG has FF C4 nowhere else: entropy-coded data
  // stuffs each FF data byte as FF 00.
  for (size_t at = 2; at + 1 < size; ++at)
    if (b[at] == 0xFF && b[at + 1] == 0xC4) {
      const std::string problem = check_dht(b, size, at + 2);
      if (!problem.empty()) return problem;
    }
  return "";
}

}  // namespace ddpm
