#pragma once
#include <cstdint>

namespace ddpm {
// Draws n uniforms and n normals on the GPU from (seed, stream) into host arrays.
void cuda_philox_probe(uint64_t seed, uint64_t stream, int64_t n, float* uniform_host, float* normal_host);
}  // namespace ddpm
