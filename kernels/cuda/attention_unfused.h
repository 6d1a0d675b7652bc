// The unfused attention path, the benchmark's comparison point for the fused kernels of
// kernels/cuda/attention.cu (it is not what the backend runs). Per head: cuBLAS strided-batched
// GEMMs (over the samples) for S = Q K^T / sqrt(d) and O = P V with a row-softmax kernel between
// them, materializing [N, T, T] score and probability matrices; the backward recomputes S and P,
// then dV = P^T dO, dP = dO V^T, dS = P (dP - rowsum(dO * O)), dQ = dS K / sqrt(d),
// dK = dS^T Q / sqrt(d). Same arguments, dtypes (float32, bfloat16: tensor cores through cuBLAS,
// float32 accumulation) and GradSlot rule as the backend entry points.
#pragma once
#include "engine/op_args.h"

namespace ddpm::cuda {

void attention_unfused_forward(const attention_fwd& args);
void attention_unfused_backward(const attention_bwd& args);

}  // namespace ddpm::cuda
