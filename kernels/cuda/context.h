// Per-process CUDA state: the stream every kernel runs on, library handles bound to it, and a
// workspace for kernel scratch. Created on first use; all on the current device.
//
// Every kernel launch, library call and copy must go to stream(): the caching allocator
// (device_memory.cpp) reuses freed blocks at once, which is only safe because all work is ordered on
// this one stream.
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstddef>

namespace ddpm::cuda {

cudaStream_t stream();
cublasHandle_t cublas();
cublasLtHandle_t cublas_lt();
cudnnHandle_t cudnn();
// Scratch of at least `bytes`, valid until the next workspace() call (kernels on the one stream
// are ordered, so a kernel's scratch is free again once the next kernel is enqueued after it).
void* workspace(size_t bytes);

// The current device's properties (read once).
const cudaDeviceProp& device_properties();
inline int sm_count() { return device_properties().multiProcessorCount; }

}  // namespace ddpm::cuda
