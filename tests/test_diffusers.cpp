// diffusers UNet2DModel import and export against diffusers itself. The reference outputs are
// pinned by scripts/pin_diffusers_fixtures.py (diffusers 0.27.2, torch 1.13, float32 CPU) in
// tests/fixtures/diffusers/; weights are a formula both sides evaluate bit for bit (fixture_value).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "diffusion/samplers.h"
#include "diffusion/timestep_spacing.h"
#include "engine/autograd.h"
#include "engine/io/safetensors.h"
#include "engine/nn/parameters.h"
#include "engine/optim/adam.h"
#include "engine/optim/ema.h"
#include "tests/cli_runner.h"
#include "tools/checkpoint.h"
#include "tools/diffusers_export.h"
#include "tools/diffusers_import.h"
#include "tools/diffusers_names.h"
#include "tools/factories.h"
#include "tools/trained_model.h"

using namespace ddpm;
using Catch::Contains;
namespace fs = std::filesystem;

namespace {
const std::string kFixtures = std::string(DDPM_SOURCE_DIR) + "/tests/fixtures/diffusers/";

Json read_json(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  return Json::parse(in);
}

// scripts/pin_diffusers_fixtures.py's fixture_value, bit for bit.
uint64_t fnv1a64(const std::string& text) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : text) h = (h ^ c) * 0x100000001B3ull;
  return h;
}

Tensor fixture_value(const std::string& name, const Shape& shape) {
  int64_t n = 1, fan_in = 1;
  for (size_t i = 0; i < shape.size(); ++i) n *= shape[i], fan_in *= i ? shape[i] : 1;
  const bool norm_weight = name.find("norm") != std::string::npos && name.size() > 7 &&
                           name.compare(name.size() - 7, 7, ".weight") == 0;
  const uint64_t key = fnv1a64(name);
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    uint64_t z = key + static_cast<uint64_t>(i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    const double r = static_cast<double>(z >> 11) * std::ldexp(1.0, -53) * 2.0 - 1.0;
    const double value = shape.size() == 1 ? (norm_weight ? 1.0 + 0.2 * r : 0.1 * r)
                                           : r * std::sqrt(3.0 / static_cast<double>(fan_in));
    v[static_cast<size_t>(i)] = static_cast<float>(value);
  }
  return Tensor::from_vector(v, shape);
}

// max |a - b| / max |b|: the error relative to the reference's scale.
double relative_error(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  const Tensor x = a.to(Device::CPU).to(DType::F32), y = b.to(Device::CPU).to(DType::F32);
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    diff = std::max(diff, std::fabs(double(x.data<float>()[i]) - y.data<float>()[i]));
    scale = std::max(scale, std::fabs(double(y.data<float>()[i])));
  }
  return diff / scale;
}

Tensor network_output(TrainedModel& m, const Tensor& x, const Tensor& t) {
  NoGradGuard no_grad;
  return m.model->forward(x, t, {});
}

// The CIFAR-10 configuration as a bare unet folder: config.json and formula weights.
void write_cifar10_unet(const std::string& dir) {
  fs::create_directories(dir);
  fs::copy_file(kFixtures + "cifar10_config.json", dir + "/config.json");
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const Json& entry : read_json(kFixtures + "cifar10_params.json"))
    tensors.emplace_back(entry[0].get<std::string>(), fixture_value(entry[0], entry[1].get<Shape>()));
  save_safetensors(dir + "/diffusion_pytorch_model.safetensors", tensors, {{"format", "pt"}});
}

// A model of the engine's own (not imported): 8x8 one-channel images, two levels, attention at 4x4
// with model.heads = 2, x0 prediction, fixed-large variance, cosine schedule; formula weights keyed
// by the engine's parameter names.
void write_engine_run(const std::string& run) {
  Json config = default_config();
  config["data"]["dataset"] = "folder";
  config["model"]["base_channels"] = 16;
  config["model"]["channel_mult"] = {1, 2};
  config["model"]["num_res_blocks"] = 1;
  config["model"]["attention_resolutions"] = {4};
  config["model"]["heads"] = 2;
  config["model"]["groups"] = 8;
  config["diffusion"]["steps"] = 200;
  config["diffusion"]["schedule"] = "linear";
  config["diffusion"]["scale_to_1000"] = true;
  config["diffusion"]["prediction"] = "x0";
  config["diffusion"]["variance"] = "fixed_large";
  config["sample"]["spacing"] = "leading";
  const Shape image{8, 8, 1};
  std::unique_ptr<Denoiser> model = build_model(parse_config(config), image);
  ParameterSet params(*model, 0);
  for (const NamedParameter& p : params.entries()) p.value.copy_from(fixture_value(p.name, p.value.shape()));
  fs::create_directories(run);
  save_checkpoint(run, params, Ema(params, 0.9999), Adam(params, AdamConfig{}),
                  Json{{"step", 0}, {"config", config}, {"image_shape", image}});
}
}  // namespace

