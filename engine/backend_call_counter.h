// Counts what the engine asks of its backends, for reports of launches per training step.
//
// BackendCallCounter counts backend method calls (every op's forward and backward, every plain
// kernel) on any device while it is alive: a device-independent proxy for launches, since a CUDA
// backend method is one to a few kernel launches and fusing ops removes whole methods.
// cuda_launch_counts() counts on the CUDA backend itself: kernel launches (each launch site checks
// itself with DDPM_CUDA_CHECK_LAUNCH, which counts) and cuBLAS calls (DDPM_CUBLAS_CHECK; a GEMM is
// usually one kernel). cuDNN calls and cudaMemsetAsync are not counted.
#pragma once
#include <cstdint>

namespace ddpm {

class BackendCallCounter {
 public:
  BackendCallCounter();  // one at a time: a second live counter is an error
  ~BackendCallCounter();
  BackendCallCounter(const BackendCallCounter&) = delete;
  BackendCallCounter& operator=(const BackendCallCounter&) = delete;
  uint64_t calls() const;  // since construction
};

struct CudaLaunchCounts {
  uint64_t kernels = 0;        // our kernels launched since the program started
  uint64_t library_calls = 0;  // cuBLAS calls since the program started
};
CudaLaunchCounts cuda_launch_counts();  // zeros in a build without CUDA

}  // namespace ddpm
