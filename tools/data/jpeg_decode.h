// JPEG decoding with libjpeg-turbo's TurboJPEG API: hardened and continuously fuzzed upstream,
// where stb_image's JPEG decoder overflowed its Huffman table and signed integers on inputs our
// fuzzer found (tests/fuzz/crashes/image_folder).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace ddpm {

struct DecodedImage {
  int width = 0, height = 0;
  std::vector<uint8_t> pixels;  // [height, width, channels] bytes
};

// True when the bytes start with a JPEG's SOI marker (FF D8 FF).
bool looks_like_jpeg(const uint8_t* data, size_t size);

// Decodes to `channels` (1: luminance, 3: RGB). Throws with libjpeg-turbo's reason on corrupt or
// truncated data (warnings count as errors, and progressive scans are limited, so a hostile file
// cannot take minutes).
DecodedImage decode_jpeg(const uint8_t* data, size_t size, int channels);

}  // namespace ddpm