TEST_CASE("diffusers names: the engine's CIFAR-10 UNet has exactly UNet2DModel's tensors", "[diffusers]") {
  Shape image;
  std::vector<std::string> notes;
  const Json config = engine_config_from_diffusers(read_json(kFixtures + "cifar10_config.json"), Json(), &image, &notes);
  CHECK(image == Shape{32, 32, 3});
  CHECK(config["model"]["channel_mult"] == Json({1, 2, 2, 2}));
  CHECK(config["model"]["attention_resolutions"] == Json({16}));
  std::map<std::string, Shape> want;
  for (const Json& e : read_json(kFixtures + "cifar10_params.json")) want[e[0]] = e[1].get<Shape>();
  std::unique_ptr<Denoiser> model = build_model(parse_config(config), image);
  int64_t count = 0;
  std::set<std::string> seen;
  model->visit_parameters([&](const std::string& name, Tensor& t, const InitSpec&) {
    const std::string d = diffusers_name_of(name, 4);
    INFO(name << " -> " << d);
    REQUIRE(want.count(d));
    const Shape& s = want[d];
    CHECK(t.shape() == (s.size() == 4 ? Shape{s[0], s[2], s[3], s[1]} : s));
    CHECK(seen.insert(d).second);
    count += t.numel();
  });
  CHECK(seen.size() == want.size());
  CHECK(count == 35746307);  // DDPM's CIFAR-10 model (docs/math.md)
}

TEST_CASE("diffusers names: conv layouts and legacy attention names", "[diffusers]") {
  const Tensor w = fixture_value("conv", {2, 3, 2, 2});  // [O, I, KH, KW]
  const Tensor e = from_diffusers_layout(w);             // [O, KH, KW, I]
  REQUIRE(e.shape() == Shape{2, 2, 2, 3});
  for (int o = 0; o < 2; ++o)
    for (int i = 0; i < 3; ++i)
      for (int y = 0; y < 2; ++y)
        for (int x = 0; x < 2; ++x)
          CHECK(e.data<float>()[((o * 2 + y) * 2 + x) * 3 + i] == w.data<float>()[((o * 3 + i) * 2 + y) * 2 + x]);
  const Tensor back = to_diffusers_layout(e);
  CHECK(std::equal(back.data<float>(), back.data<float>() + 24, w.data<float>()));
  CHECK(modern_attention_name("mid_block.attentions.0.query.weight") == "mid_block.attentions.0.to_q.weight");
  CHECK(modern_attention_name("down_blocks.1.attentions.0.proj_attn.bias") == "down_blocks.1.attentions.0.to_out.0.bias");
  CHECK(modern_attention_name("down_blocks.1.resnets.0.conv1.weight") == "down_blocks.1.resnets.0.conv1.weight");
  CHECK(diffusers_name_of("up.0.upsample.weight", 3) == "up_blocks.2.upsamplers.0.conv.weight");
  CHECK(diffusers_name_of("up.2.block.1.nin_shortcut.bias", 3) == "up_blocks.0.resnets.1.conv_shortcut.bias");
  CHECK_THROWS_WITH(diffusers_name_of("class_embed.weight", 3), Contains("class_embed.weight"));
}

TEST_CASE("diffusers import: the small pipeline (several heads, learned range, v prediction) computes what diffusers does",
          "[diffusers]") {
  test::TempDir tmp;
  const std::vector<std::string> notes = import_diffusers(kFixtures + "small", tmp / "run", {});
  CHECK(notes.empty());
  TrainedModel m = load_trained_model(tmp / "run", {}, false);
  CHECK(m.config.model.head_channels == 8);
  CHECK(m.config.model.flip_sin_to_cos == true);
  CHECK(m.config.model.freq_shift == 0);
  CHECK(m.config.diffusion.prediction == Prediction::V);
  CHECK(m.config.diffusion.variance == VarianceType::LearnedRange);
  CHECK(m.config.diffusion.schedule == BetaSchedule::Cosine);
  CHECK(m.config.sample.spacing == TimestepSpacing::Trailing);
  const NamedTensors io = load_safetensors(kFixtures + "small_io.safetensors");
  const double err = relative_error(network_output(m, io.at("x"), io.at("t")), io.at("out"));
  WARN("small model: relative error " << err);
  CHECK(err < 1e-4);
}

