#include "tools/diffusers_import.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "engine/io/safetensors.h"
#include "engine/nn/parameters.h"
#include "engine/optim/adam.h"
#include "engine/optim/ema.h"
#include "tools/checkpoint.h"
#include "tools/diffusers_names.h"
#include "tools/factories.h"

namespace ddpm {

namespace fs = std::filesystem;

namespace {
Json read_json(const fs::path& path) {
  std::ifstream in(path);
  DDPM_CHECK(in.good(), "import diffusers: cannot read '", path.string(), "'");
  Json j = Json::parse(in, nullptr, false);
  DDPM_CHECK(!j.is_discarded() && j.is_object(), "import diffusers: '", path.string(), "' is not a JSON object");
  return j;
}

// A config's fields with diffusers' defaults for the missing ones; every field must be read
// (take) or the import refuses it, so a field this importer does not know is never ignored.
class Fields {
 public:
  Fields(const Json& given, const char* what, Json defaults) : given_(given), what_(what), defaults_(std::move(defaults)) {
    if (given_.is_null()) given_ = Json::object();
  }
  Json take(const std::string& key) {
    taken_.insert(key);
    return given_.contains(key) ? given_.at(key) : defaults_.at(key);
  }
  // Ignored fields (those that only matter in modes refused elsewhere).
  void ignore(const std::string& key) { taken_.insert(key); }
  [[noreturn]] void refuse(const std::string& key, const Json& value, const std::string& why) const {
    detail::fail("import diffusers: ", what_, " field ", key, " = ", value.dump(), " cannot be expressed: ", why);
  }
  void require(const std::string& key, const Json& want, const std::string& why) {
    const Json v = take(key);
    if (v != want) refuse(key, v, why);
  }
  void check_all_taken() const {
    for (auto it = given_.begin(); it != given_.end(); ++it)
      if (it.key().rfind('_', 0) != 0 && !taken_.count(it.key()) && !it->is_null())
        refuse(it.key(), *it, "this importer does not know the field (it follows diffusers 0.27's UNet2DModel and "
                              "DDPM/DDIM schedulers)");
  }

