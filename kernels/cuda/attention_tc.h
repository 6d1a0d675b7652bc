// Tensor-core attention for bfloat16 (kernels/cuda/attention_tc.cu): FlashAttention-2 style
// forward and backward on mma.sync m16n8k16 (float32 accumulation), the same arguments and GradSlot
// rule as CudaBackend::attention_forward / attention_backward, CPU reference semantics as
// kernels/cpu/attention.cpp. Which implementation the backend runs: attention_impl() below.
#pragma once
#include "engine/op_args.h"

namespace ddpm::cuda {

// The kernels take bfloat16 q, k, v (and out, grad_out, gradients) [N, T, C] with head size
// d = C / heads a multiple of 8 up to 256, C a multiple of 8 and 16-byte aligned pointers.
bool attention_tc_supported(const Tensor& q, int heads, std::initializer_list<const Tensor*> others);
void attention_tc_forward(const attention_fwd& args);
void attention_tc_backward(const attention_bwd& args);

// The bfloat16 attention implementation the backend runs: DDPM_ATTENTION_IMPL=tc (the default:
// tensor cores where attention_tc_supported, else simt), simt (kernels/cuda/attention.cu) or
// unfused (cuBLAS, attention_unfused.h). float32 always runs simt. Read once per process.
enum class AttentionImpl { Tc, Simt, Unfused };
AttentionImpl attention_impl();

}  // namespace ddpm::cuda