TEST_CASE("diffusers import: DDIM (eta 0) sampling equals diffusers' DDIMScheduler loop", "[diffusers]") {
  test::TempDir tmp;
  import_diffusers(kFixtures + "small", tmp / "run", {});
  TrainedModel m = load_trained_model(tmp / "run", {}, false);
  const NamedTensors pinned = load_safetensors(kFixtures + "small_ddim.safetensors");
  for (const char* spacing : {"trailing", "leading"}) {
    INFO(spacing);
    const std::vector<int> steps = sampling_steps(parse_timestep_spacing(spacing), 1000, 20);
    const Tensor want_steps = pinned.at(std::string(spacing) + "_steps");  // descending
    REQUIRE(want_steps.numel() == 20);
    for (int k = 0; k < 20; ++k) CHECK(steps[static_cast<size_t>(19 - k)] == want_steps.data<float>()[k]);
    SampleOptions options;
    options.clip = std::string(spacing) == "leading";  // the pinned leading run clips x0_hat
    NoGradGuard no_grad;
    const Tensor x = reverse_chain(m.diffusion->respaced(steps), model_fn(*m.model, {}), pinned.at("x_T"),
                                   reverse_step_args::Mode::Ddim, 0.0, options);
    const double err = relative_error(x, pinned.at(spacing));
    WARN("DDIM " << spacing << " 20 steps: relative error " << err);
    CHECK(err < 1e-3);
  }
}

TEST_CASE("diffusers import: google/ddpm-cifar10-32's configuration (bare unet folder) computes what diffusers does",
          "[diffusers]") {
  test::TempDir tmp;
  write_cifar10_unet(tmp / "unet");
  const std::vector<std::string> notes = import_diffusers(tmp / "unet", tmp / "run", {});
  REQUIRE(notes.size() == 1);
  CHECK_THAT(notes[0], Contains("no scheduler_config.json"));
  TrainedModel m = load_trained_model(tmp / "run", {}, false);
  CHECK(m.config.model.downsample_padding == 0);
  CHECK(m.config.diffusion.schedule == BetaSchedule::Linear);
  const NamedTensors io = load_safetensors(kFixtures + "cifar10_io.safetensors");
  const double err = relative_error(network_output(m, io.at("x"), io.at("t")), io.at("out"));
  WARN("CIFAR-10 model: relative error " << err);
  CHECK(err < 1e-4);
}

TEST_CASE("diffusers import: beta schedules equal diffusers' alphas_cumprod", "[diffusers]") {
  const NamedTensors pinned = load_safetensors(kFixtures + "schedules.safetensors");
  const std::pair<const char*, Json> cases[] = {
      {"linear", {{"beta_schedule", "linear"}}},
      {"scaled_linear", {{"beta_schedule", "scaled_linear"}}},
      {"squaredcos_cap_v2", {{"beta_schedule", "squaredcos_cap_v2"}}},
      {"sigmoid", {{"beta_schedule", "sigmoid"}}},
      {"linear_scaled_T200", {{"num_train_timesteps", 200}, {"beta_start", 5e-4}, {"beta_end", 0.1}}}};
  for (const auto& [name, scheduler] : cases) {
    INFO(name);
    Shape image;
    std::vector<std::string> notes;
    const Json config = engine_config_from_diffusers(read_json(kFixtures + "cifar10_config.json"), scheduler, &image, &notes);
    const GaussianDiffusion diffusion = build_diffusion(parse_config(config).diffusion);
    const std::vector<double>& abar = diffusion.schedule().abar();
    const Tensor want = pinned.at(name);
    REQUIRE(static_cast<int64_t>(abar.size()) == want.numel());
    double err = 0;
    for (size_t t = 0; t < abar.size(); ++t)
      err = std::max(err, std::fabs(abar[t] - want.data<float>()[t]) / want.data<float>()[t]);
    WARN(name << ": max relative difference of abar " << err);
    CHECK(err < 2e-5);  // diffusers accumulates the product in float32
  }
}

