#include "tools/config.h"

#include <fstream>
#include <sstream>

#include "engine/error.h"

namespace ddpm {

const Json& default_config() {
  static const Json defaults = Json::parse(R"({
    "data": {
      "dataset": "fashion-mnist",
      "path": "",
      "toy": "swissroll",
      "toy_size": 100000,
      "channels": 3,
      "random_flip": false,
      "limit": 0
    },
    "model": {
      "type": "unet",
      "base_channels": 32,
      "channel_mult": [1, 2, 2],
      "num_res_blocks": 1,
      "attention_resolutions": [7],
      "heads": 1,
      "dropout": 0.1,
      "groups": 8,
      "norm_eps": 1e-6,
      "head_channels": 0,
      "flip_sin_to_cos": false,
      "freq_shift": 1,
      "downsample_padding": 1,
      "mlp_hidden": 128,
      "mlp_blocks": 3,
      "num_classes": 0
    },
    "diffusion": {
      "steps": 1000,
      "schedule": "linear",
      "scale_to_1000": false,
      "prediction": "epsilon",
      "variance": "fixed_small",
      "loss": "mse",
      "hybrid_lambda": 0.001,
      "timestep_sampler": "uniform"
    },
    "train": {
      "steps": 2000,
      "batch_size": 64,
      "lr": 0.0002,
      "warmup": 100,
      "grad_clip": 1.0,
      "ema_decay": 0.9999,
      "weight_decay": 0.0,
      "adamw": false,
      "seed": 0,
      "device": "auto",
      "mixed_precision": false,
      "conv_impl": "custom",
      "deterministic": true,
      "cuda_graphs": true,
      "log_every": 10,
      "sample_every": 0,
      "checkpoint_every": 500,
      "sample_steps": 100,
      "label_dropout": 0.1
    },
    "classifier": {
      "channels": [16, 32, 64],
      "blocks": 1,
      "groups": 8,
      "cosine_decay": true,
      "use_ema": false,
      "eval_batch_size": 256
    },
    "sample": {
      "count": 64,
      "method": "ancestral",
      "steps": 0,
      "eta": 0.0,
      "sigmas": "auto",
      "rho": 7.0,
      "s_churn": 0.0,
      "s_tmin": 0.0,
      "s_tmax": 1e10,
      "s_noise": 1.0,
      "euler_eta": 1.0,
      "spacing": "even",
      "clip": true,
      "use_ema": true,
      "seed": 1,
      "class": "",
      "guidance": 0.0,
      "cuda_graphs": true
    },
    "eval": {
      "count": 64,
      "batch_size": 64,
      "use_ema": true,
      "seed": 2
    }
  })");
  return defaults;
}

namespace {
const char* type_name(const Json& v) {
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "a list";
  if (v.is_object()) return "a section";
  return "null";
}

bool compatible(const Json& want, const Json& got) {
  if (want.is_boolean()) return got.is_boolean();
  if (want.is_number_integer()) return got.is_number_integer();
  if (want.is_number()) return got.is_number();  // an integer literal is fine for a real
  if (want.is_string()) return got.is_string();
  if (want.is_array()) {
    if (!got.is_array()) return false;
    for (const Json& e : got)
      if (!e.is_number_integer()) return false;  // every list in the schema is a list of integers
    return true;
  }
  return false;
}

std::string keys_of(const Json& object) {
  std::string out;
  for (auto it = object.begin(); it != object.end(); ++it) out += (out.empty() ? "" : ", ") + it.key();
  return out;
}

Json read_file(const std::string& path) {
  std::ifstream in(path);
  DDPM_CHECK(in.good(), "config: cannot read '", path, "'; give an existing JSON file (see configs/)");
  try {
    return Json::parse(in);
  } catch (const Json::exception& e) {  // a syntax error, or a number out of range (found by fuzzing)
    detail::fail("config: '", path, "' is not valid JSON: ", e.what());
  }
}

void set_override(Json& config, const std::string& assignment) {
  const size_t eq = assignment.find('='), dot = assignment.find('.');
  DDPM_CHECK(eq != std::string::npos && dot != std::string::npos && dot < eq,
             "config: --set expects section.key=value (e.g. train.steps=500), got '", assignment, "'");
  const std::string section = assignment.substr(0, dot), key = assignment.substr(dot + 1, eq - dot - 1);
  const std::string text = assignment.substr(eq + 1);
  Json value = Json::parse(text, nullptr, false);
  if (value.is_discarded()) value = text;  // a bare word: a string
  config[section][key] = value;
}
}  // namespace

void validate_config(const Json& config) {
  const Json& defaults = default_config();
  DDPM_CHECK(config.is_object(), "config: the top level must be an object of sections (", keys_of(defaults), ")");
  for (auto section = config.begin(); section != config.end(); ++section) {
    DDPM_CHECK(defaults.contains(section.key()), "config: unknown section '", section.key(), "'; valid sections: ",
               keys_of(defaults));
    const Json& schema = defaults.at(section.key());
    DDPM_CHECK(section->is_object(), "config: '", section.key(), "' must be a section (an object), got ",
               type_name(*section));
    for (auto item = section->begin(); item != section->end(); ++item) {
      const std::string name = section.key() + "." + item.key();
      DDPM_CHECK(schema.contains(item.key()), "config: unknown key '", name, "'; valid keys in '", section.key(),
                 "': ", keys_of(schema));
      const Json& want = schema.at(item.key());
      DDPM_CHECK(compatible(want, *item), "config: '", name, "' must be ", type_name(want),
                 want.is_array() ? " of integers" : "", ", got ", type_name(*item), " ", item->dump());
    }
  }
}

Json apply_overrides(Json config, const std::vector<std::string>& overrides) {
  for (const std::string& o : overrides) set_override(config, o);
  validate_config(config);
  return config;
}

Json resolve_config(const std::string& file, const std::vector<std::string>& overrides) {
  Json config = default_config();
  if (!file.empty()) {
    Json user = read_file(file);
    validate_config(user);
    config.merge_patch(user);
  }
  return apply_overrides(config, overrides);
}

std::string describe_defaults() {
  std::ostringstream out;
  const Json& d = default_config();
  for (auto s = d.begin(); s != d.end(); ++s)
    for (auto k = s->begin(); k != s->end(); ++k) out << "  " << s.key() << "." << k.key() << " = " << k->dump() << "\n";
  return out.str();
}

}  // namespace ddpm
