// SHA-256 (FIPS 180-4), for naming files by their content: the feature networks of the sample
// quality metrics record "sha256:<hex>" of their weights, so two evaluations can be compared only
// when they used the same network.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace ddpm {

// Streaming hasher: update() any number of times, then digest() once.
class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  std::array<uint8_t, 32> digest();  // pads and finishes; the hasher is spent afterwards
  std::string hex_digest();          // the digest as 64 lowercase hex digits

 private:
  void compress(const uint8_t* block);  // one 64-byte block into state_
  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_{};
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
  bool finished_ = false;
};

// The hex digest of a string / of a file's content (read in 1 MiB chunks; throws naming the path
// when it cannot be read).
std::string sha256_hex(const std::string& bytes);
std::string sha256_file_hex(const std::string& path);

}  // namespace ddpm
