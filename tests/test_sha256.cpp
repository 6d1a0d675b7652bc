// SHA-256 against the FIPS 180-2 example vectors (appendix B: "abc", the 448-bit two-block
// message, one million 'a'), the empty message, chunked updates and files.
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "engine/io/sha256.h"

using namespace ddpm;

namespace {
const char* kAbc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const char* kTwoBlock = "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
const char* kMillionA = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
const char* kEmpty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
}  // namespace

TEST_CASE("sha256 gives the FIPS 180-2 digests", "[sha256]") {
  REQUIRE(sha256_hex("abc") == kAbc);
  REQUIRE(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") == kTwoBlock);
  REQUIRE(sha256_hex(std::string(1000000, 'a')) == kMillionA);
  REQUIRE(sha256_hex("") == kEmpty);
}

TEST_CASE("sha256 gives the same digest whatever the update sizes", "[sha256]") {
  // Chunks that straddle block boundaries in every way: 1, 7, 63, 64, 65, 1000 bytes at a time.
  const std::string message(1000000, 'a');
  for (size_t chunk : {1, 7, 63, 64, 65, 1000}) {
    Sha256 h;
    for (size_t at = 0; at < message.size(); at += chunk)
      h.update(message.data() + at, std::min(chunk, message.size() - at));
    INFO("chunk " << chunk);
    REQUIRE(h.hex_digest() == kMillionA);
  }
  Sha256 spent;
  spent.update("abc", 3);
  REQUIRE(spent.hex_digest() == kAbc);
  REQUIRE_THROWS_WITH(spent.update("x", 1), Catch::Contains("new hasher"));
}

TEST_CASE("sha256 of a file streams it in chunks; a missing file is named", "[sha256]") {
  const std::string path = (std::filesystem::temp_directory_path() / "ddpm_sha256_test.bin").string();
  {
    std::ofstream out(path, std::ios::binary);
    // 3 MiB + 5 bytes: several read chunks and a partial one.
    for (int i = 0; i < 3 * 1048576 + 5; ++i) out.put('a');
  }
  Sha256 h;
  const std::string block(1048576, 'a');
  for (int i = 0; i < 3; ++i) h.update(block.data(), block.size());
  h.update(block.data(), 5);
  REQUIRE(sha256_file_hex(path) == h.hex_digest());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << "abc";
  REQUIRE(sha256_file_hex(path) == kAbc);
  std::remove(path.c_str());
  REQUIRE_THROWS_WITH(sha256_file_hex(path), Catch::Contains(path));
}
