// A trained run loaded for sampling or evaluation: its config, model and weights (the EMA weights
// when asked for), from the run directory's checkpoint.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "engine/nn/parameters.h"
#include "tools/factories.h"

namespace ddpm {

struct TrainedModel {
  Config config;  // the recorded config with the command's --set overrides
  Json state;     // checkpoint.json
  Shape image_shape;
  Device device;
  std::unique_ptr<Denoiser> model;
  std::unique_ptr<ParameterSet> params;
  std::unique_ptr<GaussianDiffusion> diffusion;
};

// use_ema is read from the eval section when for_eval, else from the sample section.
TrainedModel load_trained_model(const std::string& run_dir, const std::vector<std::string>& overrides, bool for_eval);

}  // namespace ddpm
