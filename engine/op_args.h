// Argument structs for every entry of engine/ops.def. Forward structs carry inputs, attributes
// and the preallocated output; backward structs carry the upstream gradient, what the forward
// saved and one GradSlot per input.
//
// GradSlot rule (see engine/autograd.h): a kernel skips a slot that is not wanted(); otherwise it
// writes the slot (accumulate == false) or adds into it (accumulate == true).
#pragma once
#include <cstdint>

#include "engine/diffusion_op_types.h"
#include "engine/dropout_mask.h"
#include "engine/pad2d.h"
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

// x [..., K], weight[g] [N, K], bias[g] [N] (all three or none) for g = q, k, v
// -> out [3, ..., N], out[g] = x weight[g]^T + bias[g]: attention's three projections of one input in
// one op (on CUDA one batched GEMM), written where the packed attention reads them (attention_qkv).
struct linear_qkv_fwd {
  Tensor x;
  Tensor weight[3], bias[3];
  Tensor out;
};
struct linear_qkv_bwd {
  Tensor grad_out, x;  // grad_out [3, ..., N]
  Tensor weight[3];
  GradSlot grad_x;
  GradSlot grad_weight[3], grad_bias[3];
};

// x [N, H, W, Cin] (NHWC), weight [Cout, KH, KW, Cin], bias [Cout] (optional)
// -> out [N, OH, OW, Cout], OH = (H + pad.top + pad.bottom - KH) / stride + 1,
//    OW = (W + pad.left + pad.right - KW) / stride + 1
struct conv2d_fwd {
  Tensor x, weight, bias, out;
  int stride = 1;
  Pad2d pad;
};
struct conv2d_bwd {
  Tensor grad_out, x, weight;
  int stride = 1;
  Pad2d pad;
  GradSlot grad_x, grad_weight, grad_bias;
};

