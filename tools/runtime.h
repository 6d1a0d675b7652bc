// Builds what every ddpm command needs from a resolved config: the device, the data, the model
// and the diffusion process.
#pragma once
#include <memory>
#include <string>

#include "diffusion/gaussian_diffusion.h"
#include "models/denoiser.h"
#include "tools/config.h"
#include "tools/data/dataset.h"

namespace ddpm {

// "auto" picks CUDA when a GPU is usable, else the CPU; "cuda" without a GPU is an error.
Device choose_device(const std::string& setting);

// The split ("train" or "test") of the configured dataset, on the CPU.
ImageSet load_dataset(const Json& config, const std::string& split);

// One example's shape {H, W, C}, without reading the data where the dataset's kind tells it.
Shape image_shape_of(const Json& config);

// image_shape = {H, W, C} of one example.
std::unique_ptr<Denoiser> build_model(const Json& config, const Shape& image_shape);
GaussianDiffusion build_diffusion(const Json& config);

// model(x_t, t) for the diffusion code, with dropout drawn from `key`.
ModelFn model_fn(Denoiser& model, DropoutKey key);
// The same network run in bfloat16 (mixed precision): x_t is converted on the way in and the
// output back to float32 on the way out, so the diffusion math and the loss stay float32 while
// the layers convert their float32 master weights (engine/nn/layers.cpp).
ModelFn in_bfloat16(ModelFn model);

// Applies train.conv_impl ("custom" or "cudnn") to the CUDA convolutions.
void apply_conv_impl(const Json& config);

// Independent Philox seeds per use, so that draws for different purposes never share addresses.
enum class Purpose : uint64_t { Flip = 1, Timesteps, Noise, Dropout, Sampling, Evaluation };
uint64_t seed_for(uint64_t seed, Purpose purpose);

}  // namespace ddpm
