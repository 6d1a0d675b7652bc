// `ddpm export diffusers RUN --out DIR`: a run's UNet (EMA weights unless sample.use_ema=false) as a
// diffusers DDPMPipeline folder: model_index.json, unet/ (config.json, diffusion_pytorch_model
// .safetensors) and scheduler/scheduler_config.json (DDPMScheduler). Runs whose model diffusers
// cannot express (the MLP, attention head sizes that differ between levels) are refused.
#pragma once
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "tools/typed_config.h"

namespace ddpm {

// UNet2DModel's config.json and DDPMScheduler's scheduler_config.json for an engine config.
Json diffusers_unet_config(const Config& config, const Shape& image_shape);
Json diffusers_scheduler_config(const Config& config);

void export_diffusers(const std::string& run_dir, const std::string& out_dir, const std::vector<std::string>& overrides);

}  // namespace ddpm
