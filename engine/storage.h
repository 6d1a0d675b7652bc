// Raw device memory behind tensors. Allocators are per device: the CPU one hands out 64-byte
// aligned blocks; the CUDA one lives in kernels/cuda.
#pragma once
#include <cstddef>
#include <memory>

#include "engine/device.h"

namespace ddpm {

struct Allocator {
  virtual ~Allocator() = default;
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* ptr, size_t bytes) = 0;
};

Allocator& allocator_for(Device device);

class Storage {
 public:
  Storage(Device device, size_t bytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  Device device_;
  size_t bytes_;
  void* data_;
};

// Byte copy between any two devices (host<->device goes through the CUDA runtime).
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);
void zero_bytes(void* dst, Device device, size_t bytes);

// CUDA hooks, implemented in kernels/cuda (or as stubs that throw when CUDA is off).
Allocator& cuda_allocator();
void cuda_copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);
void cuda_zero_bytes(void* dst, size_t bytes);

}  // namespace ddpm
