// Checked CUDA runtime calls: failures throw ddpm::Error naming the call, file and line.
#pragma once
#include <cuda_runtime.h>

#include "engine/error.h"
#include "kernels/cuda/launch_count.h"

#define DDPM_CUDA_CHECK(call)                                                                 \
  do {                                                                                        \
    cudaError_t ddpm_status_ = (call);                                                        \
    if (ddpm_status_ != cudaSuccess)                                                          \
      ::ddpm::detail::fail("CUDA error in ", #call, " at ", __FILE__, ":", __LINE__, ": ",    \
                           cudaGetErrorString(ddpm_status_));                                 \
  } while (0)

// After a kernel launch: reports bad launch configurations at the launch site, and counts the
// launch (kernels/cuda/launch_count.h).
#define DDPM_CUDA_CHECK_LAUNCH()          \
  do {                                    \
    ::ddpm::cuda::count_kernel_launch();  \
    DDPM_CUDA_CHECK(cudaGetLastError());  \
  } while (0)
