// Counters of the CUDA caching allocator (kernels/cuda/device_memory.cpp), for tests and benchmarks:
// a training step that is warm makes no new device allocation, which a test checks by comparing
// device_allocations before and after a repeated op sequence.
#pragma once
#include <cstddef>
#include <cstdint>

namespace ddpm {

struct CudaAllocatorStats {
  size_t bytes_in_use = 0;       // blocks handed out (sizes rounded to their bin)
  size_t bytes_cached = 0;       // free blocks kept for reuse
  size_t peak_bytes_in_use = 0;
  int64_t device_allocations = 0;  // cudaMalloc calls so far (cache misses)
  int64_t device_frees = 0;        // cudaFree calls so far (empty_cache, out-of-memory retries)
};

CudaAllocatorStats cuda_allocator_stats();

// Starts a new peak: peak_bytes_in_use becomes bytes_in_use (torch.cuda.reset_peak_memory_stats).
void cuda_reset_peak_bytes();

// Waits for the device, then returns every cached free block to the driver. Blocks in use stay.
void cuda_empty_cache();

}  // namespace ddpm