 private:
  Json given_;
  std::string what_;
  Json defaults_;
  std::set<std::string> taken_;
};

const Json& unet_defaults() {  // UNet2DModel.__init__ in diffusers 0.27
  static const Json d = Json::parse(R"({
    "sample_size": null, "in_channels": 3, "out_channels": 3, "center_input_sample": false,
    "time_embedding_type": "positional", "freq_shift": 0, "flip_sin_to_cos": true,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"],
    "up_block_types": ["AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
    "block_out_channels": [224, 448, 672, 896], "layers_per_block": 2, "mid_block_scale_factor": 1,
    "downsample_padding": 1, "downsample_type": "conv", "upsample_type": "conv", "dropout": 0.0,
    "act_fn": "silu", "attention_head_dim": 8, "norm_num_groups": 32, "attn_norm_num_groups": null,
    "norm_eps": 1e-5, "resnet_time_scale_shift": "default", "add_attention": true,
    "class_embed_type": null, "num_class_embeds": null, "num_train_timesteps": null
  })");
  return d;
}

const Json& scheduler_defaults() {  // DDPMScheduler / DDIMScheduler.__init__ in diffusers 0.27
  static const Json d = Json::parse(R"({
    "num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear",
    "trained_betas": null, "variance_type": "fixed_small", "clip_sample": true, "prediction_type": "epsilon",
    "thresholding": false, "dynamic_thresholding_ratio": 0.995, "clip_sample_range": 1.0,
    "sample_max_value": 1.0, "timestep_spacing": "leading", "steps_offset": 0, "rescale_betas_zero_snr": false,
    "set_alpha_to_one": true
  })");
  return d;
}

bool close(double a, double b) { return std::fabs(a - b) <= 1e-9 * std::fabs(b); }

void map_unet(Fields& f, Json& model, Shape* image_shape, int* out_channels) {
  const Json size = f.take("sample_size");
  int resolution = 0;
  if (size.is_number_integer()) resolution = size.get<int>();
  else if (size.is_array() && size.size() == 2 && size[0] == size[1] && size[0].is_number_integer())
    resolution = size[0].get<int>();
  else f.refuse("sample_size", size, "the engine's UNet needs one square resolution");
  const int in = f.take("in_channels").get<int>();
  *out_channels = f.take("out_channels").get<int>();
  *image_shape = {resolution, resolution, in};

  f.require("center_input_sample", false, "the engine feeds x_t to the network as is");
  f.require("time_embedding_type", "positional", "the engine's time embedding is sinusoidal (\"positional\")");
  f.require("act_fn", "silu", "the engine's UNet uses SiLU");
  f.require("mid_block_scale_factor", 1, "the engine's residual blocks do not rescale their output");
  f.require("downsample_type", "conv", "the engine downsamples with a stride-2 convolution");
  f.require("upsample_type", "conv", "the engine upsamples by nearest neighbour and a convolution");
  f.require("resnet_time_scale_shift", "default", "the engine adds the time projection (no scale-shift norm)");
  f.require("add_attention", true, "the engine's middle block always has attention");
  f.require("class_embed_type", nullptr, "class conditioning is not in the engine's UNet");
  f.require("num_class_embeds", nullptr, "class conditioning is not in the engine's UNet");
  f.ignore("num_train_timesteps");  // only used by "learned" time embeddings, refused above

  const Json channels = f.take("block_out_channels");
  const Json down = f.take("down_block_types"), up = f.take("up_block_types");
  const size_t levels = channels.size();
  if (levels == 0) f.refuse("block_out_channels", channels, "need at least one level");
  if (down.size() != levels) f.refuse("down_block_types", down, "need one per block_out_channels entry");
  if (up.size() != levels) f.refuse("up_block_types", up, "need one per block_out_channels entry");
  const int base = channels[0].get<int>();
  std::vector<int> mult, attention;
  for (size_t i = 0; i < levels; ++i) {
    const int c = channels[i].get<int>();
    if (c % base != 0) f.refuse("block_out_channels", channels, "every level's channels must be a multiple of the first's");
    mult.push_back(c / base);
    const std::string d = down[i], u = up[levels - 1 - i];
    if (d != "DownBlock2D" && d != "AttnDownBlock2D")
      f.refuse("down_block_types", down, "only DownBlock2D and AttnDownBlock2D are supported, got " + d);
    if (u != "UpBlock2D" && u != "AttnUpBlock2D")
      f.refuse("up_block_types", up, "only UpBlock2D and AttnUpBlock2D are supported, got " + u);
    if ((d == "AttnDownBlock2D") != (u == "AttnUpBlock2D"))
      f.refuse("up_block_types", up, "the engine puts attention at the same resolutions on the way down and up; "
                                     "down block " + std::to_string(i) + " is " + d + " but up block " +
                                     std::to_string(levels - 1 - i) + " is " + u);
    if (d == "AttnDownBlock2D") attention.push_back(resolution >> i);
  }
  const int groups = f.take("norm_num_groups").is_null() ? 0 : f.take("norm_num_groups").get<int>();
  if (groups <= 0) f.refuse("norm_num_groups", f.take("norm_num_groups"), "the engine needs a group count");
  const Json attn_groups = f.take("attn_norm_num_groups");
  if (!attn_groups.is_null() && attn_groups != groups)
    f.refuse("attn_norm_num_groups", attn_groups, "the engine's attention uses norm_num_groups groups");
  const Json head_dim = f.take("attention_head_dim");
  if (!head_dim.is_null() && !head_dim.is_number_integer())
    f.refuse("attention_head_dim", head_dim, "need one integer (or null: one head)");
  const int padding = f.take("downsample_padding").get<int>();
  if (padding != 0 && padding != 1) f.refuse("downsample_padding", padding, "the engine pads by 1 or 0 (bottom/right)");
  const Json shift = f.take("freq_shift");
  if (!shift.is_number_integer()) f.refuse("freq_shift", shift, "the engine takes an integer shift");

  model["type"] = "unet";
  model["base_channels"] = base;
  model["channel_mult"] = mult;
  model["num_res_blocks"] = f.take("layers_per_block");
  model["attention_resolutions"] = attention;
  model["heads"] = 1;
  model["head_channels"] = head_dim.is_null() ? 0 : head_dim.get<int>();  // null: one head of all channels
  model["dropout"] = f.take("dropout");
  model["groups"] = groups;
  model["norm_eps"] = f.take("norm_eps");
  model["flip_sin_to_cos"] = f.take("flip_sin_to_cos");
  model["freq_shift"] = shift;
  model["downsample_padding"] = padding;
}

void map_scheduler(Fields& f, const std::string& kind, int in, int out, Json& diffusion, Json& sample,
                   std::vector<std::string>* notes) {
  const int steps = f.take("num_train_timesteps").get<int>();
  diffusion["steps"] = steps;
  if (!f.take("trained_betas").is_null()) f.refuse("trained_betas", "[...]", "the engine computes its schedules");
  f.require("rescale_betas_zero_snr", false, "the engine's schedules are not rescaled to zero terminal SNR");
  f.require("thresholding", false, "the engine clips x0_hat to [-1, 1] (clip_sample) but has no dynamic thresholding");
  f.ignore("dynamic_thresholding_ratio");
  f.ignore("sample_max_value");

  const std::string schedule = f.take("beta_schedule");
  const double start = f.take("beta_start").get<double>(), end = f.take("beta_end").get<double>();
  const double scale = 1000.0 / steps;
  auto map_ends = [&](const char* engine_name) {
    diffusion["schedule"] = engine_name;
    if (close(start, 1e-4) && close(end, 0.02)) diffusion["scale_to_1000"] = false;
    else if (close(start, 1e-4 * scale) && close(end, 0.02 * scale)) diffusion["scale_to_1000"] = true;
    else
      f.refuse("beta_start", start, "the engine's " + std::string(engine_name) + " schedule spans [1e-4, 0.02] (or " +
                                        "that times 1000/T); beta_end = " + Json(end).dump());
  };
  if (schedule == "linear") map_ends("linear");
  else if (schedule == "scaled_linear") map_ends("quadratic");  // linspace(sqrt(start), sqrt(end))^2
  else if (schedule == "sigmoid") map_ends("sigmoid");
  else if (schedule == "squaredcos_cap_v2") diffusion["schedule"] = "cosine", diffusion["scale_to_1000"] = false;
  else f.refuse("beta_schedule", schedule, "the engine has linear, scaled_linear (quadratic), sigmoid and "
                                           "squaredcos_cap_v2 (cosine)");

  const std::string prediction = f.take("prediction_type");
  if (prediction == "epsilon") diffusion["prediction"] = "epsilon";
  else if (prediction == "sample") diffusion["prediction"] = "x0";
  else if (prediction == "v_prediction") diffusion["prediction"] = "v";
  else f.refuse("prediction_type", prediction, "the engine predicts epsilon, sample (x0) or v_prediction (v)");

  // DDIM has no variance_type: a 2C-channel output is then the learned range's.
  std::string variance = kind == "DDIMScheduler" ? (out == 2 * in ? "learned_range" : "fixed_small")
                                                 : f.take("variance_type").get<std::string>();
  if (kind == "DDIMScheduler") f.ignore("variance_type");
  if (variance == "fixed_small" || variance == "fixed_small_log") variance = "fixed_small";
  else if (variance == "fixed_large" || variance == "fixed_large_log") variance = "fixed_large";
  else if (variance != "learned_range")
    f.refuse("variance_type", variance, "the engine has fixed_small, fixed_large and learned_range");
  const int want_out = variance == "learned_range" ? 2 * in : in;
  DDPM_CHECK(out == want_out, "import diffusers: UNet2DModel field out_channels = ", out, " does not fit variance_type ",
             variance, " with in_channels = ", in, " (need ", want_out, ")");
  diffusion["variance"] = variance;
  diffusion["loss"] = variance == "learned_range" ? "hybrid" : "mse";

  const bool clip = f.take("clip_sample");
  const double range = f.take("clip_sample_range").get<double>();
  if (clip && range != 1.0) f.refuse("clip_sample_range", range, "the engine clips x0_hat to [-1, 1]");
  sample["clip"] = clip;

  const std::string spacing = f.take("timestep_spacing");
  if (spacing == "leading" || spacing == "trailing") sample["spacing"] = spacing;
  else if (spacing == "linspace") {
    sample["spacing"] = "even";
    notes->push_back("timestep_spacing \"linspace\": the engine's \"even\" spacing visits the same steps, but "
                     "diffusers' DDIM steps from t to t - T/n regardless; respaced chains differ");
  } else f.refuse("timestep_spacing", spacing, "the engine has leading, trailing and linspace (even)");
  const int offset = f.take("steps_offset").get<int>();
  if (offset != 0)
    notes->push_back("steps_offset " + std::to_string(offset) + ": the engine's respaced chains start at step 0 "
                     "(leading) or end at T-1 (trailing), without an offset");
  const bool alpha_to_one = f.take("set_alpha_to_one");
  if (kind == "DDIMScheduler" && !alpha_to_one)
    notes->push_back("set_alpha_to_one false: the engine's last DDIM step goes to abar = 1 (x0_hat), as with true");
  if (kind == "DDIMScheduler") sample["method"] = "ddim", sample["steps"] = 50;
}
}  // namespace

