// The differentiable operations, as free functions. Each checks its inputs (errors name the op,
// the shapes and what was expected), runs the forward on the inputs' backend and records the
// backward. Images are NHWC.
#pragma once
#include <array>
#include <cstdint>

#include "engine/dropout_mask.h"
#include "engine/pad2d.h"
#include "engine/tensor.h"

namespace ddpm {

// Elementwise; b broadcasts to a's shape (numpy rules): e.g. a [N,H,W,C] with b [C] (per channel),
// [N,1,1,1] (per sample) or [N,1,1,C].
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& x, double factor);
Tensor silu(const Tensor& x);

// x [..., in], weight [out, in], bias [out] or undefined -> [..., out]
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = {});
// x [N,H,W,Cin], weight [Cout,KH,KW,Cin] (any KH x KW), bias [Cout] or undefined -> [N,OH,OW,Cout];
// pad: an int for all four sides or Pad2d{top, bottom, left, right}
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = {}, int stride = 1,
              Pad2d pad = 0);
// x [N, ..., C]; gamma, beta [C]; C divisible by groups. fuse_silu applies SiLU to the result.
// sample_bias [N, C] (optional): normalizes x + sample_bias (broadcast over the spatial axes)
// without materializing the sum (the UNet's time-embedding add). dropout (p > 0): the result times
// the dropout op's mask, as dropout(group_norm(...), p, seed, stream, offset) but in one op.
Tensor group_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, int groups,
                  double eps = 1e-5, bool fuse_silu = false, const Tensor& sample_bias = {},
                  const DropoutMask& dropout = {});
// q, k, v [N, T, C] -> [N, T, C]; heads divides C. For an NHWC map, T = H*W (a reshape view).
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads);
// Attention's projections fused: x [..., K], weights[g] [N, K], biases[g] [N] (all or none) for
// g = q, k, v -> [3, ..., N], slice g = linear(x, weights[g], biases[g]).
Tensor linear_qkv(const Tensor& x, const std::array<Tensor, 3>& weights, const std::array<Tensor, 3>& biases);
// attention(q, k, v, heads) with q, k, v the three slices of qkv [3, N, T, C] (views, no copies).
Tensor attention_qkv(const Tensor& qkv, int heads);
Tensor upsample2x(const Tensor& x);                // [N,H,W,C] -> [N,2H,2W,C]
Tensor concat(const Tensor& a, const Tensor& b);   // along the last (channel) axis
// Identity when p == 0. The mask is addressed by (seed, stream) through Philox, element i at
// offset + i (a shard of a batch passes its first element's index in the whole batch).
Tensor dropout(const Tensor& x, double p, uint64_t seed, uint64_t stream, uint64_t offset = 0);
Tensor timestep_embedding(const Tensor& t, int dim);  // t [N] -> [N, dim]

// Reductions over every axis from `keep` on (keep = 0: a single-element result of shape []).
Tensor sum(const Tensor& x, int keep = 0);
Tensor mean(const Tensor& x, int keep = 0);
Tensor mse(const Tensor& a, const Tensor& b, int keep = 0);  // mean of (a - b)^2

// Channels [begin, end) of the last axis: x [..., C] -> [..., end - begin].
Tensor channel_slice(const Tensor& x, int64_t begin, int64_t end);

// x converted to `dtype`, differentiably: the gradient is converted back (mixed precision: float32
// master weights feed bfloat16 layers, and their gradients arrive in float32). Returns x itself
// when it already has that dtype.
Tensor convert(const Tensor& x, DType dtype);

// Vision ops (Inception-v3), NHWC. relu: max(x, 0).
Tensor relu(const Tensor& x);
// x [N,H,W,C] -> [N,OH,OW,C], OH = (H + 2 pad - kernel) / stride + 1; 0 <= pad <= kernel / 2.
Tensor max_pool2d(const Tensor& x, int kernel, int stride, int pad = 0);
// count_include_pad false divides by the window's in-bounds taps (pytorch-fid's Inception blocks).
Tensor avg_pool2d(const Tensor& x, int kernel, int stride, int pad = 0, bool count_include_pad = true);
// x [N,H,W,C] -> [N,out_h,out_w,C], bilinear, align_corners = False (PyTorch's convention).
Tensor resize_bilinear(const Tensor& x, int64_t out_h, int64_t out_w);

// Classification. x [N, H, W, C] -> [N, C], the mean over H and W.
Tensor global_avg_pool(const Tensor& x);
// logits [N, K], labels [N] float32 class indices on the logits' device -> [N], the per-sample
// cross-entropy -log softmax(logits)[label]. Labels must be integers in [0, K).
Tensor softmax_cross_entropy(const Tensor& logits, const Tensor& labels);

}  // namespace ddpm
