// tools/data/jpeg_decode (libjpeg-turbo): a JPEG written by stb_image_write decodes to its source
// pixels within JPEG's loss, as RGB and as luminance; the image-folder loader reads JPEG and PNG
// alike; the inputs that broke stb_image's decoder, and a truncated file, are refused by name.
#include <stb/stb_image_write.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "tools/data/file_bytes.h"
#include "tools/data/image_folder.h"
#include "tools/data/jpeg_decode.h"

using Catch::Contains;
namespace fs = std::filesystem;

namespace {
constexpr int kW = 16, kH = 12;

// A smooth RGB gradient [kH, kW, 3]: little for JPEG to lose at quality 100.
std::vector<uint8_t> gradient() {
  std::vector<uint8_t> rgb(kW * kH * 3);
  for (int y = 0; y < kH; ++y)
    for (int x = 0; x < kW; ++x) {
      uint8_t* p = &rgb[(y * kW + x) * 3];
      p[0] = static_cast<uint8_t>(40 + 10 * x);
      p[1] = static_cast<uint8_t>(60 + 12 * y);
      p[2] = static_cast<uint8_t>(200 - 5 * x - 4 * y);
    }
  return rgb;
}

std::vector<uint8_t> jpeg_bytes(const std::vector<uint8_t>& rgb) {
  std::vector<uint8_t> out;
  auto append = [](void* ctx, void* data, int size) {
    auto* v = static_cast<std::vector<uint8_t>*>(ctx);
    v->insert(v->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
  };
  REQUIRE(stbi_write_jpg_to_func(append, &out, kW, kH, 3, rgb.data(), 100) != 0);
  return out;
}

int max_difference(const std::vector<uint8_t>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return static_cast<int>(std::ceil(worst));
}
}  // namespace

TEST_CASE("JPEG decoding matches the source pixels as RGB and as luminance", "[data][jpeg]") {
  const std::vector<uint8_t> rgb = gradient(), jpeg = jpeg_bytes(rgb);
  REQUIRE(ddpm::looks_like_jpeg(jpeg.data(), jpeg.size()));
  const ddpm::DecodedImage color = ddpm::decode_jpeg(jpeg.data(), jpeg.size(), 3);
  REQUIRE((color.width == kW && color.height == kH));
  CHECK(max_difference(color.pixels, std::vector<double>(rgb.begin(), rgb.end())) <= 6);
  std::vector<double> luma(kW * kH);  // ITU-R BT.601, as JPEG's YCbCr
  for (int i = 0; i < kW * kH; ++i) luma[i] = 0.299 * rgb[3 * i] + 0.587 * rgb[3 * i + 1] + 0.114 * rgb[3 * i + 2];
  const ddpm::DecodedImage gray = ddpm::decode_jpeg(jpeg.data(), jpeg.size(), 1);
  CHECK(max_difference(gray.pixels, luma) <= 4);

  const std::vector<uint8_t> png{0x89, 'P', 'N', 'G', 0x0D, 0x0A};
  REQUIRE_FALSE(ddpm::looks_like_jpeg(png.data(), png.size()));
  const std::vector<uint8_t> truncated(jpeg.begin(), jpeg.begin() + static_cast<long>(jpeg.size() / 2));
  REQUIRE_THROWS_WITH(ddpm::decode_jpeg(truncated.data(), truncated.size(), 3), Contains("corrupt JPEG"));
}

TEST_CASE("image folders read JPEG and PNG alike and refuse the JPEGs that broke stb_image", "[data][jpeg]") {
  const fs::path dir = fs::temp_directory_path() / ("ddpm_jpeg_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "ok");
  const std::vector<uint8_t> rgb = gradient(), jpeg = jpeg_bytes(rgb);
  std::ofstream(dir / "ok/a.jpg", std::ios::binary).write(reinterpret_cast<const char*>(jpeg.data()),
                                                           static_cast<std::streamsize>(jpeg.size()));
  REQUIRE(stbi_write_png((dir / "ok/b.png").c_str(), kW, kH, 3, rgb.data(), kW * 3) != 0);
  const ddpm::ImageSet set = ddpm::load_image_folder((dir / "ok").string(), 3);
  REQUIRE(set.images.shape() == ddpm::Shape{2, kH, kW, 3});
  const float* a = set.images.data<float>();
  const float* b = a + kW * kH * 3;
  float worst = 0;
  for (int i = 0; i < kW * kH * 3; ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  CHECK(worst <= 2.0f * 6 / 255);  // pixels map [0, 255] to [-1, 1]

  // Fuzzing found these: two overflowed stb_image's Huffman table, one its dequantization, one
  // (a PNG with a zeroed IHDR checksum) made its PNG reader call memcpy(NULL, 0).
  for (const fs::path& crash : fs::directory_iterator(fs::path(DDPM_SOURCE_DIR) / "tests/fuzz/crashes/image_folder")) {
    fs::remove_all(dir / "bad");
    fs::create_directories(dir / "bad");
    fs::copy_file(crash, dir / "bad/x.jpg");
    INFO(crash.string());
    REQUIRE_THROWS_WITH(ddpm::load_image_folder((dir / "bad").string(), 3),
                        Contains("cannot decode") && Contains("x.jpg"));
  }
  fs::remove_all(dir);
}
