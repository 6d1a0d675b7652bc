#include "tools/data/idx.h"

#include <cstdio>
#include <filesystem>

#include "tools/data/file_bytes.h"

namespace ddpm {

namespace {
constexpr uint32_t kImageMagic = 0x00000803;  // unsigned bytes, 3 dimensions
constexpr uint32_t kLabelMagic = 0x00000801;  // unsigned bytes, 1 dimension

const char* const kInstallHint =
    "install the Debian package dataset-fashion-mnist (apt-get install dataset-fashion-mnist), "
    "or point the data directory elsewhere";

std::string hex32(uint32_t v) {
  char text[16];
  std::snprintf(text, sizeof(text), "0x%08x", v);
  return text;
}

uint32_t big_endian_u32(const std::vector<uint8_t>& bytes, size_t at) {
  return (uint32_t{bytes[at]} << 24) | (uint32_t{bytes[at + 1]} << 16) |
         (uint32_t{bytes[at + 2]} << 8) | uint32_t{bytes[at + 3]};
}

// Checks the magic and the exact file size; returns the dimensions from the header.
std::vector<int64_t> parse_header(const std::vector<uint8_t>& bytes, const std::string& path,
                                  uint32_t magic, const char* kind) {
  const int ndims = static_cast<int>(magic & 0xff);
  const size_t header = 4 + 4 * static_cast<size_t>(ndims);
  DDPM_CHECK(bytes.size() >= 4, "IDX ", kind, " file ", path, " is truncated: ", bytes.size(),
             " bytes, too short for the 4-byte magic number");
  const uint32_t found = big_endian_u32(bytes, 0);
  if (found != magic) {
    const char* hint = found == kImageMagic   ? " (this is an image file; were the files swapped?)"
                       : found == kLabelMagic ? " (this is a label file; were the files swapped?)"
                                              : " (not an IDX unsigned-byte file)";
    ddpm::detail::fail("IDX ", kind, " file ", path, " has magic number ", hex32(found),
                       ", expected ", hex32(magic), hint);
  }
  DDPM_CHECK(bytes.size() >= header, "IDX ", kind, " file ", path, " is truncated: ", bytes.size(),
             " bytes, but its header alone needs ", header);
  std::vector<int64_t> dims;
  uint64_t payload = 1;  // saturates, so a garbage header reads as "truncated", not as overflow
  for (int d = 0; d < ndims; ++d) {
    const uint32_t extent = big_endian_u32(bytes, 4 + 4 * static_cast<size_t>(d));
    dims.push_back(extent);
    payload = extent != 0 && payload > UINT64_MAX / extent ? UINT64_MAX : payload * extent;
  }
  const uint64_t have = bytes.size() - header;
  DDPM_CHECK(have >= payload, "IDX ", kind, " file ", path, " is truncated: its header promises ",
             payload, " data bytes (dimensions ", shape_str(dims), ") but only ", have,
             " follow; download the file again");
  DDPM_CHECK(have == payload, "IDX ", kind, " file ", path, " has ", have - payload,
             " bytes after the ", payload, " its header (dimensions ", shape_str(dims),
             ") describes; the file is not a valid IDX file");
  return dims;
}

std::string strip_trailing_slashes(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir;
}

// The file `base` or `base.gz` in `dir`, or an error naming it and how to get it.
std::string find_file(const std::string& dir, const std::string& base) {
  namespace fs = std::filesystem;
  for (const std::string& name : {base, base + ".gz"}) {
    const fs::path candidate = fs::path(dir) / name;
    if (fs::is_regular_file(candidate)) return candidate.string();
  }
  ddpm::detail::fail("IDX data set: ", (fs::path(dir) / base).string(), "(.gz) does not exist; ",
                     idx_missing_help(dir));
}
}  // namespace

ImageSet read_idx_pair(const std::string& images_path, const std::string& labels_path) {
  const std::vector<uint8_t> image_bytes = read_file_bytes(images_path);
  const std::vector<int64_t> dims = parse_header(image_bytes, images_path, kImageMagic, "image");
  const std::vector<uint8_t> label_bytes = read_file_bytes(labels_path);
  const std::vector<int64_t> label_dims =
      parse_header(label_bytes, labels_path, kLabelMagic, "label");
  const int64_t n = dims[0], rows = dims[1], cols = dims[2];
  DDPM_CHECK(label_dims[0] == n, "IDX data set: ", images_path, " holds ", n, " images but ",
             labels_path, " holds ", label_dims[0],
             " labels; the two files must come from the "
             "same split");
  DDPM_CHECK(n > 0 && rows > 0 && cols > 0, "IDX data set: ", images_path,
             " holds no pixels (dimensions ", shape_str(dims), ")");

  ImageSet set;
  set.images = Tensor::empty({n, rows, cols, 1});
  float* pixels = set.images.data<float>();
  const uint8_t* src = image_bytes.data() + 16;
  for (int64_t i = 0, total = n * rows * cols; i < total; ++i) pixels[i] = pixel_from_byte(src[i]);
  set.labels.assign(label_bytes.begin() + 8, label_bytes.end());
  set.description = "IDX " + std::to_string(n) + " images " + std::to_string(rows) + "x" +
                    std::to_string(cols) + "x1 from " + images_path;
  return set;
}

std::string idx_missing_help(const std::string& dir) {
  if (strip_trailing_slashes(dir) == kDefaultIdxDir) return kInstallHint;
  return "the directory must hold train-images-idx3-ubyte, train-labels-idx1-ubyte, "
         "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (each may be gzipped), "
         "or point the data directory elsewhere";
}

ImageSet load_idx_dataset(const std::string& dir, const std::string& split) {
  DDPM_CHECK(split == "train" || split == "test", "IDX data set: unknown split '", split,
             "'; valid splits are train, test");
  DDPM_CHECK(std::filesystem::is_directory(dir), "IDX data set: directory ", dir,
             " does not exist; ", idx_missing_help(dir));
  const std::string prefix = split == "train" ? "train" : "t10k";
  const std::string images = find_file(dir, prefix + "-images-idx3-ubyte");
  const std::string labels = find_file(dir, prefix + "-labels-idx1-ubyte");
  ImageSet set = read_idx_pair(images, labels);
  set.description = "IDX " + split + " split of " + dir + ": " + set.description;
  return set;
}

}  // namespace ddpm
