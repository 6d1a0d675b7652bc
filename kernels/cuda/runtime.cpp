// CUDA device memory and availability. The allocator is plain cudaMalloc for now; the caching
// allocator replaces it with the CUDA backend.
#include <cuda_runtime.h>

#include "engine/backend.h"
#include "engine/storage.h"
#include "kernels/cuda/check.h"

namespace ddpm {

bool cuda_available() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no device" error
    return false;
  }
  return count > 0;
}

namespace {
struct CudaAllocator final : Allocator {
  void* allocate(size_t bytes) override {
    if (bytes == 0) return nullptr;
    DDPM_CHECK(cuda_available(), "cuda allocator: no CUDA device is available on this machine; use the CPU device");
    void* p = nullptr;
    DDPM_CUDA_CHECK(cudaMalloc(&p, bytes));
    return p;
  }
  void deallocate(void* ptr, size_t) override { cudaFree(ptr); }
};

cudaMemcpyKind kind_of(Device dst, Device src) {
  if (dst == Device::CUDA && src == Device::CUDA) return cudaMemcpyDeviceToDevice;
  if (dst == Device::CUDA) return cudaMemcpyHostToDevice;
  if (src == Device::CUDA) return cudaMemcpyDeviceToHost;
  return cudaMemcpyHostToHost;
}
}  // namespace

Allocator& cuda_allocator() {
  static CudaAllocator allocator;
  return allocator;
}

void cuda_copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  DDPM_CUDA_CHECK(cudaMemcpy(dst, src, bytes, kind_of(dst_device, src_device)));
}

void cuda_zero_bytes(void* dst, size_t bytes) { DDPM_CUDA_CHECK(cudaMemset(dst, 0, bytes)); }


}  // namespace ddpm
