// A count of this process's kernel launches: DDPM_CUDA_CHECK_LAUNCH (kernels/cuda/check.h) adds
// one after every launch of ours; cuBLAS's and cuDNN's own kernels, memcpy and memset are not
// counted. bench_end_to_end prints launches per training step from it. Plain C++ (no CUDA
// headers), so host code can read it.
#pragma once
#include <cstdint>

namespace ddpm::cuda {

void count_kernel_launch();
uint64_t kernel_launches();  // since the process started

}  // namespace ddpm::cuda
