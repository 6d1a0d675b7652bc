#include "tools/data/image_folder.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <memory>
#include <vector>

#include "tools/data/file_bytes.h"
#include "tools/data/jpeg_decode.h"
#include "tools/data/png_decode.h"

namespace ddpm {

namespace {
bool is_image_name(const std::filesystem::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}

// The images directly in `dir`, sorted by name.
std::vector<std::filesystem::path> images_in(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  for (const std::filesystem::directory_entry& entry : std::filesystem::directory_iterator(dir))
    if (entry.is_regular_file() && is_image_name(entry.path())) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}
}  // namespace

ImageSet load_image_folder(const std::string& dir, int channels) {
  namespace fs = std::filesystem;
  DDPM_CHECK(channels == 1 || channels == 3, "image folder ", dir,
             ": channels must be 1 (gray) "
             "or 3 (RGB), got ",
             channels);
  DDPM_CHECK(fs::is_directory(dir), "image folder ", dir, " does not exist or is not a directory");
  std::vector<fs::path> files = images_in(dir);
  ImageSet set;
  if (files.empty()) {
    // No images at the top: one class per immediate subfolder, classes and files sorted by name.
    std::vector<fs::path> classes;
    for (const fs::directory_entry& entry : fs::directory_iterator(dir))
      if (entry.is_directory() && entry.path().filename().string().rfind('.', 0) != 0) classes.push_back(entry.path());
    std::sort(classes.begin(), classes.end());
    for (const fs::path& class_dir : classes) {
      const std::vector<fs::path> members = images_in(class_dir);
      DDPM_CHECK(!members.empty(), "image folder ", dir, ": the class folder ", class_dir.string(),
                 " holds no .png, .jpg or .jpeg files; add images or remove it");
      set.labels.insert(set.labels.end(), members.size(), static_cast<int>(set.class_names.size()));
      set.class_names.push_back(class_dir.filename().string());
      files.insert(files.end(), members.begin(), members.end());
    }
  }
  DDPM_CHECK(!files.empty(), "image folder ", dir,
             " holds no .png, .jpg or .jpeg files "
             "(nor subfolders of them, one per class)");

  int width = 0, height = 0;
  float* out = nullptr;
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string path = files[i].string();
    const std::vector<uint8_t> bytes = read_file_bytes(path);
    // JPEG through libjpeg-turbo, PNG through libpng (tools/data/jpeg_decode.h, png_decode.h).
    const bool jpeg = looks_like_jpeg(bytes.data(), bytes.size());
    DDPM_CHECK(jpeg || looks_like_png(bytes.data(), bytes.size()), "image folder: ", path,
               " is neither a PNG nor a JPEG file (its first bytes are not their signatures); convert or remove it");
    DecodedImage image;
    try {
      image = jpeg ? decode_jpeg(bytes.data(), bytes.size(), channels) : decode_png(bytes.data(), bytes.size(), channels);
    } catch (const Error& e) {
      detail::fail("image folder: cannot decode ", path, ": ", e.what());
    }
    const int w = image.width, h = image.height;
    if (i == 0) {
      // The first image fixes the size; the tensor is allocated once for all files.
      width = w;
      height = h;
      set.images = Tensor::empty({static_cast<int64_t>(files.size()), h, w, channels});
      out = set.images.data<float>();
    }
    DDPM_CHECK(w == width && h == height, "image folder: ", path, " is ", w, "x", h, " but ",
               files[0].string(), " is ", width, "x", height,
               "; all images must have the same size (resize them first)");
    const size_t count = static_cast<size_t>(w) * static_cast<size_t>(h) * channels;
    for (size_t k = 0; k < count; ++k) *out++ = pixel_from_byte(image.pixels[k]);
  }
  set.description = "image folder " + dir + ": " + std::to_string(files.size()) + " images " +
                    std::to_string(width) + "x" + std::to_string(height) + "x" +
                    std::to_string(channels) +
                    (set.class_names.empty() ? "" : ", " + std::to_string(set.class_names.size()) + " classes");
  return set;
}

}  // namespace ddpm
