// tools/data/png_decode (libpng): PNGs of every channel count written by stb_image_write decode to
// their pixels exactly (alpha dropped, colour to gray by stb's integer weights); hand-built 16-bit
// and palette PNGs decode to the values their bytes define; corrupt, truncated and oversized files
// are refused by name.
#include <stb/stb_image_write.h>
#include <zlib.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "tools/data/png_decode.h"

using Catch::Contains;

namespace {
constexpr int kW = 7, kH = 5;

std::vector<uint8_t> stb_png(const std::vector<uint8_t>& pixels, int channels) {
  std::vector<uint8_t> out;
  auto append = [](void* ctx, void* data, int size) {
    auto* v = static_cast<std::vector<uint8_t>*>(ctx);
    v->insert(v->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
  };
  REQUIRE(stbi_write_png_to_func(append, &out, kW, kH, channels, pixels.data(), kW * channels) != 0);
  return out;
}

void put_u32(std::vector<uint8_t>& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
}

void put_chunk(std::vector<uint8_t>& out, const char* type, const std::vector<uint8_t>& body) {
  put_u32(out, static_cast<uint32_t>(body.size()));
  std::vector<uint8_t> typed(type, type + 4);
  typed.insert(typed.end(), body.begin(), body.end());
  out.insert(out.end(), typed.begin(), typed.end());
  put_u32(out, static_cast<uint32_t>(crc32(0, typed.data(), static_cast<uInt>(typed.size()))));
}

// A PNG built from the specification (signature, IHDR, optional PLTE, one zlib IDAT of
// unfiltered rows, IEND), independent of any PNG library's writer.
std::vector<uint8_t> handmade_png(uint32_t width, uint32_t height, uint8_t depth, uint8_t color_type,
                                  const std::vector<uint8_t>& rows_without_filter, const std::vector<uint8_t>& palette = {}) {
  std::vector<uint8_t> out{0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A}, ihdr;
  put_u32(ihdr, width);
  put_u32(ihdr, height);
  ihdr.insert(ihdr.end(), {depth, color_type, 0, 0, 0});
  put_chunk(out, "IHDR", ihdr);
  if (!palette.empty()) put_chunk(out, "PLTE", palette);
  std::vector<uint8_t> raw;
  const size_t row_bytes = height ? rows_without_filter.size() / height : 0;
  for (uint32_t y = 0; y < height; ++y) {
    raw.push_back(0);  // filter type None
    raw.insert(raw.end(), rows_without_filter.begin() + y * row_bytes, rows_without_filter.begin() + (y + 1) * row_bytes);
  }
  uLongf packed_size = compressBound(raw.size());
  std::vector<uint8_t> packed(packed_size);
  REQUIRE(compress(packed.data(), &packed_size, raw.data(), raw.size()) == Z_OK);
  packed.resize(packed_size);
  put_chunk(out, "IDAT", packed);
  put_chunk(out, "IEND", {});
  return out;
}
}  // namespace

TEST_CASE("PNG decoding is exact for gray, gray+alpha, RGB and RGBA files", "[data][png]") {
  for (int stored = 1; stored <= 4; ++stored) {
    std::vector<uint8_t> pixels(kW * kH * stored);
    for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>((37 * i + 11 * (i % stored)) % 256);
    const std::vector<uint8_t> png = stb_png(pixels, stored);
    REQUIRE(ddpm::looks_like_png(png.data(), png.size()));
    const ddpm::DecodedImage rgb = ddpm::decode_png(png.data(), png.size(), 3);
    const ddpm::DecodedImage gray = ddpm::decode_png(png.data(), png.size(), 1);
    REQUIRE((rgb.width == kW && rgb.height == kH && gray.width == kW && gray.height == kH));
    for (int p = 0; p < kW * kH; ++p) {
      INFO("stored channels " << stored << ", pixel " << p);
      const uint8_t* s = &pixels[p * stored];
      const bool color = stored >= 3;  // 2 = gray + alpha: the alpha is dropped
      const int r = s[0], g = color ? s[1] : s[0], b = color ? s[2] : s[0];
      CHECK(int(rgb.pixels[3 * p]) == r);
      CHECK(int(rgb.pixels[3 * p + 1]) == g);
      CHECK(int(rgb.pixels[3 * p + 2]) == b);
      CHECK(int(gray.pixels[p]) == (77 * r + 150 * g + 29 * b) / 256);
    }
  }
}

TEST_CASE("16-bit and palette PNGs decode to the values their bytes define", "[data][png]") {
  // 16-bit gray without a gAMA chunk: read as sRGB, so v becomes round(v / 257).
  std::vector<uint8_t> rows;
  std::vector<int> values;
  for (int i = 0; i < 4 * 3; ++i) {
    const int v = (i * 5981 + 97) % 65536;
    values.push_back(v);
    rows.push_back(static_cast<uint8_t>(v >> 8));
    rows.push_back(static_cast<uint8_t>(v));
  }
  const std::vector<uint8_t> deep = handmade_png(4, 3, 16, 0, rows);
  const ddpm::DecodedImage gray = ddpm::decode_png(deep.data(), deep.size(), 1);
  REQUIRE(gray.pixels.size() == values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    INFO("16-bit value " << values[i]);
    CHECK(int(gray.pixels[i]) == std::lround(values[i] / 257.0));
  }

  // 8-bit palette: index k is the k-th PLTE colour.
  const std::vector<uint8_t> palette{10, 20, 30, 200, 100, 0, 0, 255, 128};
  const std::vector<uint8_t> indices{0, 1, 2, 2, 1, 0};
  const std::vector<uint8_t> mapped = handmade_png(3, 2, 8, 3, indices, palette);
  const ddpm::DecodedImage rgb = ddpm::decode_png(mapped.data(), mapped.size(), 3);
  REQUIRE(rgb.pixels.size() == indices.size() * 3);
  for (size_t i = 0; i < indices.size(); ++i)
    for (int c = 0; c < 3; ++c) CHECK(rgb.pixels[3 * i + c] == palette[3 * indices[i] + c]);
}

TEST_CASE("corrupt, truncated and oversized PNGs are refused with libpng's reason", "[data][png]") {
  std::vector<uint8_t> pixels(kW * kH * 3, 90);
  const std::vector<uint8_t> png = stb_png(pixels, 3);
  REQUIRE_THROWS_WITH(ddpm::decode_png(png.data(), 20, 3), Contains("PNG"));
  const std::vector<uint8_t> truncated(png.begin(), png.end() - 20);  // inside the IDAT
  REQUIRE_THROWS_WITH(ddpm::decode_png(truncated.data(), truncated.size(), 3), Contains("corrupt PNG"));
  std::vector<uint8_t> bad_crc = png;
  bad_crc[29] ^= 0xFF;  // IHDR's CRC
  REQUIRE_THROWS_WITH(ddpm::decode_png(bad_crc.data(), bad_crc.size(), 3), Contains("corrupt PNG header"));
  const std::vector<uint8_t> huge = handmade_png(30000, 30000, 8, 0, {});
  REQUIRE_THROWS_WITH(ddpm::decode_png(huge.data(), huge.size(), 1), Contains("out of range"));
  REQUIRE_THROWS_WITH(ddpm::decode_png(png.data(), png.size(), 2), Contains("channels must be 1 or 3"));
  const std::vector<uint8_t> jpeg{0xFF, 0xD8, 0xFF, 0xE0, 0, 0, 0, 0};
  CHECK_FALSE(ddpm::looks_like_png(jpeg.data(), jpeg.size()));
}
