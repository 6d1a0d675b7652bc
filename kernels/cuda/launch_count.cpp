#include "kernels/cuda/launch_count.h"

#include <atomic>

namespace ddpm::cuda {

namespace {
std::atomic<uint64_t> launches{0};
}  // namespace

void count_kernel_launch() { launches.fetch_add(1, std::memory_order_relaxed); }
uint64_t kernel_launches() { return launches.load(std::memory_order_relaxed); }

}  // namespace ddpm::cuda
