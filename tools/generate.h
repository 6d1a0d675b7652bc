// Drawing samples from a trained model: ancestral or DDIM, over all steps or a respaced subset, or
// one of the few-step solvers (diffusion/solvers.h), in batches, without gradients and with dropout off.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "diffusion/gaussian_diffusion.h"
#include "diffusion/solvers.h"
#include "models/denoiser.h"
#include "tools/typed_config.h"

namespace ddpm {

struct GenerateOptions {
  int64_t count = 64;
  SampleMethod method = SampleMethod::Ancestral;
  int steps = 0;                     // ancestral, ddim: 0 every step, else respaced; solvers: noise levels (> 0)
  double eta = 0.0;                  // DDIM only
  SigmaLevels sigmas = SigmaLevels::Auto;  // solvers: discrete, karras, or auto (karras)
  double rho = 7.0;                  // Karras levels
  SolverConfig solver;               // churn, s_noise, Euler-ancestral eta (method is set from `method`)
  TimestepSpacing spacing = TimestepSpacing::Even;  // which steps a respaced chain visits
  bool clip = true;
  uint64_t seed = 0;
  int64_t batch = 256;
  int64_t first_batch = 0;  // batch b draws on stream (first_batch + b) << 32: a later part of a larger draw
  std::function<void(int64_t done, int64_t total)> progress;  // in model evaluations
  // Class-conditional models: one label per sample (tools/conditioning.h chooses them), guided with
  // weight `guidance` (diffusion/guidance.h; 0 = the conditional model). Empty: unconditional.
  std::vector<int> labels;
  double guidance = 0.0;
  // CUDA: each batch size's sampling loop is captured once (at its second batch) and replayed
  // (engine/cuda_graph.h); the same numbers as without. No effect on the CPU or with labels.
  bool cuda_graphs = true;
};

// The sample section's settings (count, method, steps, eta, the solver keys, spacing, clip and the
// Philox seed): what `ddpm sample` and `ddpm eval --metrics` draw with. Labels are set apart
// (tools/conditioning.h).
GenerateOptions generate_options(const SampleSection& sample);

// [count, H, W, C] on the CPU; image_shape = {H, W, C}.
Tensor generate(Denoiser& model, const GaussianDiffusion& diffusion, const Shape& image_shape, Device device,
                const GenerateOptions& options);

// Model evaluations per batch (progress totals); checks the method and its settings.
int generate_evaluations(const GaussianDiffusion& diffusion, const GenerateOptions& options);

// Writes samples as a PNG: a grid of images, or a scatter plot of 2-D points ([N, 1, 1, 2]).
// `columns` images per grid row (0: a square grid).
void save_samples(const Tensor& samples, const std::string& path, int columns = 0);

}  // namespace ddpm
