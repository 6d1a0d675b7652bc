// Checked cuBLAS / cuDNN calls: failures throw ddpm::Error naming the call, file and line.
#pragma once
#include <cublas_v2.h>
#include <cudnn.h>

#include "kernels/cuda/check.h"

#define DDPM_CUBLAS_CHECK(call)                                                                       \
  do {                                                                                                \
    ::ddpm::cuda::count_library_call();                                                               \
    cublasStatus_t ddpm_status_ = (call);                                                             \
    if (ddpm_status_ != CUBLAS_STATUS_SUCCESS)                                                        \
      ::ddpm::detail::fail("cuBLAS error in ", #call, " at ", __FILE__, ":", __LINE__, ": ",          \
                           cublasGetStatusString(ddpm_status_));                                      \
  } while (0)

#define DDPM_CUDNN_CHECK(call)                                                                        \
  do {                                                                                                \
    cudnnStatus_t ddpm_status_ = (call);                                                              \
    if (ddpm_status_ != CUDNN_STATUS_SUCCESS)                                                         \
      ::ddpm::detail::fail("cuDNN error in ", #call, " at ", __FILE__, ":", __LINE__, ": ",           \
                           cudnnGetErrorString(ddpm_status_));                                        \
  } while (0)
