#pragma once
#include <cstdint>

namespace ddpm {

enum class Device : uint8_t { CPU, CUDA };

inline const char* device_name(Device d) {
  switch (d) {
    case Device::CPU: return "cpu";
    case Device::CUDA: return "cuda";
  }
  return "?";
}

// True when this build has the CUDA backend and a usable GPU is present. Never throws.
bool cuda_available();
// Makes GPU `ordinal` modulo the device count this process's device (one GPU per data-parallel
// rank); call before any CUDA work. Does nothing without a GPU.
void use_cuda_device(int ordinal);
// Waits until the device has finished the work queued so far (a no-op on the CPU): for timing.
void synchronize(Device device);

}  // namespace ddpm
