// A check of a JPEG's Huffman tables before stb_image decodes it. Debian's stb_image
// (0.0~git20220908) builds each table into a 257-entry array without checking that the table's
// code counts sum to at most 256, so a crafted file writes past it (found by fuzzing:
// tests/fuzz/crashes/image_folder/). Checking every DHT the decoder could meet refuses such files.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace ddpm {

// Empty when `bytes` is not a JPEG or its DHT segments are sound; otherwise what is wrong.
std::string jpeg_huffman_problem(const uint8_t* bytes, size_t size);

}  // namespace ddpm
