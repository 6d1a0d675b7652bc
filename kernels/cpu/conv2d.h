#pragma once
#include <cstdint>

namespace ddpm::cpu {
// Sets the bound on conv2d's im2col scratch (bytes; <= 0 restores the default) and returns the
// previous bound. Tests use it to force a batch to be split into several chunks.
int64_t set_conv2d_chunk_bytes(int64_t bytes);
}  // namespace ddpm::cpu
