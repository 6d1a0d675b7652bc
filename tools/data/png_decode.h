// PNG decoding with libpng (the reference implementation, fuzzed upstream), where stb_image's PNG
// reader hit undefined behaviour on an input our fuzzer found (tests/fuzz/crashes/image_folder).
#pragma once
#include <cstddef>
#include <cstdint>

#include "tools/data/jpeg_decode.h"

namespace ddpm {

// True when the bytes start with the PNG signature.
bool looks_like_png(const uint8_t* data, size_t size);

// Decodes to `channels` (1: gray, 3: RGB), as PIL's convert() and stb_image do: alpha is dropped
// (not composited), colour becomes gray by (77 R + 150 G + 29 B) / 256, and 16-bit samples are
// scaled to 8 bits (read as sRGB unless a gAMA or sRGB chunk says otherwise; libpng converts other
// gammas to sRGB). Throws with libpng's reason on corrupt or truncated data.
DecodedImage decode_png(const uint8_t* data, size_t size, int channels);

}  // namespace ddpm
