#include "tools/data/jpeg_decode.h"

#include <turbojpeg.h>

#include <memory>

#include "engine/error.h"

namespace ddpm {

namespace {
struct TjFree {
  void operator()(void* handle) const { tjDestroy(handle); }
};
}  // namespace

bool looks_like_jpeg(const uint8_t* data, size_t size) {
  return size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;
}

DecodedImage decode_jpeg(const uint8_t* data, size_t size, int channels) {
  DDPM_CHECK(channels == 1 || channels == 3, "decode_jpeg: channels must be 1 or 3, got ", channels);
  DDPM_CHECK(size <= 0xFFFFFFFFul, "JPEG of ", size, " bytes is too large");
  std::unique_ptr<void, TjFree> tj(tjInitDecompress());
  DDPM_CHECK(tj != nullptr, "libjpeg-turbo: cannot start a decompressor: ", tjGetErrorStr2(nullptr));
  int width = 0, height = 0, subsampling = 0, colorspace = 0;
  const auto bytes = static_cast<unsigned long>(size);
  DDPM_CHECK(tjDecompressHeader3(tj.get(), data, bytes, &width, &height, &subsampling, &colorspace) == 0,
             "corrupt JPEG header: ", tjGetErrorStr2(tj.get()));
  // 1 << 28 pixels (16k x 16k) bounds the allocation a forged header can ask for.
  DDPM_CHECK(width > 0 && height > 0 && static_cast<int64_t>(width) * height <= (int64_t{1} << 28),
             "JPEG of ", width, "x", height, " pixels is out of range");
  DecodedImage image;
  image.width = width;
  image.height = height;
  image.pixels.resize(static_cast<size_t>(width) * height * channels);
  const int flags = TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS;
  DDPM_CHECK(tjDecompress2(tj.get(), data, bytes, image.pixels.data(), width, 0, height,
                           channels == 1 ? TJPF_GRAY : TJPF_RGB, flags) == 0,
             "corrupt JPEG: ", tjGetErrorStr2(tj.get()));
  return image;
}

}  // namespace ddpm
