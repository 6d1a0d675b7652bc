#include "kernels/cuda/cuda_backend.h"

#include "engine/error.h"

namespace ddpm {

Backend& cuda_backend() {
  DDPM_CHECK(cuda_available(), "CUDA backend: no CUDA device is available on this machine; use the CPU device");
  static CudaBackend backend;
  return backend;
}

}  // namespace ddpm
