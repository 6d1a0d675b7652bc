// The ddpm program's configuration as types: the resolved JSON document (tools/config.h) is parsed
// and validated once, here, into one struct per section, with every enum-valued key turned into
// its enum. Every command reads these structs; only the parser reads the document by key, and only
// the run writers (config.json, checkpoint.json) use the document itself (Config::json).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "diffusion/timestep_sampler.h"
#include "diffusion/timestep_spacing.h"
#include "diffusion/types.h"
#include "tools/config.h"

namespace ddpm {

enum class Dataset { FashionMnist, Mnist, Cifar10, Folder, Toy };
enum class ModelType { Unet, Mlp };
enum class DeviceChoice { Auto, Cpu, Cuda };
enum class ConvImplChoice { Custom, Cudnn };
enum class SampleMethod { Ancestral, Ddim, DpmPP2M, DpmPP3M, Heun, EulerAncestral };
enum class SigmaLevels { Auto, Discrete, Karras };  // auto: Karras levels

// The names the config uses.
const char* dataset_name(Dataset d);
const char* model_type_name(ModelType t);
const char* sample_method_name(SampleMethod m);
const char* sigma_levels_name(SigmaLevels s);

struct DataSection {
  Dataset dataset = Dataset::FashionMnist;
  std::string path;  // "" = the dataset's default place
  std::string toy;   // data.dataset toy: the distribution (tools/data/toy2d.h checks the name)
  int64_t toy_size = 0;
  int channels = 3;  // image folders
  bool random_flip = false;
  int64_t limit = 0;  // 0: every example
};

struct ModelSection {
  ModelType type = ModelType::Unet;
  int base_channels = 0;
  std::vector<int> channel_mult;
  int num_res_blocks = 0;
  std::vector<int> attention_resolutions;
  int heads = 1;
  double dropout = 0;
  int groups = 0;
  double norm_eps = 0;
  int head_channels = 0;
  bool flip_sin_to_cos = false;
  int freq_shift = 1;
  int downsample_padding = 1;
  int mlp_hidden = 0, mlp_blocks = 0;
  int num_classes = 0;  // 0: unconditional
};

struct DiffusionSection {
  int steps = 0;
  BetaSchedule schedule = BetaSchedule::Linear;
  bool scale_to_1000 = false;
  Prediction prediction = Prediction::Epsilon;
  VarianceType variance = VarianceType::FixedSmall;
  LossType loss = LossType::Mse;
  double hybrid_lambda = 0;
  TimestepSamplerKind timestep_sampler = TimestepSamplerKind::Uniform;
};

struct TrainSection {
  int64_t steps = 0, batch_size = 0;
  double lr = 0;  // the peak learning rate (tools/lr_schedule.h)
  int64_t warmup = 0;
  double grad_clip = 0, ema_decay = 0, weight_decay = 0;
  bool adamw = false;
  uint64_t seed = 0;
  DeviceChoice device = DeviceChoice::Auto;
  bool mixed_precision = false;
  ConvImplChoice conv_impl = ConvImplChoice::Custom;
  bool deterministic = true;  // CUDA: no kernel whose accumulation order varies (cuDNN's atomics)
  bool cuda_graphs = true;    // CUDA: capture the training step once and replay it (tools/train_step_graph.h)
  int64_t log_every = 0, sample_every = 0, checkpoint_every = 0;
  int sample_steps = 0;
  double label_dropout = 0;
};

struct ClassifierSection {
  std::vector<int> channels;
  int blocks = 0, groups = 0;
  bool cosine_decay = false, use_ema = false;
  int64_t eval_batch_size = 0;
};

struct SampleSection {
  int64_t count = 0;
  SampleMethod method = SampleMethod::Ancestral;
  int steps = 0;
  double eta = 0;
  SigmaLevels sigmas = SigmaLevels::Auto;
  double rho = 0, s_churn = 0, s_tmin = 0, s_tmax = 0, s_noise = 0, euler_eta = 0;
  TimestepSpacing spacing = TimestepSpacing::Even;
  bool clip = true, use_ema = true;
  uint64_t seed = 0;
  std::string class_spec;  // sample.class: "" (all), "all", "none", a class name or index
  bool cuda_graphs = true;  // CUDA: capture each batch's sampling loop once and replay it (kernels/cuda/graph_capture.h)
  double guidance = 0;
};

struct EvalSection {
  int64_t count = 0, batch_size = 0;
  bool use_ema = true;
  uint64_t seed = 0;
};

struct Config {
  DataSection data;
  ModelSection model;
  DiffusionSection diffusion;
  TrainSection train;
  ClassifierSection classifier;
  SampleSection sample;
  EvalSection eval;
  // The document this was parsed from, exactly as resolved: what a run records (config.json,
  // checkpoint.json), so that resuming and --set work on it as before.
  Json json;
};

// Validates `resolved` (unknown keys, types: validate_config) and every enum name, and reads it.
// Keys missing from a run recorded before they existed take their defaults.
Config parse_config(const Json& resolved);
// resolve_config(file, overrides), parsed.
Config load_config(const std::string& file, const std::vector<std::string>& overrides);
// A run's recorded config with --set overrides (apply_overrides), parsed.
Config recorded_config(const Json& recorded, const std::vector<std::string>& overrides);

}  // namespace ddpm
