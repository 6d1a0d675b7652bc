#include "kernels/cuda/cuda_backend.h"

#include "engine/error.h"

namespace ddpm {

Backend& cuda_backend() {
  // Asked once: every op dispatch comes through here, and the answer does not change.
  static const bool available = cuda_available();
  DDPM_CHECK(available, "CUDA backend: no CUDA device is available on this machine; use the CPU device");
  static CudaBackend backend;
  return backend;
}

}  // namespace ddpm
