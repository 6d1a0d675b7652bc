// Drawing samples from a trained model: ancestral or DDIM, over all steps or a respaced subset,
// in batches, without gradients and with dropout off.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "diffusion/gaussian_diffusion.h"
#include "models/denoiser.h"

namespace ddpm {

struct GenerateOptions {
  int64_t count = 64;
  std::string method = "ancestral";  // or "ddim"
  int steps = 0;                     // 0: every step of the diffusion; else respaced to this many
  double eta = 0.0;                  // DDIM only
  bool clip = true;
  uint64_t seed = 0;
  int64_t batch = 256;
  std::function<void(int64_t done, int64_t total)> progress;  // in model evaluations
  // Class-conditional models: one label per sample (tools/conditioning.h chooses them), guided with
  // weight `guidance` (diffusion/guidance.h; 0 = the conditional model). Empty: unconditional.
  std::vector<int> labels;
  double guidance = 0.0;
};

// [count, H, W, C] on the CPU; image_shape = {H, W, C}.
Tensor generate(Denoiser& model, const GaussianDiffusion& diffusion, const Shape& image_shape, Device device,
                const GenerateOptions& options);

// Writes samples as a PNG: a grid of images, or a scatter plot of 2-D points ([N, 1, 1, 2]).
// `columns` images per grid row (0: a square grid).
void save_samples(const Tensor& samples, const std::string& path, int columns = 0);

}  // namespace ddpm
