#include "tools/typed_config.h"

#include <utility>

#include "engine/error.h"

namespace ddpm {

namespace {
template <class T>
T get(const Json& section, const char* key) {
  return section.at(key).get<T>();
}

// The enum whose name is `name` in `table`, else the error `refuse` builds.
template <class E, size_t N, class Refuse>
E pick(const std::string& name, const std::pair<const char*, E> (&table)[N], Refuse refuse) {
  for (const auto& [text, value] : table)
    if (name == text) return value;
  refuse();
  return table[0].second;  // not reached: refuse throws
}

template <class E, size_t N>
const char* name_in(E value, const std::pair<const char*, E> (&table)[N]) {
  for (const auto& [text, v] : table)
    if (v == value) return text;
  return "?";
}

const std::pair<const char*, Dataset> kDatasets[] = {{"fashion-mnist", Dataset::FashionMnist},
                                                     {"mnist", Dataset::Mnist},
                                                     {"cifar10", Dataset::Cifar10},
                                                     {"folder", Dataset::Folder},
                                                     {"toy", Dataset::Toy}};
const std::pair<const char*, ModelType> kModelTypes[] = {{"unet", ModelType::Unet}, {"mlp", ModelType::Mlp}};
const std::pair<const char*, DeviceChoice> kDevices[] = {
    {"auto", DeviceChoice::Auto}, {"cpu", DeviceChoice::Cpu}, {"cuda", DeviceChoice::Cuda}};
const std::pair<const char*, ConvImplChoice> kConvImpls[] = {{"custom", ConvImplChoice::Custom},
                                                             {"cudnn", ConvImplChoice::Cudnn}};
const std::pair<const char*, SampleMethod> kSampleMethods[] = {
    {"ancestral", SampleMethod::Ancestral}, {"ddim", SampleMethod::Ddim}, {"dpm++2m", SampleMethod::DpmPP2M},
    {"dpm++3m", SampleMethod::DpmPP3M},     {"heun", SampleMethod::Heun}, {"euler_a", SampleMethod::EulerAncestral}};
const std::pair<const char*, SigmaLevels> kSigmaLevels[] = {
    {"auto", SigmaLevels::Auto}, {"discrete", SigmaLevels::Discrete}, {"karras", SigmaLevels::Karras}};

DataSection parse_data(const Json& d) {
  DataSection s;
  const std::string dataset = get<std::string>(d, "dataset");
  s.dataset = pick(dataset, kDatasets, [&] {
    detail::fail("data.dataset: unknown dataset \"", dataset, "\"; valid: fashion-mnist, mnist, cifar10, folder, toy");
  });
  s.path = get<std::string>(d, "path");
  s.toy = get<std::string>(d, "toy");
  s.toy_size = get<int64_t>(d, "toy_size");
  s.channels = get<int>(d, "channels");
  s.random_flip = get<bool>(d, "random_flip");
  s.limit = get<int64_t>(d, "limit");
  return s;
}

ModelSection parse_model(const Json& m) {
  ModelSection s;
  const std::string type = get<std::string>(m, "type");
  s.type = pick(type, kModelTypes, [&] { detail::fail("model.type must be \"unet\" or \"mlp\", got \"", type, "\""); });
  s.base_channels = get<int>(m, "base_channels");
  s.channel_mult = get<std::vector<int>>(m, "channel_mult");
  s.num_res_blocks = get<int>(m, "num_res_blocks");
  s.attention_resolutions = get<std::vector<int>>(m, "attention_resolutions");
  s.heads = get<int>(m, "heads");
  s.dropout = get<double>(m, "dropout");
  s.groups = get<int>(m, "groups");
  s.norm_eps = get<double>(m, "norm_eps");
  s.head_channels = get<int>(m, "head_channels");
  s.flip_sin_to_cos = get<bool>(m, "flip_sin_to_cos");
  s.freq_shift = get<int>(m, "freq_shift");
  s.downsample_padding = get<int>(m, "downsample_padding");
  s.mlp_hidden = get<int>(m, "mlp_hidden");
  s.mlp_blocks = get<int>(m, "mlp_blocks");
  s.num_classes = get<int>(m, "num_classes");
  return s;
}

DiffusionSection parse_diffusion(const Json& d) {
  DiffusionSection s;
  s.steps = get<int>(d, "steps");
  s.schedule = parse_beta_schedule(get<std::string>(d, "schedule"));
  s.scale_to_1000 = get<bool>(d, "scale_to_1000");
  s.prediction = parse_prediction(get<std::string>(d, "prediction"));
  s.variance = parse_variance(get<std::string>(d, "variance"));
  s.loss = parse_loss(get<std::string>(d, "loss"));
  s.hybrid_lambda = get<double>(d, "hybrid_lambda");
  s.timestep_sampler = parse_timestep_sampler(get<std::string>(d, "timestep_sampler"));
  return s;
}

TrainSection parse_train(const Json& t) {
  TrainSection s;
  s.steps = get<int64_t>(t, "steps");
  s.batch_size = get<int64_t>(t, "batch_size");
  s.lr = get<double>(t, "lr");
  s.warmup = get<int64_t>(t, "warmup");
  s.grad_clip = get<double>(t, "grad_clip");
  s.ema_decay = get<double>(t, "ema_decay");
  s.weight_decay = get<double>(t, "weight_decay");
  s.adamw = get<bool>(t, "adamw");
  s.seed = get<uint64_t>(t, "seed");
  const std::string device = get<std::string>(t, "device");
  s.device = pick(device, kDevices, [&] {
    detail::fail("train.device must be \"auto\", \"cpu\" or \"cuda\", got \"", device, "\"");
  });
  s.mixed_precision = get<bool>(t, "mixed_precision");
  s.deterministic = get<bool>(t, "deterministic");
  s.cuda_graphs = get<bool>(t, "cuda_graphs");
  const std::string impl = get<std::string>(t, "conv_impl");
  s.conv_impl = pick(impl, kConvImpls, [&] {
    detail::fail("train.conv_impl must be \"custom\" or \"cudnn\", got \"", impl, "\"");
  });
  s.log_every = get<int64_t>(t, "log_every");
  s.sample_every = get<int64_t>(t, "sample_every");
  s.checkpoint_every = get<int64_t>(t, "checkpoint_every");
  s.sample_steps = get<int>(t, "sample_steps");
  s.label_dropout = get<double>(t, "label_dropout");
  return s;
}

ClassifierSection parse_classifier(const Json& c) {
  ClassifierSection s;
  s.channels = get<std::vector<int>>(c, "channels");
  s.blocks = get<int>(c, "blocks");
  s.groups = get<int>(c, "groups");
  s.cosine_decay = get<bool>(c, "cosine_decay");
  s.use_ema = get<bool>(c, "use_ema");
  s.eval_batch_size = get<int64_t>(c, "eval_batch_size");
  return s;
}

SampleSection parse_sample(const Json& j) {
  SampleSection s;
  s.count = get<int64_t>(j, "count");
  const std::string method = get<std::string>(j, "method");
  s.method = pick(method, kSampleMethods, [&] {
    detail::fail("sample.method must be ancestral, ddim, dpm++2m, dpm++3m, heun or euler_a, got \"", method, "\"");
  });
  s.steps = get<int>(j, "steps");
  s.eta = get<double>(j, "eta");
  const std::string sigmas = get<std::string>(j, "sigmas");
  s.sigmas = pick(sigmas, kSigmaLevels,
                  [&] { detail::fail("sample.sigmas must be auto, discrete or karras, got \"", sigmas, "\""); });
  s.rho = get<double>(j, "rho");
  s.s_churn = get<double>(j, "s_churn");
  s.s_tmin = get<double>(j, "s_tmin");
  s.s_tmax = get<double>(j, "s_tmax");
  s.s_noise = get<double>(j, "s_noise");
  s.euler_eta = get<double>(j, "euler_eta");
  s.spacing = parse_timestep_spacing(get<std::string>(j, "spacing"));
  s.clip = get<bool>(j, "clip");
  s.use_ema = get<bool>(j, "use_ema");
  s.seed = get<uint64_t>(j, "seed");
  s.class_spec = get<std::string>(j, "class");
  s.guidance = get<double>(j, "guidance");
  s.cuda_graphs = get<bool>(j, "cuda_graphs");
  return s;
}

EvalSection parse_eval(const Json& e) {
  EvalSection s;
  s.count = get<int64_t>(e, "count");
  s.batch_size = get<int64_t>(e, "batch_size");
  s.use_ema = get<bool>(e, "use_ema");
  s.seed = get<uint64_t>(e, "seed");
  return s;
}
}  // namespace

const char* dataset_name(Dataset d) { return name_in(d, kDatasets); }
const char* model_type_name(ModelType t) { return name_in(t, kModelTypes); }
const char* sample_method_name(SampleMethod m) { return name_in(m, kSampleMethods); }
const char* sigma_levels_name(SigmaLevels s) { return name_in(s, kSigmaLevels); }

Config parse_config(const Json& resolved) {
  validate_config(resolved);
  Json full = default_config();  // a run recorded before a key existed reads its default
  full.merge_patch(resolved);
  Config c;
  c.data = parse_data(full.at("data"));
  c.model = parse_model(full.at("model"));
  c.diffusion = parse_diffusion(full.at("diffusion"));
  c.train = parse_train(full.at("train"));
  c.classifier = parse_classifier(full.at("classifier"));
  c.sample = parse_sample(full.at("sample"));
  c.eval = parse_eval(full.at("eval"));
  c.json = resolved;
  return c;
}

Config load_config(const std::string& file, const std::vector<std::string>& overrides) {
  return parse_config(resolve_config(file, overrides));
}

Config recorded_config(const Json& recorded, const std::vector<std::string>& overrides) {
  return parse_config(apply_overrides(recorded, overrides));
}

}  // namespace ddpm
