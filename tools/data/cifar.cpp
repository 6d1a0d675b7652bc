#include "tools/data/cifar.h"

#include <filesystem>

#include "tools/data/file_bytes.h"

namespace ddpm {

namespace {
constexpr int64_t kSide = 32, kPlane = kSide * kSide, kRecord = 1 + 3 * kPlane;

std::vector<std::string> split_files(const std::string& split) {
  if (split == "test") return {"test_batch.bin"};
  std::vector<std::string> names;
  for (int i = 1; i <= 5; ++i) names.push_back("data_batch_" + std::to_string(i) + ".bin");
  return names;
}
}  // namespace

ImageSet read_cifar10_files(const std::vector<std::string>& paths) {
  DDPM_CHECK(!paths.empty(), "CIFAR-10: no batch files given");
  std::vector<std::vector<uint8_t>> contents;
  int64_t n = 0;
  for (const std::string& path : paths) {
    contents.push_back(read_file_bytes(path));
    const int64_t size = static_cast<int64_t>(contents.back().size());
    DDPM_CHECK(size > 0 && size % kRecord == 0, "CIFAR-10: ", path, " has ", size,
               " bytes, which is not a positive multiple of the ", kRecord,
               "-byte record (1 label + 3x32x32 pixels)",
               size % (kRecord + 1) == 0 && size > 0
                   ? "; it looks like CIFAR-100 (2 label bytes per record), which is not supported"
                   : "; the file is truncated or not a CIFAR-10 binary batch");
    n += size / kRecord;
  }

  ImageSet set;
  set.images = Tensor::empty({n, kSide, kSide, 3});
  set.labels.reserve(static_cast<size_t>(n));
  float* out = set.images.data<float>();
  for (size_t f = 0; f < contents.size(); ++f) {
    const std::vector<uint8_t>& bytes = contents[f];
    for (size_t at = 0; at < bytes.size(); at += kRecord) {
      const int label = bytes[at];
      DDPM_CHECK(label < 10, "CIFAR-10: ", paths[f], " record ", at / kRecord, " has label ", label,
                 "; CIFAR-10 labels are 0..9, so this is not a CIFAR-10 binary batch");
      set.labels.push_back(label);
      // Planar CHW on disk -> interleaved HWC in memory.
      const uint8_t* planes = bytes.data() + at + 1;
      for (int64_t p = 0; p < kPlane; ++p)
        for (int64_t c = 0; c < 3; ++c) *out++ = pixel_from_byte(planes[c * kPlane + p]);
    }
    contents[f] = std::vector<uint8_t>();  // release each file's bytes once converted
  }
  set.description = "CIFAR-10 " + std::to_string(n) + " images 32x32x3 from " +
                    std::to_string(paths.size()) + " batch file(s)";
  return set;
}

ImageSet load_cifar10(const std::string& dir, const std::string& split) {
  namespace fs = std::filesystem;
  DDPM_CHECK(split == "train" || split == "test", "CIFAR-10: unknown split '", split,
             "'; valid splits are train, test");
  const std::vector<std::string> names = split_files(split);
  fs::path root = dir;
  // Accept the folder the tarball was unpacked into as well as the batch folder itself.
  if (!fs::exists(root / names[0]) && fs::exists(root / "cifar-10-batches-bin" / names[0]))
    root /= "cifar-10-batches-bin";
  std::vector<std::string> paths;
  for (const std::string& name : names) {
    const fs::path path = root / name;
    DDPM_CHECK(fs::is_regular_file(path), "CIFAR-10: ", path.string(), " does not exist",
               fs::is_directory(dir) ? "" : " (nor does the directory)",
               "; the directory must hold data_batch_1.bin .. data_batch_5.bin and test_batch.bin "
               "from cifar-10-binary.tar.gz (https://www.cs.toronto.edu/~kriz/cifar.html)");
    paths.push_back(path.string());
  }
  ImageSet set = read_cifar10_files(paths);
  set.description = "CIFAR-10 " + split + " split of " + root.string() + ": " +
                    std::to_string(set.size()) + " images 32x32x3";
  return set;
}

}  // namespace ddpm