TEST_CASE("diffusers import: refuses what the engine cannot express, naming the field and value", "[diffusers]") {
  const Json base = read_json(kFixtures + "cifar10_config.json");
  auto refused = [&](Json unet, Json scheduler, const std::string& message) {
    Shape image;
    std::vector<std::string> notes;
    CHECK_THROWS_WITH(engine_config_from_diffusers(unet, scheduler, &image, &notes), Contains(message));
  };
  auto with = [&](const char* key, Json value) {
    Json u = base;
    u[key] = value;
    return u;
  };
  refused(with("mid_block_scale_factor", 2), Json(), "mid_block_scale_factor = 2");
  refused(with("resnet_time_scale_shift", "scale_shift"), Json(), "resnet_time_scale_shift = \"scale_shift\"");
  refused(with("time_embedding_type", "fourier"), Json(), "time_embedding_type = \"fourier\"");
  refused(with("center_input_sample", true), Json(), "center_input_sample = true");
  refused(with("act_fn", "gelu"), Json(), "act_fn = \"gelu\"");
  refused(with("num_class_embeds", 10), Json(), "num_class_embeds = 10");
  refused(with("block_out_channels", {128, 192, 256, 256}), Json(), "block_out_channels = [128,192,256,256]");
  refused(with("up_block_types", {"UpBlock2D", "UpBlock2D", "UpBlock2D", "AttnUpBlock2D"}), Json(),
          "at the same resolutions");
  refused(with("down_block_types", {"DownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D", "DownBlock2D"}), Json(),
          "CrossAttnDownBlock2D");
  refused(with("some_future_field", 3), Json(), "some_future_field = 3");
  refused(with("out_channels", 6), Json(), "out_channels = 6");  // 2C outputs need learned_range
  refused(base, {{"beta_schedule", "exotic"}}, "beta_schedule = \"exotic\"");
  refused(base, {{"beta_start", 0.00085}, {"beta_end", 0.012}}, "beta_start = 0.00085");
  refused(base, {{"variance_type", "learned"}}, "variance_type = \"learned\"");
  refused(base, {{"prediction_type", "flow"}}, "prediction_type = \"flow\"");
  refused(base, {{"thresholding", true}}, "thresholding = true");
  refused(base, {{"rescale_betas_zero_snr", true}}, "rescale_betas_zero_snr = true");
  refused(base, {{"_class_name", "PNDMScheduler"}}, "PNDMScheduler");
  Json learned = with("out_channels", 6);
  Shape image;
  std::vector<std::string> notes;
  const Json ok = engine_config_from_diffusers(learned, {{"variance_type", "learned_range"}, {"steps_offset", 1}}, &image, &notes);
  CHECK(ok["diffusion"]["variance"] == "learned_range");
  REQUIRE(notes.size() == 1);
  CHECK_THAT(notes[0], Contains("steps_offset 1"));
}

TEST_CASE("diffusers export: diffusers loads the export and computes what the engine does", "[diffusers]") {
  test::TempDir tmp;
  write_engine_run(tmp / "run");
  export_diffusers(tmp / "run", tmp / "export", {});
  // The configs are the ones diffusers loaded when the fixtures were pinned.
  CHECK(read_json(tmp / "export/unet/config.json") == read_json(kFixtures + "export_unet_config.json"));
  CHECK(read_json(tmp / "export/scheduler/scheduler_config.json") ==
        read_json(kFixtures + "export_scheduler_scheduler_config.json"));
  CHECK(read_json(tmp / "export/unet/config.json")["attention_head_dim"] == 16);  // model.heads 2 of 32 channels
  TrainedModel m = load_trained_model(tmp / "run", {}, false);
  const NamedTensors io = load_safetensors(kFixtures + "export_io.safetensors");
  const Tensor engine = network_output(m, io.at("x"), io.at("t"));
  const double err = relative_error(engine, io.at("out"));
  WARN("export: relative error of diffusers' output " << err);
  CHECK(err < 1e-4);
  const std::vector<double>& abar = m.diffusion->schedule().abar();
  const Tensor want = io.at("alphas_cumprod");
  double schedule_err = 0;
  for (size_t t = 0; t < abar.size(); ++t)
    schedule_err = std::max(schedule_err, std::fabs(abar[t] - want.data<float>()[t]) / want.data<float>()[t]);
  CHECK(schedule_err < 2e-5);

  // And back: importing the export gives the same weights, bit for bit, and the same run config.
  REQUIRE(import_diffusers(tmp / "export", tmp / "again", {}).empty());
  TrainedModel again = load_trained_model(tmp / "again", {}, false);
  CHECK(relative_error(network_output(again, io.at("x"), io.at("t")), engine) == 0);
  for (const char* key : {"base_channels", "channel_mult", "num_res_blocks", "attention_resolutions", "groups"})
    CHECK(again.config.json["model"][key] == m.config.json["model"][key]);
  for (const char* key : {"steps", "schedule", "scale_to_1000", "prediction", "variance"})
    CHECK(again.config.json["diffusion"][key] == m.config.json["diffusion"][key]);
}

