// Entry points shared by the conv2d files: conv2d.cu picks the implementation, the custom
// kernels live in conv2d_custom_{f32,bf16}.cu (one instantiation per dtype), cuDNN in
// conv2d_cudnn.cu, the reductions in conv2d_reduce.cu.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#include "engine/op_args.h"

namespace ddpm::cuda::conv {

// Custom implicit-GEMM kernels; T = float or __nv_bfloat16 (every tensor of the call).
template <class T> void custom_forward(const conv2d_fwd& args);
template <class T> void custom_backward(const conv2d_bwd& args);

// cuDNN. The forward returns false, having done nothing, when cuDNN has no algorithm for the
// shape; the backward runs such directions on the custom kernels itself.
bool cudnn_forward(const conv2d_fwd& args);
void cudnn_backward(const conv2d_bwd& args);

// out[i] (=|+=) sum over s of partials[s * count + i], s in increasing order (deterministic).
template <class T> void sum_partials(const float* partials, int splits, int64_t count, T* out, bool accumulate);
// out [cols] (=|+=) column sums of g [rows, cols]: float32 partial sums over row ranges, then
// sum_partials (deterministic; no atomics).
template <class T> void column_sums(const T* g, int64_t rows, int cols, T* out, bool accumulate);
// out [rows, cols] += bias [cols]
template <class T> void add_bias_rows(T* out, const T* bias, int64_t rows, int cols);

}  // namespace ddpm::cuda::conv
