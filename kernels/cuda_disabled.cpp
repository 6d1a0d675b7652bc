// Linked instead of kernels/cuda/ when the project is configured with DDPM_WITH_CUDA=OFF.
#include "engine/backend.h"
#include "engine/error.h"
#include "engine/storage.h"

namespace ddpm {

namespace {
[[noreturn]] void no_cuda() {
  detail::fail("CUDA: this build has no CUDA backend (configured with DDPM_WITH_CUDA=OFF); "
               "rebuild with nvcc available or use the CPU device");
}
}  // namespace

bool cuda_available() { return false; }
void use_cuda_device(int) {}
void synchronize(Device) {}
Allocator& cuda_allocator() { no_cuda(); }
void cuda_copy_bytes(void*, Device, const void*, Device, size_t) { no_cuda(); }
void cuda_zero_bytes(void*, size_t) { no_cuda(); }
Backend& cuda_backend() { no_cuda(); }

}  // namespace ddpm
