// Checked CUDA runtime calls: failures throw ddpm::Error naming the call, file and line.
#pragma once
#include <cuda_runtime.h>

#include "engine/error.h"

#define DDPM_CUDA_CHECK(call)                                                                 \
  do {                                                                                        \
    cudaError_t ddpm_status_ = (call);                                                        \
    if (ddpm_status_ != cudaSuccess)                                                          \
      ::ddpm::detail::fail("CUDA error in ", #call, " at ", __FILE__, ":", __LINE__, ": ",    \
                           cudaGetErrorString(ddpm_status_));                                 \
  } while (0)

namespace ddpm::cuda {
// Launches and cuBLAS calls so far, counted by the two check macros (engine/backend_call_counter.h).
void count_kernel_launch();
void count_library_call();
}  // namespace ddpm::cuda

// After a kernel launch: reports bad launch configurations at the launch site, and counts the launch.
#define DDPM_CUDA_CHECK_LAUNCH()              \
  do {                                        \
    ::ddpm::cuda::count_kernel_launch();      \
    DDPM_CUDA_CHECK(cudaGetLastError());      \
  } while (0)
