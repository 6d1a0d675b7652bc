// The typed config (tools/typed_config.h): every enum-valued key is checked when the config is
// parsed, with a message that names the key and the valid values; every value reaches its field;
// a run recorded before a key existed reads the key's default; unknown keys and wrong types are
// still refused by name.
#include <catch2/catch.hpp>

#include "tools/typed_config.h"

using namespace ddpm;
using Catch::Contains;

namespace {
Config with(std::initializer_list<std::string> overrides) { return load_config("", overrides); }

std::string error_of(std::initializer_list<std::string> overrides) {
  try {
    load_config("", overrides);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}
}  // namespace

TEST_CASE("typed config: an unknown name of any enum key is refused, naming the key and the valid values",
          "[config][errors]") {
  CHECK_THAT(error_of({"data.dataset=imagenet"}),
             Contains("data.dataset: unknown dataset \"imagenet\"; valid: fashion-mnist, mnist, cifar10, folder, toy"));
  CHECK_THAT(error_of({"model.type=transformer"}), Contains("model.type must be \"unet\" or \"mlp\", got \"transformer\""));
  CHECK_THAT(error_of({"diffusion.schedule=exp"}), Contains("unknown beta schedule 'exp'; valid: linear, cosine"));
  CHECK_THAT(error_of({"diffusion.prediction=noise"}), Contains("unknown prediction 'noise'; valid: epsilon, x0, v"));
  CHECK_THAT(error_of({"diffusion.variance=learned"}),
             Contains("unknown variance 'learned'; valid: fixed_small, fixed_large, learned_range"));
  CHECK_THAT(error_of({"diffusion.loss=l1"}), Contains("unknown loss 'l1'; valid: mse, kl, rescaled_kl, hybrid"));
  CHECK_THAT(error_of({"diffusion.timestep_sampler=importance"}),
             Contains("diffusion.timestep_sampler must be \"uniform\" or \"loss_second_moment\", got \"importance\""));
  CHECK_THAT(error_of({"train.device=gpu"}), Contains("train.device must be \"auto\", \"cpu\" or \"cuda\", got \"gpu\""));
  CHECK_THAT(error_of({"train.conv_impl=winograd"}),
             Contains("train.conv_impl must be \"custom\" or \"cudnn\", got \"winograd\""));
  CHECK_THAT(error_of({"sample.method=dpm++"}),
             Contains("sample.method must be ancestral, ddim, dpm++2m, dpm++3m, heun or euler_a, got \"dpm++\""));
  CHECK_THAT(error_of({"sample.sigmas=uniform"}), Contains("sample.sigmas must be auto, discrete or karras, got \"uniform\""));
  CHECK_THAT(error_of({"sample.spacing=linspace"}),
             Contains("sample.spacing must be \"even\", \"leading\" or \"trailing\", got \"linspace\""));
}

TEST_CASE("typed config: unknown keys and wrong types are refused as before", "[config][errors]") {
  CHECK_THAT(error_of({"train.learning_rate=0.1"}), Contains("unknown key 'train.learning_rate'") && Contains("lr"));
  CHECK_THAT(error_of({"trainer.lr=0.1"}), Contains("unknown section 'trainer'"));
  CHECK_THAT(error_of({"train.steps=many"}), Contains("'train.steps' must be an integer"));
  Json bad = default_config();
  bad["sample"]["count"] = "all";
  CHECK_THROWS_WITH(parse_config(bad), Contains("'sample.count' must be an integer"));
}

TEST_CASE("typed config: every enum name reads as its value and back", "[config]") {
  for (const char* name : {"fashion-mnist", "mnist", "cifar10", "folder", "toy"})
    CHECK(std::string(dataset_name(with({std::string("data.dataset=") + name}).data.dataset)) == name);
  for (const char* name : {"unet", "mlp"})
    CHECK(std::string(model_type_name(with({std::string("model.type=") + name}).model.type)) == name);
  for (const char* name : {"ancestral", "ddim", "dpm++2m", "dpm++3m", "heun", "euler_a"})
    CHECK(std::string(sample_method_name(with({std::string("sample.method=") + name}).sample.method)) == name);
  for (const char* name : {"auto", "discrete", "karras"})
    CHECK(std::string(sigma_levels_name(with({std::string("sample.sigmas=") + name}).sample.sigmas)) == name);
  for (const char* name : {"even", "leading", "trailing"})
    CHECK(std::string(timestep_spacing_name(with({std::string("sample.spacing=") + name}).sample.spacing)) == name);
  for (const char* name : {"linear", "cosine", "quadratic", "sigmoid"})
    CHECK(std::string(beta_schedule_name(with({std::string("diffusion.schedule=") + name}).diffusion.schedule)) == name);
  for (const char* name : {"uniform", "loss_second_moment"})
    CHECK(std::string(timestep_sampler_name(with({std::string("diffusion.timestep_sampler=") + name})
                                                .diffusion.timestep_sampler)) == name);
  CHECK(with({"train.device=cpu"}).train.device == DeviceChoice::Cpu);
  CHECK(with({"train.device=cuda"}).train.device == DeviceChoice::Cuda);
  CHECK(with({"train.conv_impl=cudnn"}).train.conv_impl == ConvImplChoice::Cudnn);
  CHECK(with({}).train.deterministic);  // bit-identical runs unless asked otherwise
  CHECK_FALSE(with({"train.deterministic=false"}).train.deterministic);
  CHECK_THAT(error_of({"train.deterministic=\"yes\""}), Contains("train.deterministic"));
  CHECK(with({"diffusion.prediction=v"}).diffusion.prediction == Prediction::V);
  CHECK(with({"diffusion.variance=learned_range"}).diffusion.variance == VarianceType::LearnedRange);
  CHECK(with({"diffusion.loss=rescaled_kl"}).diffusion.loss == LossType::RescaledKl);
}

TEST_CASE("typed config: every value reaches its field, and the document is kept as resolved", "[config]") {
  const Config c = with({"data.path=/d", "data.toy=moons", "data.toy_size=77", "data.channels=1",
                         "data.random_flip=true", "data.limit=5", "model.base_channels=48", "model.channel_mult=[1,3]",
                         "model.num_res_blocks=2", "model.attention_resolutions=[4,2]", "model.heads=4",
                         "model.dropout=0.25", "model.groups=16", "model.norm_eps=1e-5", "model.head_channels=8",
                         "model.flip_sin_to_cos=true", "model.freq_shift=0", "model.downsample_padding=0",
                         "model.mlp_hidden=64", "model.mlp_blocks=2", "model.num_classes=10", "diffusion.steps=400",
                         "diffusion.scale_to_1000=true", "diffusion.hybrid_lambda=0.01", "train.steps=7",
                         "train.batch_size=3", "train.lr=0.125", "train.warmup=2", "train.grad_clip=0.5",
                         "train.ema_decay=0.9", "train.weight_decay=0.01", "train.adamw=true", "train.seed=9",
                         "train.mixed_precision=true", "train.log_every=4", "train.sample_every=6",
                         "train.checkpoint_every=8", "train.sample_steps=11", "train.label_dropout=0.2",
                         "classifier.channels=[8,16]", "classifier.blocks=2", "classifier.groups=4",
                         "classifier.cosine_decay=false", "classifier.use_ema=true", "classifier.eval_batch_size=12",
                         "sample.count=13", "sample.steps=14", "sample.eta=0.5", "sample.rho=3.5", "sample.s_churn=0.1",
                         "sample.s_tmin=0.2", "sample.s_tmax=30", "sample.s_noise=1.1", "sample.euler_eta=0.6",
                         "sample.clip=false", "sample.use_ema=false", "sample.seed=15", "sample.class=Bag",
                         "sample.guidance=1.5", "eval.count=16", "eval.batch_size=17", "eval.use_ema=false",
                         "eval.seed=18"});
  CHECK((c.data.path == "/d" && c.data.toy == "moons" && c.data.toy_size == 77 && c.data.channels == 1 &&
         c.data.random_flip && c.data.limit == 5));
  const ModelSection& m = c.model;
  CHECK((m.base_channels == 48 && m.channel_mult == std::vector<int>{1, 3} && m.num_res_blocks == 2 &&
         m.attention_resolutions == std::vector<int>{4, 2} && m.heads == 4 && m.dropout == 0.25 && m.groups == 16 &&
         m.norm_eps == 1e-5 && m.head_channels == 8 && m.flip_sin_to_cos && m.freq_shift == 0 &&
         m.downsample_padding == 0 && m.mlp_hidden == 64 && m.mlp_blocks == 2 && m.num_classes == 10));
  CHECK((c.diffusion.steps == 400 && c.diffusion.scale_to_1000 && c.diffusion.hybrid_lambda == 0.01));
  const TrainSection& t = c.train;
  CHECK((t.steps == 7 && t.batch_size == 3 && t.lr == 0.125 && t.warmup == 2 && t.grad_clip == 0.5 &&
         t.ema_decay == 0.9 && t.weight_decay == 0.01 && t.adamw && t.seed == 9 && t.mixed_precision &&
         t.log_every == 4 && t.sample_every == 6 && t.checkpoint_every == 8 && t.sample_steps == 11 &&
         t.label_dropout == 0.2));
  CHECK((c.classifier.channels == std::vector<int>{8, 16} && c.classifier.blocks == 2 && c.classifier.groups == 4 &&
         !c.classifier.cosine_decay && c.classifier.use_ema && c.classifier.eval_batch_size == 12));
  const SampleSection& s = c.sample;
  CHECK((s.count == 13 && s.steps == 14 && s.eta == 0.5 && s.rho == 3.5 && s.s_churn == 0.1 && s.s_tmin == 0.2 &&
         s.s_tmax == 30 && s.s_noise == 1.1 && s.euler_eta == 0.6 && !s.clip && !s.use_ema && s.seed == 15 &&
         s.class_spec == "Bag" && s.guidance == 1.5));
  CHECK((c.eval.count == 16 && c.eval.batch_size == 17 && !c.eval.use_ema && c.eval.seed == 18));
  CHECK(c.json == resolve_config("", {"data.path=/d", "data.toy=moons", "data.toy_size=77", "data.channels=1",
                                      "data.random_flip=true", "data.limit=5", "model.base_channels=48",
                                      "model.channel_mult=[1,3]", "model.num_res_blocks=2",
                                      "model.attention_resolutions=[4,2]", "model.heads=4", "model.dropout=0.25",
                                      "model.groups=16", "model.norm_eps=1e-5", "model.head_channels=8",
                                      "model.flip_sin_to_cos=true", "model.freq_shift=0",
                                      "model.downsample_padding=0", "model.mlp_hidden=64", "model.mlp_blocks=2",
                                      "model.num_classes=10", "diffusion.steps=400", "diffusion.scale_to_1000=true",
                                      "diffusion.hybrid_lambda=0.01", "train.steps=7", "train.batch_size=3",
                                      "train.lr=0.125", "train.warmup=2", "train.grad_clip=0.5", "train.ema_decay=0.9",
                                      "train.weight_decay=0.01", "train.adamw=true", "train.seed=9",
                                      "train.mixed_precision=true", "train.log_every=4", "train.sample_every=6",
                                      "train.checkpoint_every=8", "train.sample_steps=11", "train.label_dropout=0.2",
                                      "classifier.channels=[8,16]", "classifier.blocks=2", "classifier.groups=4",
                                      "classifier.cosine_decay=false", "classifier.use_ema=true",
                                      "classifier.eval_batch_size=12", "sample.count=13", "sample.steps=14",
                                      "sample.eta=0.5", "sample.rho=3.5", "sample.s_churn=0.1", "sample.s_tmin=0.2",
                                      "sample.s_tmax=30", "sample.s_noise=1.1", "sample.euler_eta=0.6",
                                      "sample.clip=false", "sample.use_ema=false", "sample.seed=15",
                                      "sample.class=Bag", "sample.guidance=1.5", "eval.count=16",
                                      "eval.batch_size=17", "eval.use_ema=false", "eval.seed=18"}));
}

TEST_CASE("typed config: a run recorded before a key existed reads the key's default, and is recorded unchanged",
          "[config]") {
  Json old = default_config();
  for (const char* key : {"num_classes", "norm_eps", "head_channels", "flip_sin_to_cos", "freq_shift",
                          "downsample_padding"})
    old["model"].erase(key);
  old["train"].erase("label_dropout");
  for (const char* key : {"spacing", "class", "guidance"}) old["sample"].erase(key);
  old["model"]["base_channels"] = 64;
  const Config c = recorded_config(old, {"sample.count=3"});
  const Json& d = default_config();
  CHECK(c.model.base_channels == 64);
  CHECK(c.model.num_classes == d["model"]["num_classes"].get<int>());
  CHECK(c.model.norm_eps == d["model"]["norm_eps"].get<double>());
  CHECK(c.model.freq_shift == d["model"]["freq_shift"].get<int>());
  CHECK(c.model.downsample_padding == d["model"]["downsample_padding"].get<int>());
  CHECK(c.train.label_dropout == d["train"]["label_dropout"].get<double>());
  CHECK(c.sample.spacing == TimestepSpacing::Even);
  CHECK(c.sample.class_spec.empty());
  CHECK(c.sample.guidance == 0);
  CHECK(c.sample.count == 3);
  // What the run records stays the document it had (plus the override), not the filled-in one.
  CHECK_FALSE(c.json["model"].contains("num_classes"));
  CHECK(c.json["sample"]["count"] == 3);
}
