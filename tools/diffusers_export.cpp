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

Json diffusers_unet_config(const Config& config, const Shape& image_shape) {
  const ModelSection& m = config.model;
  DDPM_CHECK(m.type == ModelType::Unet, "export diffusers: model.type is \"", model_type_name(m.type),
             "\"; only the UNet has a diffusers counterpart (UNet2DModel)");
  const int resolution = static_cast<int>(image_shape.at(0)), in = static_cast<int>(image_shape.at(2));
  const bool learned = config.diffusion.variance == VarianceType::LearnedRange;
  const int base = m.base_channels;
  const std::vector<int>& mult = m.channel_mult;
  const std::vector<int>& attention = m.attention_resolutions;
  const int heads = m.heads, head_channels = m.head_channels;
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
              {"freq_shift", m.freq_shift},
              {"flip_sin_to_cos", m.flip_sin_to_cos},
              {"down_block_types", down},
              {"up_block_types", up},
              {"block_out_channels", channels},
              {"layers_per_block", m.num_res_blocks},
              {"mid_block_scale_factor", 1},
              {"downsample_padding", m.downsample_padding},
              {"downsample_type", "conv"},
              {"upsample_type", "conv"},
              {"dropout", m.dropout},
              {"act_fn", "silu"},
              {"attention_head_dim", head_dim},
              {"norm_num_groups", m.groups},
              {"attn_norm_num_groups", nullptr},
              {"norm_eps", m.norm_eps},
              {"resnet_time_scale_shift", "default"},
              {"add_attention", true},
              {"class_embed_type", nullptr},
              {"num_class_embeds", nullptr},
              {"num_train_timesteps", nullptr}};
}

namespace {
const char* diffusers_beta_schedule(BetaSchedule schedule) {
  switch (schedule) {
    case BetaSchedule::Linear: return "linear";
    case BetaSchedule::Quadratic: return "scaled_linear";
    case BetaSchedule::Sigmoid: return "sigmoid";
    case BetaSchedule::Cosine: return "squaredcos_cap_v2";
  }
  return "?";
}
const char* diffusers_prediction_type(Prediction prediction) {
  switch (prediction) {
    case Prediction::Epsilon: return "epsilon";
    case Prediction::X0: return "sample";
    case Prediction::V: return "v_prediction";
  }
  return "?";
}
}  // namespace

Json diffusers_scheduler_config(const Config& config) {
  const DiffusionSection& d = config.diffusion;
  const SampleSection& s = config.sample;
  const int steps = d.steps;
  const double scale = d.scale_to_1000 ? 1000.0 / steps : 1.0;
  const bool cosine = d.schedule == BetaSchedule::Cosine;
  return Json{{"_class_name", "DDPMScheduler"},
              {"_diffusers_version", kDiffusersVersion},
              {"num_train_timesteps", steps},
              {"beta_start", cosine ? 1e-4 : 1e-4 * scale},
              {"beta_end", cosine ? 0.02 : 0.02 * scale},
              {"beta_schedule", diffusers_beta_schedule(d.schedule)},
              {"trained_betas", nullptr},
              {"variance_type", variance_name(d.variance)},
              {"clip_sample", s.clip},
              {"clip_sample_range", 1.0},
              {"prediction_type", diffusers_prediction_type(d.prediction)},
              {"thresholding", false},
              {"dynamic_thresholding_ratio", 0.995},
              {"sample_max_value", 1.0},
              {"timestep_spacing", s.spacing == TimestepSpacing::Even ? "linspace" : timestep_spacing_name(s.spacing)},
              {"steps_offset", 0},
              {"rescale_betas_zero_snr", false}};
}

void export_diffusers(const std::string& run_dir, const std::string& out_dir, const std::vector<std::string>& overrides) {
  DDPM_CHECK(!run_dir.empty() && !out_dir.empty(), "export diffusers: give the run and the folder to write: ",
             "ddpm export diffusers RUN_DIR --out DIR");
  TrainedModel m = load_trained_model(run_dir, overrides, false);
  const Json unet = diffusers_unet_config(m.config, m.image_shape);
  const Json scheduler = diffusers_scheduler_config(m.config);
  const int levels = static_cast<int>(m.config.model.channel_mult.size());
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