DiffusersLayout find_diffusers_layout(const std::string& dir) {
  const fs::path root(dir);
  DDPM_CHECK(fs::is_directory(root), "import diffusers: '", dir, "' is not a directory; give the folder of a ",
             "diffusers pipeline (model_index.json) or of a UNet2DModel (config.json)");
  DiffusersLayout layout;
  if (fs::exists(root / "model_index.json")) {
    const Json index = read_json(root / "model_index.json");
    DDPM_CHECK(index.contains("unet"), "import diffusers: '", (root / "model_index.json").string(),
               "' names no unet; this importer reads UNet2DModel pipelines (DDPMPipeline, DDIMPipeline)");
    layout.unet_dir = (root / "unet").string();
    if (fs::exists(root / "scheduler" / "scheduler_config.json"))
      layout.scheduler_file = (root / "scheduler" / "scheduler_config.json").string();
  } else {
    layout.unet_dir = root.string();
    for (const fs::path& p : {root / "scheduler_config.json", root / "scheduler" / "scheduler_config.json",
                              root.parent_path() / "scheduler" / "scheduler_config.json"})
      if (fs::exists(p)) {
        layout.scheduler_file = p.string();
        break;
      }
  }
  DDPM_CHECK(fs::exists(fs::path(layout.unet_dir) / "config.json"), "import diffusers: no config.json in '",
             layout.unet_dir, "'; give a UNet2DModel folder or a pipeline with a unet/ folder");
  return layout;
}

