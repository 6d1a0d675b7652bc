// Samplers as free functions over a diffusion and a model callback: ancestral sampling (the
// paper's Algorithm 2) and DDIM, each step one fused reverse-step kernel. Respaced sampling is the
// same call on diffusion.respaced(spaced_steps(T, K)).
#pragma once
#include <functional>

#include "diffusion/gaussian_diffusion.h"

namespace ddpm {

struct SampleOptions {
  bool clip = true;        // clamp x0_hat to [-1, 1] before forming the mean
  uint64_t seed = 0;
  uint64_t stream = 0;     // x_T draws from `stream`; step k's noise from stream + 1 + k
  std::function<void(int done, int total)> progress;
};

// x_T ~ N(0, I) of `shape`, then every step down to x_0. The variance (fixed small, fixed large or
// learned range) is the diffusion's.
Tensor sample_ancestral(const GaussianDiffusion& diffusion, const ModelFn& model, const Shape& shape, DType dtype,
                        Device device, const SampleOptions& options);
// DDIM (Song et al.) with stochasticity eta: 0 is deterministic given x_T, 1 matches DDPM's
// posterior variance.
Tensor sample_ddim(const GaussianDiffusion& diffusion, const ModelFn& model, const Shape& shape, DType dtype,
                   Device device, double eta, const SampleOptions& options);

// The reverse chain from a given x_T (not modified), for either mode.
Tensor reverse_chain(const GaussianDiffusion& diffusion, const ModelFn& model, const Tensor& x_T,
                     reverse_step_args::Mode mode, double eta, const SampleOptions& options);

}  // namespace ddpm
