#include "tools/diffusers_export.h"

#include <algorithm>
#include <filesystem>

#include "engine/io/safetensors.h"
#include "tools/checkpoint.h"
#include "tools/diffusers_names.h"
#include "tools/trained_model.h"

namespace ddpm {

namespace fs = std::filesystem;

namespace {
const char* kDiffusersVersion = "0.27.2";  // the version the export was checked with (scripts/pin_diffusers_fixtures.py)
}

Json diffusers_unet_config(const Json& config, const Shape& image_shape) {
  const Json& m = config.at("model");
  DDPM_CHECK(m.at("type") == "unet", "export diffusers: model.type is ", m.at("type").dump(),
             "; only the UNet has a diffusers counterpart (UNet2DModel)");
  const int resolution = static_cast<int>(image_shape.at(0)), in = static_cast<int>(image_shape.at(2));
  const bool learned = config.at("diffusion").at("variance") == "learned_range";
  const int base = m.at("base_channels");
  const std::vector<int> mult = m.at("channel_mult").get<std::vector<int>>();
  const std::vector<int> attention = m.at("attention_resolutions").get<std::vector<int>>();
  const int heads = m.at("heads"), head_channels = m.value("head_channels", 0);
  Json channels = Json::array(), down = Json::array(), up = Json::array();
  std::vector<int> attention_channels{base * mult.back()};  // the middle block always attends
  for (size_t i = 0; i < mult.size(); ++i) {
    const bool attends = std::count(attention.begin(), attention.end(), resolution >> i) > 0;
    channels.push_back(base * mult[i]);
    down.push_back(attends ? "AttnDownBlock2D" : "DownBlock2D");
    up.insert(up.begin(), attends ? "AttnUpBlock2D" : "UpBlock2D");
    if (attends) attention_channels.push_back(base * mult[i]);
  }
  // diffusers has one head size for every attention block (null: one head of all channels).
  Json head_dim = head_channels > 0 ? Json(head_channels) : Json(nullptr);
  if (head_channels <= 0 && heads != 1) {
    head_dim = attention_channels[0] / heads;
    for (int c : attention_channels)
      DDPM_CHECK(c / heads == head_dim.get<int>(), "export diffusers: model.heads = ", heads, " gives heads of ",
                 c / heads, " and ", head_dim.get<int>(), " channels at different levels; UNet2DModel has one ",
                 "attention_head_dim. Train with model.head_channels instead");
  }
  return Json{{"_class_name", "UNet2DModel"},
              {"_diffusers_version", kDiffusersVersion},
              {"sample_size", resolution},
              {"in_channels", in},
              {"out_channels", learned ? 2 * in : in},
              {"center_input_sample", false},
              {"time_embedding_type", "positional"},
              {"freq_shift", m.value("freq_shift", 1)},
              {"flip_sin_to_cos", m.value("flip_sin_to_cos", false)},
              {"down_block_types", down},
              {"up_block_types", up},
              {"block_out_channels", channels},
              {"layers_per_block", m.at("num_res_blocks")},
              {"mid_block_scale_factor", 1},
              {"downsample_padding", m.value("downsample_padding", 1)},
              {"downsample_type", "conv"},
              {"upsample_type", "conv"},
              {"dropout", m.at("dropout")},
              {"act_fn", "silu"},
              {"attention_head_dim", head_dim},
              {"norm_num_groups", m.at("groups")},
              {"attn_norm_num_groups", nullptr},
              {"norm_eps", m.value("norm_eps", 1e-6)},
              {"resnet_time_scale_shift", "default"},
              {"add_attention", true},
              {"class_embed_type", nullptr},
              {"num_class_embeds", nullptr},
              {"num_train_timesteps", nullptr}};
}

Json diffusers_scheduler_config(const Json& config) {
  const Json& d = config.at("diffusion");
  const Json& s = config.at("sample");
  const int steps = d.at("steps");
  const double scale = d.at("scale_to_1000").get<bool>() ? 1000.0 / steps : 1.0;
  const std::string schedule = d.at("schedule");
  const std::string beta_schedule = schedule == "linear"      ? "linear"
                                    : schedule == "quadratic" ? "scaled_linear"
                                    : schedule == "sigmoid"   ? "sigmoid"
                                    : schedule == "cosine"    ? "squaredcos_cap_v2"
                                                              : "";
  DDPM_CHECK(!beta_schedule.empty(), "export diffusers: diffusion.schedule ", schedule, " has no diffusers counterpart");
  const std::string prediction = d.at("prediction");
  const std::string spacing = s.value("spacing", "even");
  return Json{{"_class_name", "DDPMScheduler"},
              {"_diffusers_version", kDiffusersVersion},
              {"num_train_timesteps", steps},
              {"beta_start", schedule == "cosine" ? 1e-4 : 1e-4 * scale},
              {"beta_end", schedule == "cosine" ? 0.02 : 0.02 * scale},
              {"beta_schedule", beta_schedule},
              {"trained_betas", nullptr},
              {"variance_type", d.at("variance")},
              {"clip_sample", s.at("clip")},
              {"clip_sample_range", 1.0},
              {"prediction_type", prediction == "x0" ? "sample" : prediction == "v" ? "v_prediction" : "epsilon"},
              {"thresholding", false},
              {"dynamic_thresholding_ratio", 0.995},
              {"sample_max_value", 1.0},
              {"timestep_spacing", spacing == "even" ? "linspace" : spacing},
              {"steps_offset", 0},
              {"rescale_betas_zero_snr", false}};
}

void export_diffusers(const std::string& run_dir, const std::string& out_dir, const std::vector<std::string>& overrides) {
  DDPM_CHECK(!run_dir.empty() && !out_dir.empty(), "export diffusers: give the run and the folder to write: ",
             "ddpm export diffusers RUN_DIR --out DIR");
  TrainedModel m = load_trained_model(run_dir, overrides, false);
  const Json unet = diffusers_unet_config(m.config, m.image_shape);
  const Json scheduler = diffusers_scheduler_config(m.config);
  const int levels = static_cast<int>(m.config.at("model").at("channel_mult").size());
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const NamedParameter& p : m.params->entries())
    tensors.emplace_back(diffusers_name_of(p.name, levels), to_diffusers_layout(p.value));
  const fs::path out(out_dir);
  fs::create_directories(out / "unet");
  fs::create_directories(out / "scheduler");
  save_safetensors((out / "unet" / "diffusion_pytorch_model.safetensors").string(), tensors, {{"format", "pt"}});
  write_file_atomically((out / "unet" / "config.json").string(), unet.dump(2) + "\n");
  write_file_atomically((out / "scheduler" / "scheduler_config.json").string(), scheduler.dump(2) + "\n");
  const Json index{{"_class_name", "DDPMPipeline"},
                   {"_diffusers_version", kDiffusersVersion},
                   {"scheduler", {"diffusers", "DDPMScheduler"}},
                   {"unet", {"diffusers", "UNet2DModel"}}};
  write_file_atomically((out / "model_index.json").string(), index.dump(2) + "\n");
}

}  // namespace ddpm
