#include "tools/data/jpeg_check.h"

namespace ddpm {

namespace {
// The DHT segment's tables: each is a class/id byte, 16 code counts, then that many symbols.
std::string check_dht(const uint8_t* p, size_t length) {
  size_t at = 0;
  while (at < length) {
    if (length - at < 17) return "a Huffman table (DHT) is cut short";
    unsigned symbols = 0;
    for (int i = 1; i <= 16; ++i) symbols += p[at + static_cast<size_t>(i)];
    if (symbols > 256) return "a Huffman table (DHT) declares " + std::to_string(symbols) + " codes (at most 256)";
    at += 17;
    if (length - at < symbols) return "a Huffman table (DHT) is cut short";
    at += symbols;
  }
  return "";
}
}  // namespace

std::string jpeg_huffman_problem(const uint8_t* b, size_t size) {
  if (size < 2 || b[0] != 0xFF || b[1] != 0xD8) return "";  // not a JPEG
  size_t at = 2;
  while (at + 4 <= size) {
    if (b[at] != 0xFF) return "";  // not a marker where one belongs: stb_image refuses it itself
    const uint8_t marker = b[at + 1];
    if (marker == 0xFF) {  // fill byte
      ++at;
      continue;
    }
    if (marker == 0xD9) return "";                                        // end of image
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {  // no length field
      at += 2;
      continue;
    }
    const size_t length = static_cast<size_t>(b[at + 2]) << 8 | b[at + 3];  // includes its own 2 bytes
    if (length < 2 || at + 2 + length > size) return "";  // truncated: stb_image reports it
    if (marker == 0xC4) {
      const std::string problem = check_dht(b + at + 4, length - 2);
      if (!problem.empty()) return problem;
    }
    at += 2 + length;
    if (marker == 0xDA) {  // start of scan: skip the entropy-coded data to the next real marker
      while (at + 1 < size && !(b[at] == 0xFF && b[at + 1] != 0x00 && (b[at + 1] < 0xD0 || b[at + 1] > 0xD7))) ++at;
    }
  }
  return "";
}

}  // namespace ddpm
