// Runs the shared Philox header on the device, so that a gpu test can compare it with the host.
#include "engine/philox.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/philox_probe.h"

namespace ddpm {

namespace {
__global__ void philox_probe_kernel(uint64_t seed, uint64_t stream, int64_t n, float* uniform, float* normal) {
  int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  uniform[i] = philox::uniform(seed, stream, static_cast<uint64_t>(i));
  normal[i] = philox::normal(seed, stream, static_cast<uint64_t>(i));
}
}  // namespace

void cuda_philox_probe(uint64_t seed, uint64_t stream, int64_t n, float* uniform_host, float* normal_host) {
  float* buffers = nullptr;
  DDPM_CUDA_CHECK(cudaMalloc(&buffers, 2 * static_cast<size_t>(n) * sizeof(float)));
  const int threads = 256;
  const auto blocks = static_cast<unsigned>((n + threads - 1) / threads);
  philox_probe_kernel<<<blocks, threads>>>(seed, stream, n, buffers, buffers + n);
  DDPM_CUDA_CHECK_LAUNCH();
  DDPM_CUDA_CHECK(cudaMemcpy(uniform_host, buffers, n * sizeof(float), cudaMemcpyDeviceToHost));
  DDPM_CUDA_CHECK(cudaMemcpy(normal_host, buffers + n, n * sizeof(float), cudaMemcpyDeviceToHost));
  DDPM_CUDA_CHECK(cudaFree(buffers));
}

}  // namespace ddpm