// x [N, ..., C] normalized over (spatial, C/groups) per sample and group; gamma, beta [C];
// mean, rstd [N, groups] are saved for the backward. Optionally out = silu(normalized).
// sample_bias [N, C] (optional) is added to x first, per sample and channel (the UNet's time
// embedding): the statistics, mean and rstd are those of x + sample_bias. dropout (p > 0) masks the
// output last (after the SiLU), exactly as the dropout op would; the backward redraws the mask.
struct group_norm_fwd {
  Tensor x, gamma, beta, out, mean, rstd;
  int groups = 32;
  double eps = 1e-5;
  bool fuse_silu = false;
  Tensor sample_bias{};  // (initialized, so that callers without it compile warning-free)
  DropoutMask dropout{};
};
struct group_norm_bwd {
  Tensor grad_out, x, gamma, beta, mean, rstd;
  int groups = 32;
  bool fuse_silu = false;
  GradSlot grad_x, grad_gamma, grad_beta;
  Tensor sample_bias{};
  GradSlot grad_sample_bias{};  // [N, C]: the sum of grad_x over the spatial axes
  DropoutMask dropout{};
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

// out = x * keep / (1 - p), keep = (uniform(seed, stream, offset + i) >= p); the mask is redrawn
// in the backward from the same Philox address instead of being stored. `offset` places a shard of
// a batch at its rows' addresses in the whole batch (data-parallel training).
struct dropout_fwd {
  Tensor x, out;
  double p = 0.0;
  uint64_t seed = 0, stream = 0, offset = 0;
};
struct dropout_bwd {
  Tensor grad_out;
  double p = 0.0;
  uint64_t seed = 0, stream = 0, offset = 0;
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

// x [..., C] -> out [..., end - begin]: channels [begin, end) of the last axis
struct channel_slice_fwd {
  Tensor x, out;
  int64_t begin = 0, end = 0;
};
struct channel_slice_bwd {
  Tensor grad_out;
  int64_t begin = 0, end = 0;
  GradSlot grad_x;  // [..., C]: the slice's gradient, zero outside [begin, end)
};

// ---- vision ops (Inception-v3; kernels/pool_resize_math.h holds the shared index arithmetic) ----
// out = max(x, 0)
struct relu_fwd {
  Tensor x, out;
};
struct relu_bwd {
  Tensor grad_out, x;
  GradSlot grad_x;
};

// Pooling over kernel x kernel windows of x [N, H, W, C] with symmetric zero padding, floor mode:
// out [N, OH, OW, C], OH = (H + 2 pad - kernel) / stride + 1; pad <= kernel / 2, so every window
// holds an input pixel. Max: padding never wins, the gradient goes to the first maximum (row-major
// in the window). Average: divided by kernel^2 (count_include_pad) or by the in-bounds taps.
struct max_pool2d_fwd {
  Tensor x, out;
  int kernel = 2, stride = 2, pad = 0;
};
struct max_pool2d_bwd {
  Tensor grad_out, x;
  int kernel = 2, stride = 2, pad = 0;
  GradSlot grad_x;
};
struct avg_pool2d_fwd {
  Tensor x, out;
  int kernel = 2, stride = 2, pad = 0;
  bool count_include_pad = true;
};
struct avg_pool2d_bwd {
  Tensor grad_out;
  int kernel = 2, stride = 2, pad = 0;
  bool count_include_pad = true;
  GradSlot grad_x;  // [N, H, W, C]: its shape gives the input's
};

// x [N, H, W, C] -> out [N, OH, OW, C] (any sizes), bilinear with align_corners = False (PyTorch's
// convention): output o of an axis reads source coordinate max((o + 0.5) * in / out - 0.5, 0).
struct resize_bilinear_fwd {
  Tensor x, out;
};
struct resize_bilinear_bwd {
  Tensor grad_out;
  GradSlot grad_x;  // [N, H, W, C]: its shape gives the input's
};

// ---- diffusion (see diffusion/ and docs/math.md) ----
// DiffusionCoef, Prediction, VarianceType: engine/diffusion_op_types.h

// x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps per sample (t [N] holds step indices as reals), in
// one pass. eps is drawn from Philox (seed, stream), element i at address offset + i, into `noise`
// unless noise_given, in which case `noise` is read. When v_target is defined it also receives v = sqrt(abar) eps - sqrt(1-abar) x0.
struct q_sample_args {
  Tensor x0, t, coefs;       // [N, ...], [N], [kCoefCount, T]
  Tensor x_t, noise, v_target;
  bool noise_given = false;
  uint64_t seed = 0, stream = 0, offset = 0;
};

// One reverse step at table column `step` for every sample, in one pass:
//   x0_hat from the model output (per `prediction`), clamped to [-1, 1] when clip;
//   Ancestral: x_prev = mu_tilde(x0_hat, x_t) + exp(logvar / 2) z (no noise at step 0), logvar per
//     `variance` (LearnedRange reads var_out, the model's second half, in [-1, 1]);
//   Ddim: eps_hat from x0_hat, x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - s^2) eps_hat + s z,
//     s = eta sqrt((1 - abar_prev) / (1 - abar)) sqrt(1 - abar / abar_prev).
// z comes from Philox (seed, stream). Optional outputs: x0_pred receives x0_hat; in Ancestral
// mode mean and log_var receive the mean and log variance of p(x_{t-1} | x_t) (p_mean_variance).
struct reverse_step_args {
  enum class Mode : uint8_t { Ancestral, Ddim };
  Tensor x_t, model_out, var_out, coefs;  // [N, ...] x3 (var_out optional), [kCoefCount, T]
  Tensor x_prev, x0_pred, mean, log_var;
  int step = 0;
  Mode mode = Mode::Ancestral;
  Prediction prediction = Prediction::Epsilon;
  VarianceType variance = VarianceType::FixedSmall;
  bool clip = true;
  double eta = 0.0;
  uint64_t seed = 0, stream = 0;
};

// One step of the noise-level samplers (DPM-Solver++, Heun, Euler ancestral: diffusion/solvers.h)
// in one pass over VP-scaled states (x = alpha x0 + sigma eps, alpha^2 + sigma^2 = 1):
//   d0 = x0_hat from model_out, the model's output at the point model_in (x when undefined) whose
//        noise level is (in_alpha, in_sigma): eps: (model_in - in_sigma out) / in_alpha,
//        v: in_alpha model_in - in_sigma out, x0: out; clamped to [-1, 1] when clip;
//   x_next = c_x x + c_d0 d0 + c_d1 d1 + c_d2 d2 + c_z z, z from Philox (seed, stream) at the
//        addresses reverse_step uses.
// d1, d2 (earlier data predictions) may be undefined where their coefficient is 0; without
// model_out (pure noise injection) c_d0 must be 0. d0_out, when defined, receives d0. Every
// element is read before it is written, so x_next may alias x and d0_out may alias d1 or d2.
struct solver_step_args {
  Tensor x, model_in, model_out, d1, d2;  // [N, ...] each (all but x optional)
  Tensor x_next, d0_out;
  Prediction prediction = Prediction::Epsilon;
  bool clip = true;
  double in_alpha = 1.0, in_sigma = 0.0;
  double c_x = 1.0, c_d0 = 0.0, c_d1 = 0.0, c_d2 = 0.0, c_z = 0.0;
  uint64_t seed = 0, stream = 0;
};

// The variational-bound term per sample, in nats per dimension (mean over every axis but the
// first): KL(q(x_{t-1}|x_t,x0) || p(x_{t-1}|x_t)) for t > 0 and the discretized-Gaussian decoder
// NLL -log p(x0|x_1) for t = 0. Differentiable in model_out (the mean part) and var_out (learned
// range only).
struct vlb_term_fwd {
  Tensor model_out, var_out, x0, x_t, t, coefs;  // [N, ...] x4 (var_out optional), [N], tables
  Tensor out;                                    // [N]
  Prediction prediction = Prediction::Epsilon;
  VarianceType variance = VarianceType::FixedSmall;
  bool clip = false;
};
struct vlb_term_bwd {
  Tensor grad_out, model_out, var_out, x0, x_t, t, coefs;
  Prediction prediction = Prediction::Epsilon;
  VarianceType variance = VarianceType::FixedSmall;
  bool clip = false;
  GradSlot grad_model_out, grad_var_out;
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
// out += in converted to out's dtype, then in = 0: folds the flat reduced-precision gradients of
// mixed precision into the master gradients in one pass (engine/nn/parameters.h).
struct accumulate_cast_args {
  Tensor in, out;  // same element count and device; out float32 or float64
};
struct sum_squares_args {
  Tensor x;
  double* result = nullptr;  // host pointer
  Tensor out = Tensor();  // instead of result: float64 [1] on x's device (no read-back; CUDA graphs)
};
// Adam / AdamW over flat buffers. grad is multiplied by grad_scale first (global-norm clipping).
// When ema is defined, the same pass also updates ema = ema_decay * ema + (1 - ema_decay) * params
// with the new params (the fused optimizer + EMA step). When params_copy is defined (mixed
// precision), the same pass also writes the new params into it, rounded to its dtype.
struct adam_step_args {
  Tensor params, grads, m, v, ema;
  Tensor params_copy;
  double ema_decay = 0.9999;
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  bool decoupled_weight_decay = false;  // AdamW when true, L2 added to the gradient otherwise
  int64_t step = 1;                     // 1-based, for bias correction
  double grad_scale = 1.0;
  // The step's values read on the device instead of lr and step (a CUDA graph replays the same
  // arguments; these tensors are rewritten before each replay): scalars float64 [3] = {lr,
  // 1 - beta1^step, 1 - beta2^step} (optim/adam.h adam_step_scalars). With grad_sum_squares
  // (float64 [1], sum_squares' out) and clip_norm > 0, the gradients are first multiplied by the
  // clipping factor clip_norm / sqrt(sum) rounded to their dtype when the norm exceeds clip_norm,
  // as clip_grad_norm's scale would do to the buffer (grad_scale must stay 1).
  Tensor scalars, grad_sum_squares;
  double clip_norm = 0;
};
// ema = decay * ema + (1 - decay) * params
struct ema_update_args {
  Tensor ema, params;
  double decay = 0.9999;
};

// ---- classification (the classifier of `ddpm classifier`) ----
// x [N, H, W, C] -> out [N, C]: the mean over H and W (global average pooling)
struct global_avg_pool_fwd {
  Tensor x, out;
};
struct global_avg_pool_bwd {
  Tensor grad_out;  // [N, C]
  GradSlot grad_x;  // [N, H, W, C]: grad_out / (H W) at every pixel
};

// logits [N, K], labels [N] (float32 class indices in [0, K)) -> out [N], the per-sample loss
// log sum_k exp(logits[n, k]) - logits[n, labels[n]], computed around the row maximum. lse [N]
// (float32, float64 for float64 logits) receives the log-sum-exp for the backward, which
// recomputes softmax = exp(logits - lse) instead of storing it. A label outside [0, K) gives NaN.
struct softmax_cross_entropy_fwd {
  Tensor logits, labels, out, lse;
};
struct softmax_cross_entropy_bwd {
  Tensor grad_out, logits, labels, lse;
  GradSlot grad_logits;  // grad_out[n] (softmax[n, k] - [k == labels[n]])
};

}  // namespace ddpm
