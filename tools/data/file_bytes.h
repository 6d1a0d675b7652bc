// Whole-file reads for the dataset loaders, gzip-aware: a file that starts with the gzip magic
// (1f 8b) is inflated through zlib, anything else is returned as stored.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ddpm {

bool is_gzip_file(const std::string& path);  // false when the file cannot be opened

// The file's (decompressed) contents. Throws ddpm::Error naming the path when it cannot be opened
// or read, or when a gzip stream is corrupt or cut short.
std::vector<uint8_t> read_file_bytes(const std::string& path);

}  // namespace ddpm
