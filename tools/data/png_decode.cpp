#include "tools/data/png_decode.h"

#include <png.h>

#include <cstring>
#include <vector>

#include "engine/error.h"

namespace ddpm {

namespace {
// png_image_free on every path out, including the throws of DDPM_CHECK.
struct PngImage {
  png_image image;
  PngImage() {
    std::memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
  }
  ~PngImage() { png_image_free(&image); }
};
}  // namespace

bool looks_like_png(const uint8_t* data, size_t size) {
  return size >= 8 && png_sig_cmp(data, 0, 8) == 0;
}

DecodedImage decode_png(const uint8_t* data, size_t size, int channels) {
  DDPM_CHECK(channels == 1 || channels == 3, "decode_png: channels must be 1 or 3, got ", channels);
  PngImage png;
  DDPM_CHECK(png_image_begin_read_from_memory(&png.image, data, size) != 0, "corrupt PNG header: ",
             png.image.message);
  // 1 << 28 pixels (16k x 16k) bounds the allocation a forged header can ask for.
  const int64_t width = png.image.width, height = png.image.height;
  DDPM_CHECK(width > 0 && height > 0 && width * height <= (int64_t{1} << 28), "PNG of ", width, "x", height,
             " pixels is out of range");
  png.image.format = PNG_FORMAT_RGBA;           // 8-bit sRGB, straight (not premultiplied) alpha
  png.image.flags |= PNG_IMAGE_FLAG_16BIT_sRGB;  // 16-bit files without gamma: scale, don't linearize
  std::vector<uint8_t> rgba(PNG_IMAGE_SIZE(png.image));
  DDPM_CHECK(png_image_finish_read(&png.image, nullptr, rgba.data(), 0, nullptr) != 0, "corrupt PNG: ",
             png.image.message);

  DecodedImage image;
  image.width = static_cast<int>(width);
  image.height = static_cast<int>(height);
  const size_t pixels = static_cast<size_t>(width * height);
  image.pixels.resize(pixels * channels);
  for (size_t i = 0; i < pixels; ++i) {
    const uint8_t* p = &rgba[4 * i];
    if (channels == 3)
      std::memcpy(&image.pixels[3 * i], p, 3);
    else
      image.pixels[i] = static_cast<uint8_t>((77 * p[0] + 150 * p[1] + 29 * p[2]) >> 8);
  }
  return image;
}

}  // namespace ddpm