TEST_CASE("diffusers export: refuses runs diffusers cannot express", "[diffusers]") {
  Json config = default_config();
  config["model"]["type"] = "mlp";
  CHECK_THROWS_WITH(diffusers_unet_config(parse_config(config), {1, 1, 2}), Contains("only the UNet"));
  config = default_config();
  config["model"]["heads"] = 4;  // 28x28: attention at 14 (64 channels) and the middle (96): heads of 16 and 24
  config["model"]["base_channels"] = 32;
  config["model"]["channel_mult"] = {1, 2, 3};
  config["model"]["attention_resolutions"] = {14};
  CHECK_THROWS_WITH(diffusers_unet_config(parse_config(config), {28, 28, 1}), Contains("one attention_head_dim"));
}

TEST_CASE("diffusers: ddpm import and export on the command line", "[diffusers][cli]") {
  test::TempDir tmp;
  const test::Outcome bad = test::run_ddpm({"import", "diffusers", kFixtures + "small", "--out", tmp / "x", "--set",
                                            "model.no_such_key=1"});
  CHECK(bad.status == 1);
  CHECK_THAT(bad.err, Contains("model.no_such_key"));
  const test::Outcome missing = test::run_ddpm({"import", "diffusers", tmp / "nowhere", "--out", tmp / "x"});
  CHECK(missing.status == 1);
  CHECK_THAT(missing.err, Contains("is not a directory"));
  const test::Outcome ok = test::run_ddpm({"import", "diffusers", kFixtures + "small", "--out", tmp / "run"});
  REQUIRE(ok.status == 0);
  // The imported run samples like a trained one; DDIM with eta 0 is deterministic given the seed,
  // so two runs agree, and its 4 steps follow the run's trailing spacing.
  const std::vector<std::string> sample{"sample", "--run", tmp / "run", "--set", "sample.count=2", "--set",
                                        "sample.method=ddim", "--set", "sample.steps=4"};
  auto with_out = [&](std::vector<std::string> args, const std::string& name) {
    args.insert(args.end(), {"--out", tmp / (name + ".png"), "--raw", tmp / (name + ".safetensors")});
    return args;
  };
  REQUIRE(test::run_ddpm(with_out(sample, "a")).status == 0);
  REQUIRE(test::run_ddpm(with_out(sample, "b")).status == 0);
  const Tensor a = load_safetensors(tmp / "a.safetensors").at("samples");
  CHECK(a.shape() == Shape{2, 16, 16, 3});
  CHECK(relative_error(a, load_safetensors(tmp / "b.safetensors").at("samples")) == 0);
  const test::Outcome exported = test::run_ddpm({"export", "diffusers", tmp / "run", "--out", tmp / "export"});
  REQUIRE(exported.status == 0);
  CHECK(fs::exists(tmp / "export/model_index.json"));
  CHECK(load_safetensors(tmp / "export/unet/diffusion_pytorch_model.safetensors").tensors.size() ==
        load_safetensors(kFixtures + "small/unet/diffusion_pytorch_model.safetensors").tensors.size());
}

// Not run by default: scripts/pin_diffusers_fixtures.py runs it to get the engine's export, which
// it loads with diffusers.
TEST_CASE("diffusers export: write the export fixture for the pin script", "[.diffusers-export-pin]") {
  const char* dir = std::getenv("DDPM_DIFFUSERS_EXPORT_DIR");
  REQUIRE(dir != nullptr);
  test::TempDir tmp;
  write_engine_run(tmp / "run");
  export_diffusers(tmp / "run", dir, {});
}
