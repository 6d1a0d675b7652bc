// Argument structs for every entry of engine/ops.def. Forward structs carry inputs, attributes
// and the preallocated output; backward structs carry the upstream gradient, what the forward
// saved and one GradSlot per input.
//
// GradSlot rule (see engine/autograd.h): a kernel skips a slot that is not wanted(); otherwise it
// writes the slot (accumulate == false) or adds into it (accumulate == true).
#pragma once
#include <cstdint>

#include "engine/tensor.h"

namespace ddpm {

struct GradSlot {
  Tensor tensor;
  bool accumulate = false;
  bool wanted() const { return tensor.defined(); }
};

// ---- elementwise: out = a (+,-,*) b, b broadcast to a's shape (numpy rules, b's rank <= a's) ----
struct BinaryFwd {
  Tensor a, b, out;
};
struct BinaryBwd {
  Tensor grad_out, a, b;
  GradSlot grad_a, grad_b;
};
using add_fwd = BinaryFwd;
using add_bwd = BinaryBwd;
using sub_fwd = BinaryFwd;
using sub_bwd = BinaryBwd;
using mul_fwd = BinaryFwd;
using mul_bwd = BinaryBwd;

// out = factor * x (out may alias x)
struct scale_fwd {
  Tensor x, out;
  double factor = 1.0;
};
struct scale_bwd {
  Tensor grad_out;
  double factor = 1.0;
  GradSlot grad_x;
};

// out = x * sigmoid(x)
struct silu_fwd {
  Tensor x, out;
};
struct silu_bwd {
  Tensor grad_out, x;
  GradSlot grad_x;
};

// x [..., in], weight [out, in], bias [out] (optional) -> out [..., out]
struct linear_fwd {
  Tensor x, weight, bias, out;
};
struct linear_bwd {
  Tensor grad_out, x, weight;
  GradSlot grad_x, grad_weight, grad_bias;
};

// x [N, H, W, Cin] (NHWC), weight [Cout, KH, KW, Cin], bias [Cout] (optional)
// -> out [N, OH, OW, Cout], OH = (H + 2 pad - KH) / stride + 1
struct conv2d_fwd {
  Tensor x, weight, bias, out;
  int stride = 1, pad = 0;
};
struct conv2d_bwd {
  Tensor grad_out, x, weight;
  int stride = 1, pad = 0;
  GradSlot grad_x, grad_weight, grad_bias;
};

// x [N, ..., C] normalized over (spatial, C/groups) per sample and group; gamma, beta [C];
// mean, rstd [N, groups] are saved for the backward. Optionally out = silu(normalized).
struct group_norm_fwd {
  Tensor x, gamma, beta, out, mean, rstd;
  int groups = 32;
  double eps = 1e-5;
  bool fuse_silu = false;
};
struct group_norm_bwd {
  Tensor grad_out, x, gamma, beta, mean, rstd;
  int groups = 32;
  bool fuse_silu = false;
  GradSlot grad_x, grad_gamma, grad_beta;
};

// q, k, v [N, T, C] with `heads` heads of d = C / heads channels each
// -> out [N, T, C], per head softmax(q k^T / sqrt(d)) v
struct attention_fwd {
  Tensor q, k, v, out;
  int heads = 1;
};
struct attention_bwd {
  Tensor grad_out, q, k, v, out;
  int heads = 1;
  GradSlot grad_q, grad_k, grad_v;
};

// x [N, H, W, C] -> out [N, 2H, 2W, C], nearest neighbour
struct upsample2x_fwd {
  Tensor x, out;
};
struct upsample2x_bwd {
  Tensor grad_out;
  GradSlot grad_x;
};

// a [..., Ca], b [..., Cb] -> out [..., Ca + Cb] (the last axis: channels in NHWC)
struct concat_fwd {
  Tensor a, b, out;
};
struct concat_bwd {
  Tensor grad_out;
  GradSlot grad_a, grad_b;
};

// out = x * keep / (1 - p), keep = (uniform(seed, stream, i) >= p); the mask is redrawn in the
// backward from the same Philox address instead of being stored.
struct dropout_fwd {
  Tensor x, out;
  double p = 0.0;
  uint64_t seed = 0, stream = 0;
};
struct dropout_bwd {
  Tensor grad_out;
  double p = 0.0;
  uint64_t seed = 0, stream = 0;
  GradSlot grad_x;
};

// t [N] (timesteps as reals) -> out [N, dim]: [sin(t f_i), cos(t f_i)], f_i = 10000^(-i/(dim/2-1))
struct timestep_embedding_fwd {
  Tensor t, out;
  int dim = 0;
};
struct timestep_embedding_bwd {
  Tensor grad_out, t;
  int dim = 0;
  GradSlot grad_t;
};

// out = factor * sum of x over every axis from `keep` on: x [d0..d(keep-1), ...] -> [d0..d(keep-1)]
// (mean is sum with factor 1/count)
struct sum_fwd {
  Tensor x, out;
  int keep = 0;
  double factor = 1.0;
};
struct sum_bwd {
  Tensor grad_out;
  int keep = 0;
  double factor = 1.0;
  GradSlot grad_x;
};

// out = mean over the axes from `keep` on of (a - b)^2
struct mse_fwd {
  Tensor a, b, out;
  int keep = 0;
};
struct mse_bwd {
  Tensor grad_out, a, b;
  int keep = 0;
  GradSlot grad_a, grad_b;
};

// ---- plain kernels ----
struct fill_args {
  Tensor out;
  double value = 0.0;
};
enum class Distribution : uint8_t { Uniform, Normal };
// Uniform: low + (high - low) u, u in (0, 1). Normal: mean + stddev z (Box-Muller).
struct fill_random_args {
  Tensor out;
  Distribution distribution = Distribution::Normal;
  double a = 0.0, b = 1.0;  // (low, high) or (mean, stddev)
  uint64_t seed = 0, stream = 0;
};
struct cast_args {
  Tensor in, out;  // same shape and device, any dtypes
};
struct sum_squares_args {
  Tensor x;
  double* result = nullptr;  // host pointer
};
// Adam / AdamW over flat buffers. grad is multiplied by grad_scale first (global-norm clipping).
struct adam_step_args {
  Tensor params, grads, m, v;
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  bool decoupled_weight_decay = false;  // AdamW when true, L2 added to the gradient otherwise
  int64_t step = 1;                     // 1-based, for bias correction
  double grad_scale = 1.0;
};
// ema = decay * ema + (1 - decay) * params
struct ema_update_args {
  Tensor ema, params;
  double decay = 0.9999;
};

}  // namespace ddpm