Json engine_config_from_diffusers(const Json& unet, const Json& scheduler, Shape* image_shape,
                                  std::vector<std::string>* notes) {
  const std::string unet_class = unet.value("_class_name", "UNet2DModel");
  DDPM_CHECK(unet_class == "UNet2DModel", "import diffusers: the model is a ", unet_class,
             "; this importer reads UNet2DModel (DDPM's unconditional UNet)");
  const std::string kind = scheduler.is_null() ? "DDPMScheduler" : scheduler.value("_class_name", "DDPMScheduler");
  DDPM_CHECK(kind == "DDPMScheduler" || kind == "DDIMScheduler", "import diffusers: the scheduler is a ", kind,
             "; this importer reads DDPMScheduler and DDIMScheduler configs");
  Json config = default_config();
  Fields u(unet, "UNet2DModel", unet_defaults()), s(scheduler, kind.c_str(), scheduler_defaults());
  int out = 0;
  map_unet(u, config["model"], image_shape, &out);
  const int in = static_cast<int>((*image_shape)[2]);
  map_scheduler(s, kind, in, out, config["diffusion"], config["sample"], notes);
  u.check_all_taken();
  s.check_all_taken();
  Json& data = config["data"];
  const Shape& shape = *image_shape;
  if (shape == Shape{32, 32, 3}) data["dataset"] = "cifar10";
  else if (shape == Shape{28, 28, 1}) data["dataset"] = "mnist";
  else data["dataset"] = "folder", data["channels"] = in;
  validate_config(config);
  return config;
}

