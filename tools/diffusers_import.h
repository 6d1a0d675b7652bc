// `ddpm import diffusers DIR --out RUN`: a diffusers UNet2DModel and its DDPM/DDIM scheduler become
// a run directory that `ddpm sample` and `ddpm eval` use like a trained run (the imported weights
// are both the model and its EMA). Every field of the two configs is either mapped onto an engine
// config key or refused with its name and value; nothing is approximated.
#pragma once
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "tools/config.h"

namespace ddpm {

// Where the parts of a diffusers directory are: a pipeline (model_index.json with unet/ and
// scheduler/), a bare UNet folder (config.json + weights; the scheduler config beside it, in
// ../scheduler/, or none), or a folder holding both config.json and scheduler_config.json.
struct DiffusersLayout {
  std::string unet_dir;        // config.json + diffusion_pytorch_model.safetensors
  std::string scheduler_file;  // empty: none found (DDPMScheduler's defaults are used)
};
DiffusersLayout find_diffusers_layout(const std::string& dir);

// The engine config (defaults with model/diffusion/sample keys set) and image shape {H, W, C} for
// a UNet2DModel config and a scheduler config (null: DDPMScheduler's defaults). Missing fields
// take diffusers 0.27's defaults. Throws naming the field and value the engine cannot express.
// `notes` receives what the engine does differently where that is not the model itself (spacing
// offsets, the final alpha of DDIM).
Json engine_config_from_diffusers(const Json& unet, const Json& scheduler, Shape* image_shape,
                                  std::vector<std::string>* notes);

// Reads DIR, writes RUN (config.json, checkpoint.json, ckpt-00000000.safetensors). `overrides`
// (section.key=value) are applied to the resulting config, e.g. data.path for `ddpm eval`.
// Returns the notes.
std::vector<std::string> import_diffusers(const std::string& dir, const std::string& run_dir,
                                          const std::vector<std::string>& overrides);

}  // namespace ddpm
