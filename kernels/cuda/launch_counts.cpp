// The CUDA launch counters behind DDPM_CUDA_CHECK_LAUNCH and DDPM_CUBLAS_CHECK.
#include <atomic>

#include "engine/backend_call_counter.h"
#include "kernels/cuda/check.h"

namespace ddpm {

namespace cuda {
namespace {
std::atomic<uint64_t> g_kernels{0}, g_library_calls{0};
}  // namespace

void count_kernel_launch() { g_kernels.fetch_add(1, std::memory_order_relaxed); }
void count_library_call() { g_library_calls.fetch_add(1, std::memory_order_relaxed); }

CudaLaunchCounts launch_counts() { return {g_kernels.load(), g_library_calls.load()}; }
}  // namespace cuda

}  // namespace ddpm
