#include "tools/data/file_bytes.h"

#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "engine/error.h"

namespace ddpm {

namespace {
struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

std::vector<uint8_t> read_plain(const std::string& path) {
  File f(std::fopen(path.c_str(), "rb"));
  DDPM_CHECK(f != nullptr, "cannot open ", path, ": ", std::strerror(errno));
  std::vector<uint8_t> bytes;
  uint8_t chunk[1 << 16];
  size_t got;
  while ((got = std::fread(chunk, 1, sizeof(chunk), f.get())) > 0)
    bytes.insert(bytes.end(), chunk, chunk + got);
  DDPM_CHECK(!std::ferror(f.get()), "cannot read ", path, ": ", std::strerror(errno));
  return bytes;
}

std::vector<uint8_t> read_gzip(const std::string& path) {
  gzFile gz = gzopen(path.c_str(), "rb");
  DDPM_CHECK(gz != nullptr, "cannot open ", path, ": ", std::strerror(errno));
  std::vector<uint8_t> bytes;
  std::vector<uint8_t> chunk(1 << 20);
  int got;
  while ((got = gzread(gz, chunk.data(), static_cast<unsigned>(chunk.size()))) > 0)
    bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + got);
  // A stream cut short reads as a short final chunk plus an error, not as end of file.
  int errnum = Z_OK;
  const char* message = gzerror(gz, &errnum);
  std::string reason = message ? message : "";
  gzclose(gz);
  DDPM_CHECK(got == 0 && (errnum == Z_OK || errnum == Z_STREAM_END), "cannot decompress ", path,
             ": ", reason.empty() ? "zlib error" : reason,
             " (the gzip file is corrupt or truncated; download it again)");
  return bytes;
}
}  // namespace

bool is_gzip_file(const std::string& path) {
  File f(std::fopen(path.c_str(), "rb"));
  if (!f) return false;
  unsigned char magic[2] = {0, 0};
  return std::fread(magic, 1, 2, f.get()) == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
}

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  return is_gzip_file(path) ? read_gzip(path) : read_plain(path);
}

}  // namespace ddpm