std::vector<std::string> import_diffusers(const std::string& dir, const std::string& run_dir,
                                          const std::vector<std::string>& overrides) {
  DDPM_CHECK(!run_dir.empty(), "import diffusers: give the run directory to write with --out RUN_DIR");
  const DiffusersLayout layout = find_diffusers_layout(dir);
  std::vector<std::string> notes;
  if (layout.scheduler_file.empty())
    notes.push_back("no scheduler_config.json found: using DDPMScheduler's defaults (linear 1e-4..0.02, T = 1000, "
                    "epsilon, fixed_small, clip_sample)");
  const Json scheduler = layout.scheduler_file.empty() ? Json() : read_json(layout.scheduler_file);
  Shape image_shape;
  const Json config = engine_config_from_diffusers(read_json(fs::path(layout.unet_dir) / "config.json"), scheduler,
                                             &image_shape, &notes);
  const Config parsed = recorded_config(config, overrides);

  const fs::path weights = fs::path(layout.unet_dir) / "diffusion_pytorch_model.safetensors";
  DDPM_CHECK(fs::exists(weights), "import diffusers: '", weights.string(), "' is missing",
             fs::exists(fs::path(layout.unet_dir) / "diffusion_pytorch_model.bin")
                 ? " (only the PyTorch pickle .bin is there; this engine reads safetensors: load the model in "
                   "diffusers and save_pretrained it, which writes safetensors)"
                 : "");
  const NamedTensors file = load_safetensors(weights.string());
  std::map<std::string, const Tensor*> by_name;  // modern diffusers names
  for (const auto& [name, t] : file.tensors) by_name[modern_attention_name(name)] = &t;

  std::unique_ptr<Denoiser> model = build_model(parsed, image_shape);
  ParameterSet params(*model, 0, Device::CPU);
  const int levels = static_cast<int>(parsed.model.channel_mult.size());
  std::set<std::string> used;
  for (const NamedParameter& p : params.entries()) {  // check everything before writing anything
    const std::string name = diffusers_name_of(p.name, levels);
    auto it = by_name.find(name);
    DDPM_CHECK(it != by_name.end(), "import diffusers: '", weights.string(), "' has no tensor '", name,
               "' (the engine's ", p.name, "); the weights do not match config.json");
    const Shape& e = p.value.shape();
    const Shape want = e.size() == 4 ? Shape{e[0], e[3], e[1], e[2]} : e;
    DDPM_CHECK(it->second->shape() == want, "import diffusers: '", name, "' has shape ", shape_str(it->second->shape()),
               " but config.json implies ", shape_str(want));
    used.insert(name);
  }
  for (const auto& [name, t] : by_name)
    DDPM_CHECK(used.count(name), "import diffusers: '", weights.string(), "' has tensor '", name,
               "' which the engine's UNet has no place for; refusing a partial import");
  for (const NamedParameter& p : params.entries())
    p.value.copy_from(from_diffusers_layout(*by_name.at(diffusers_name_of(p.name, levels))));

  fs::create_directories(run_dir);
  write_file_atomically((fs::path(run_dir) / "config.json").string(), parsed.json.dump(2) + "\n");
  const Ema ema(params, parsed.train.ema_decay);
  const Adam adam(params, AdamConfig{});
  const Json state{{"step", 0},
                   {"config", parsed.json},
                   {"image_shape", image_shape},
                   {"imported_from", {{"format", "diffusers"}, {"path", dir}, {"notes", notes}}}};
  save_checkpoint(run_dir, params, ema, adam, state);
  return notes;
}

}  // namespace ddpm
