// Builds what every ddpm command needs from a parsed config (tools/typed_config.h): the device,
// the data, the model, the diffusion process, and the model as the diffusion code calls it.
#pragma once
#include <memory>
#include <string>

#include "diffusion/gaussian_diffusion.h"
#include "models/denoiser.h"
#include "tools/data/dataset.h"
#include "tools/seeds.h"
#include "tools/typed_config.h"

namespace ddpm {

// Auto picks CUDA when a GPU is usable, else the CPU; Cuda without a GPU is an error.
Device choose_device(DeviceChoice choice);

// The split ("train" or "test") of the configured dataset, on the CPU.
ImageSet load_dataset(const DataSection& data, const std::string& split);

// One example's shape {H, W, C}, without reading the data where the dataset's kind tells it.
Shape image_shape_of(const DataSection& data);

// image_shape = {H, W, C} of one example. The variance type decides the output channels.
std::unique_ptr<Denoiser> build_model(const Config& config, const Shape& image_shape);
GaussianDiffusion build_diffusion(const DiffusionSection& diffusion);

// model(x_t, t) for the diffusion code, with dropout drawn from `key`.
ModelFn model_fn(Denoiser& model, DropoutKey key);
// The same network run in bfloat16 (mixed precision): x_t is converted on the way in and the
// output back to float32 on the way out, so the diffusion math and the loss stay float32 while
// the layers convert their float32 master weights (engine/nn/layers.cpp).
ModelFn in_bfloat16(ModelFn model);

// Applies train.conv_impl to the CUDA convolutions.
void apply_conv_impl(ConvImplChoice impl, bool deterministic);

}  // namespace ddpm
