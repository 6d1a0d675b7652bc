#include "engine/storage.h"

#include <malloc.h>

#include <cstdlib>
#include <cstring>
#include <new>

#include "engine/error.h"

namespace ddpm {

namespace {
struct CpuAllocator final : Allocator {
  CpuAllocator() {
    // Training frees and reallocates the same large activation buffers every step. glibc would
    // serve blocks above 128 KiB by mmap and return them to the kernel on free, so every step
    // would page-fault and zero them again; keeping them in the heap makes reuse free.
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  }
  void* allocate(size_t bytes) override {
    if (bytes == 0) return nullptr;
    size_t rounded = (bytes + 63) / 64 * 64;  // aligned_alloc wants a multiple of the alignment
    void* p = std::aligned_alloc(64, rounded);
    DDPM_CHECK(p != nullptr, "cpu allocator: out of memory allocating ", bytes, " bytes");
    return p;
  }
  void deallocate(void* ptr, size_t) override { std::free(ptr); }
};
}  // namespace

Allocator& allocator_for(Device device) {
  static CpuAllocator cpu;
  switch (device) {
    case Device::CPU: return cpu;
    case Device::CUDA: return cuda_allocator();
  }
  return cpu;
}

Storage::Storage(Device device, size_t bytes)
    : device_(device), bytes_(bytes), data_(allocator_for(device).allocate(bytes)) {}

Storage::~Storage() {
  if (data_) allocator_for(device_).deallocate(data_, bytes_);
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (bytes == 0) return;
  if (dst_device == Device::CPU && src_device == Device::CPU) {
    std::memcpy(dst, src, bytes);
    return;
  }
  cuda_copy_bytes(dst, dst_device, src, src_device, bytes);
}

void zero_bytes(void* dst, Device device, size_t bytes) {
  if (bytes == 0) return;
  if (device == Device::CPU)
    std::memset(dst, 0, bytes);
  else
    cuda_zero_bytes(dst, bytes);
}

}  // namespace ddpm
