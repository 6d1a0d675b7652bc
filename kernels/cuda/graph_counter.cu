// The last kernel of every captured graph (kernels/cuda/graph_capture.cpp): advances the replay
// offsets, so that the next replay draws the next position's random numbers.
#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/graph_capture.h"

namespace ddpm::cuda {

namespace {
__global__ void advance_offsets_kernel(uint64_t* offsets, ReplayStrides strides) {
  if (threadIdx.x < kDrawKinds) offsets[threadIdx.x] = advanced_offset(offsets[threadIdx.x], strides.of[threadIdx.x]);
}
}  // namespace

void launch_advance_offsets(uint64_t* offsets, const ReplayStrides& strides) {
  advance_offsets_kernel<<<1, 32, 0, stream()>>>(offsets, strides);
  DDPM_CUDA_CHECK_LAUNCH();
}

}  // namespace ddpm::cuda
