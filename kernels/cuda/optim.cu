// Adam/AdamW over the flat float32 buffers as ONE pass (with the EMA of the new weights fused in
// when asked), and the stand-alone EMA update. Memory bound: per parameter it reads p, g, m, v
// (and ema) and writes p, m, v (and ema), 28 (36) bytes, with 16-byte vector accesses when the
// buffers allow. Math in float32 (the CPU uses double; the difference is a few float32 ulps of
// each result, far below what training notices, and keeps the kernel memory bound on every GPU).
// Under mixed precision the pass also writes the bfloat16 copy the layers read (round to nearest
// even from the new float32 weight, as a cast would), 2 more bytes per parameter.
#include <cuda_bf16.h>

#include <cmath>

#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/optim_math.h"

namespace ddpm {

namespace {
using cuda::kThreads;
using cuda::launch_1d;

struct AdamHyper {
  float lr, lr_wd, wd, beta1, one_minus_beta1, beta2, one_minus_beta2, eps, grad_scale;
  float inv_bias1, inv_bias2;  // 1 / (1 - beta^step)
  float ema_decay, one_minus_ema_decay;
  bool decoupled;
};

// A captured step's values, read on the device (adam_step_args::scalars, grad_sum_squares); null
// pointers: the host's values in AdamHyper stand.
struct AdamDeviceValues {
  const double* scalars = nullptr;      // {lr, 1 - beta1^step, 1 - beta2^step}
  const double* sum_squares = nullptr;  // of the gradients, for clipping at clip_norm
  double weight_decay = 0, clip_norm = 0;
};

// The hyper-parameters with the device values put in, rounded exactly as the host rounds them
// (double arithmetic, one rounding to float), so captured and uncaptured steps agree bit for bit.
__device__ __forceinline__ AdamHyper resolved(AdamHyper h, const AdamDeviceValues& d) {
  if (d.scalars) {
    const double lr = d.scalars[om::kLr];
    h.lr = static_cast<float>(lr);
    h.lr_wd = static_cast<float>(lr * d.weight_decay);
    h.inv_bias1 = static_cast<float>(1.0 / d.scalars[om::kBias1]);
    h.inv_bias2 = static_cast<float>(1.0 / d.scalars[om::kBias2]);
  }
  // clip_grad_norm's float(factor) * g, fused (grad_scale is 1 in this mode).
  if (d.sum_squares) h.grad_scale = static_cast<float>(om::clip_factor(*d.sum_squares, d.clip_norm));
  return h;
}

// One parameter, the CPU's formula: the gradient is scaled (clipping), then either the weight
// decays (AdamW) or L2 joins the gradient (Adam); then the moments and the bias-corrected step.
template <bool kEma>
__device__ __forceinline__ void adam_element(const AdamHyper& h, float& p, float g, float& m, float& v, float& ema) {
  // Rounded on its own (never fused into the L2 term's fma), so scaling here by the clipping factor
  // equals clip_grad_norm's separate scale pass followed by a factor of 1 (a captured step does the
  // former, an uncaptured one the latter: tools/train_step_graph.h).
  g = __fmul_rn(g, h.grad_scale);
  if (h.decoupled)
    p -= h.lr_wd * p;
  else
    g += h.wd * p;
  m = h.beta1 * m + h.one_minus_beta1 * g;
  v = h.beta2 * v + h.one_minus_beta2 * g * g;
  p -= h.lr * (m * h.inv_bias1) / (sqrtf(v * h.inv_bias2) + h.eps);
  if constexpr (kEma) ema = h.ema_decay * ema + h.one_minus_ema_decay * p;
}

// Four parameters per thread through float4 (all buffers 16-byte aligned; the bfloat16 copy 8-byte
// aligned, written as one uint2 of two bfloat162 pairs).
template <bool kEma, bool kCopy>
__global__ void adam_vec4_kernel(int64_t n4, AdamHyper host_h, AdamDeviceValues d, float4* __restrict__ p, const float4* __restrict__ g,
                                 float4* __restrict__ m, float4* __restrict__ v, float4* __restrict__ ema,
                                 uint2* __restrict__ copy) {
  const AdamHyper h = resolved(host_h, d);
  DDPM_GRID_STRIDE(i, n4) {
    float4 pi = p[i], mi = m[i], vi = v[i], ei = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    const float4 gi = g[i];
    if constexpr (kEma) ei = ema[i];
    adam_element<kEma>(h, pi.x, gi.x, mi.x, vi.x, ei.x);
    adam_element<kEma>(h, pi.y, gi.y, mi.y, vi.y, ei.y);
    adam_element<kEma>(h, pi.z, gi.z, mi.z, vi.z, ei.z);
    adam_element<kEma>(h, pi.w, gi.w, mi.w, vi.w, ei.w);
    p[i] = pi;
    m[i] = mi;
    v[i] = vi;
    if constexpr (kEma) ema[i] = ei;
    if constexpr (kCopy) {
      const __nv_bfloat162 lo = __floats2bfloat162_rn(pi.x, pi.y), hi = __floats2bfloat162_rn(pi.z, pi.w);
      uint2 packed;
      packed.x = *reinterpret_cast<const uint32_t*>(&lo);
      packed.y = *reinterpret_cast<const uint32_t*>(&hi);
      copy[i] = packed;
    }
  }
}

// Elements [begin, n) one per thread: the tail after the vector part, or everything when a
// buffer is not 16-byte aligned (a view at an odd offset).
template <bool kEma, bool kCopy>
__global__ void adam_scalar_kernel(int64_t begin, int64_t n, AdamHyper host_h, AdamDeviceValues d, float* __restrict__ p,
                                   const float* __restrict__ g, float* __restrict__ m, float* __restrict__ v,
                                   float* __restrict__ ema, __nv_bfloat16* __restrict__ copy) {
  const AdamHyper h = resolved(host_h, d);
  DDPM_GRID_STRIDE(k, n - begin) {
    const int64_t i = begin + k;
    float pi = p[i], mi = m[i], vi = v[i], ei = 0.0f;
    if constexpr (kEma) ei = ema[i];
    adam_element<kEma>(h, pi, g[i], mi, vi, ei);
    p[i] = pi;
    m[i] = mi;
    v[i] = vi;
    if constexpr (kEma) ema[i] = ei;
    if constexpr (kCopy) copy[i] = __float2bfloat16_rn(pi);
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

bool aligned8(const void* p) { return reinterpret_cast<uintptr_t>(p) % 8 == 0; }

template <bool kEma, bool kCopy>
void launch_adam(int64_t n, const AdamHyper& h, const AdamDeviceValues& d, float* p, const float* g, float* m, float* v, float* ema,
                 __nv_bfloat16* copy) {
  cudaStream_t s = cuda::stream();
  int64_t vector_end = 0;
  if (aligned16(p) && aligned16(g) && aligned16(m) && aligned16(v) && (!kEma || aligned16(ema)) &&
      (!kCopy || aligned8(copy))) {
    const int64_t n4 = n / 4;
    if (n4 > 0) {
      adam_vec4_kernel<kEma, kCopy><<<launch_1d(n4), kThreads, 0, s>>>(
          n4, h, d, reinterpret_cast<float4*>(p), reinterpret_cast<const float4*>(g), reinterpret_cast<float4*>(m),
          reinterpret_cast<float4*>(v), reinterpret_cast<float4*>(ema), reinterpret_cast<uint2*>(copy));
      DDPM_CUDA_CHECK_LAUNCH();
    }
    vector_end = n4 * 4;
  }
  if (vector_end < n) {
    adam_scalar_kernel<kEma, kCopy>
        <<<launch_1d(n - vector_end), kThreads, 0, s>>>(vector_end, n, h, d, p, g, m, v, ema, copy);
    DDPM_CUDA_CHECK_LAUNCH();
  }
}

void check_buffer(const char* op, const char* what, const Tensor& t, int64_t n) {
  DDPM_CHECK(t.defined() && t.device() == Device::CUDA && t.dtype() == DType::F32 && t.numel() == n, "CUDA ", op, ": ",
             what, " must be a float32 cuda buffer of ", n, " elements (optimizer state stays float32), got ",
             t.describe());
}

__global__ void ema_kernel(int64_t n, float decay, float one_minus_decay, float* __restrict__ ema,
                           const float* __restrict__ p) {
  DDPM_GRID_STRIDE(i, n) { ema[i] = decay * ema[i] + one_minus_decay * p[i]; }
}
}  // namespace

void CudaBackend::adam_step(const adam_step_args& args) {
  DDPM_CHECK(args.params.defined(), "CUDA adam_step: params missing");
  const int64_t n = args.params.numel();
  check_buffer("adam_step", "params", args.params, n);
  check_buffer("adam_step", "grads", args.grads, n);
  check_buffer("adam_step", "m", args.m, n);
  check_buffer("adam_step", "v", args.v, n);
  const bool with_ema = args.ema.defined();
  if (with_ema) check_buffer("adam_step", "ema", args.ema, n);
  const bool with_copy = args.params_copy.defined();
  if (with_copy)
    DDPM_CHECK(args.params_copy.device() == Device::CUDA && args.params_copy.dtype() == DType::BF16 &&
                   args.params_copy.numel() == n,
               "CUDA adam_step: params_copy (mixed precision's copy of the weights) must be a bfloat16 cuda buffer of ",
               n, " elements, got ", args.params_copy.describe());
  DDPM_CHECK(args.step >= 1, "CUDA adam_step: step is 1-based, got ", args.step);
  if (n == 0) return;

  // Step-dependent factors in double on the host, like the CPU, then rounded once.
  const double step = static_cast<double>(args.step);
  AdamHyper h{};
  h.lr = static_cast<float>(args.lr);
  h.lr_wd = static_cast<float>(args.lr * args.weight_decay);
  h.wd = static_cast<float>(args.weight_decay);
  h.beta1 = static_cast<float>(args.beta1);
  h.one_minus_beta1 = static_cast<float>(1.0 - args.beta1);
  h.beta2 = static_cast<float>(args.beta2);
  h.one_minus_beta2 = static_cast<float>(1.0 - args.beta2);
  h.eps = static_cast<float>(args.eps);
  h.grad_scale = static_cast<float>(args.grad_scale);
  h.inv_bias1 = static_cast<float>(1.0 / (1.0 - std::pow(args.beta1, step)));
  h.inv_bias2 = static_cast<float>(1.0 / (1.0 - std::pow(args.beta2, step)));
  h.ema_decay = static_cast<float>(args.ema_decay);
  h.one_minus_ema_decay = static_cast<float>(1.0 - args.ema_decay);
  h.decoupled = args.decoupled_weight_decay;
  AdamDeviceValues d;
  if (args.scalars.defined()) {
    DDPM_CHECK(args.scalars.device() == Device::CUDA && args.scalars.dtype() == DType::F64 &&
                   args.scalars.numel() == om::kAdamScalarCount,
               "CUDA adam_step: scalars must be a float64 cuda tensor of ", om::kAdamScalarCount, " values, got ",
               args.scalars.describe());
    d.scalars = cuda::ptr<const double>(args.scalars);
  }
  if (args.grad_sum_squares.defined() && args.clip_norm > 0) {
    DDPM_CHECK(args.grad_sum_squares.device() == Device::CUDA && args.grad_sum_squares.dtype() == DType::F64 &&
                   args.grad_sum_squares.numel() == 1 && args.grad_scale == 1.0,
               "CUDA adam_step: grad_sum_squares must be a float64 cuda tensor of 1 value with grad_scale 1, got ",
               args.grad_sum_squares.describe(), " and grad_scale ", args.grad_scale);
    d.sum_squares = cuda::ptr<const double>(args.grad_sum_squares);
  }
  d.weight_decay = args.weight_decay;
  d.clip_norm = args.clip_norm;

  float* p = cuda::ptr<float>(args.params);
  const float* g = cuda::ptr<float>(args.grads);
  float* m = cuda::ptr<float>(args.m);
  float* v = cuda::ptr<float>(args.v);
  float* ema = with_ema ? cuda::ptr<float>(args.ema) : nullptr;
  __nv_bfloat16* copy = with_copy ? cuda::ptr<__nv_bfloat16>(args.params_copy) : nullptr;
  if (with_ema && with_copy)
    launch_adam<true, true>(n, h, d, p, g, m, v, ema, copy);
  else if (with_ema)
    launch_adam<true, false>(n, h, d, p, g, m, v, ema, nullptr);
  else if (with_copy)
    launch_adam<false, true>(n, h, d, p, g, m, v, nullptr, copy);
  else
    launch_adam<false, false>(n, h, d, p, g, m, v, nullptr, nullptr);
}

void CudaBackend::ema_update(const ema_update_args& args) {
  DDPM_CHECK(args.params.defined(), "CUDA ema_update: params missing");
  const int64_t n = args.params.numel();
  check_buffer("ema_update", "params", args.params, n);
  check_buffer("ema_update", "ema", args.ema, n);
  if (n == 0) return;
  ema_kernel<<<launch_1d(n), kThreads, 0, cuda::stream()>>>(
      n, static_cast<float>(args.decay), static_cast<float>(1.0 - args.decay), cuda::ptr<float>(args.ema),
      cuda::ptr<const float>(args.params));
  DDPM_CUDA_CHECK_LAUNCH();
}

}  // namespace ddpm
