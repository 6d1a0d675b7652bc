// Which implementation runs conv2d on CUDA: the project's implicit-GEMM kernels (Custom, the
// default) or cuDNN. One process-wide setting, read at every call (the trainer config sets it).
// With Cudnn, a shape or direction cuDNN has no algorithm for (and empty tensors) falls back to
// the custom kernels; bias gradients always use the custom column reduction.
#pragma once

namespace ddpm::cuda {

enum class ConvImpl { Custom, Cudnn };
void set_conv2d_impl(ConvImpl impl);
ConvImpl conv2d_impl();

// How cuDNN algorithms are chosen, once per shape and direction: Heuristic asks cuDNN's
// heuristics (deterministic, no allocations; the default); Measure runs cudnnFind (the fastest on
// this device, at a one-time cost; what the benchmarks use to give cuDNN its best showing).
enum class CudnnAlgoSearch { Heuristic, Measure };
void set_cudnn_algo_search(CudnnAlgoSearch search);
CudnnAlgoSearch cudnn_algo_search();

// Whether cuDNN may use algorithms whose accumulation order varies run to run (atomics; cuDNN's
// CUDNN_NON_DETERMINISTIC): false allows them, true (the default, config train.deterministic)
// skips them, so that two runs of the same seed and config give bit-identical weights. The custom
// kernels are deterministic either way. Part of the key of cuDNN's per-shape plans.
void set_conv2d_deterministic(bool deterministic);
bool conv2d_deterministic();

// For tests and benchmarks: force the custom kernels' tile configuration (0 = 128x128,
// 1 = 128x64, 2 = 64x64 outputs per block) instead of choosing by shape; -1 restores the choice.
void set_conv2d_custom_tile(int config);
int conv2d_custom_tile();

}  // namespace ddpm::cuda
