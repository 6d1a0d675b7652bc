// `ddpm train`: the training loop, its logs, sample grids and checkpoints.
#include "tools/train.h"

#include <csignal>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include "diffusion/timestep_sampler.h"
#include "engine/autograd.h"
#include "engine/nn/parameters.h"
#include "engine/ops.h"
#include "engine/optim/adam.h"
#include "engine/optim/ema.h"
#include "tools/checkpoint.h"
#include "tools/generate.h"
#include "tools/image_io.h"
#include "tools/progress.h"
#include "tools/runtime.h"

namespace ddpm {

namespace fs = std::filesystem;

namespace {
volatile std::sig_atomic_t g_interrupted = 0;
void on_sigint(int) { g_interrupted = 1; }

// Which examples batch `step` (1-based) takes: a fresh Philox permutation every epoch, so the
// position in the data is a function of the step alone and a resumed run sees the same batches.
class BatchOrder {
 public:
  BatchOrder(int64_t size, uint64_t seed) : size_(size), seed_(seed) {}
  std::vector<int64_t> indices(int64_t step, int64_t batch) {
    std::vector<int64_t> out;
    for (int64_t i = 0; i < batch; ++i) {
      const int64_t global = (step - 1) * batch + i, epoch = global / size_;
      auto found = epochs_.find(epoch);
      if (found == epochs_.end()) {
        epochs_.clear();  // keep one or two epochs in memory
        found = epochs_.emplace(epoch, epoch_permutation(size_, seed_, static_cast<uint64_t>(epoch))).first;
      }
      out.push_back(found->second[static_cast<size_t>(global % size_)]);
    }
    return out;
  }

 private:
  int64_t size_;
  uint64_t seed_;
  std::map<int64_t, std::vector<int64_t>> epochs_;
};

std::unique_ptr<TimestepSampler> make_timestep_sampler(const Json& config, int steps) {
  const std::string kind = config.at("diffusion").at("timestep_sampler");
  if (kind == "uniform") return std::make_unique<UniformTimestepSampler>(steps);
  DDPM_CHECK(kind == "loss_second_moment", "diffusion.timestep_sampler must be \"uniform\" or \"loss_second_moment\", got \"",
             kind, "\"");
  return std::make_unique<LossSecondMomentSampler>(steps);
}

// The metrics log up to `last_step` (a resumed run drops what came after its checkpoint) and the
// (step, loss) pairs for the loss curve.
std::vector<Json> read_metrics(const fs::path& path, int64_t last_step) {
  std::vector<Json> lines;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    Json j = Json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.contains("step") && j["step"].get<int64_t>() <= last_step) lines.push_back(j);
  }
  return lines;
}

std::string default_run_dir(const std::string& config_file) {
  return "runs/" + (config_file.empty() ? std::string("default") : fs::path(config_file).stem().string());
}

}  // namespace

int train_command(const TrainArgs& args) {
  // ---- configuration and run directory ----
  Json config, resumed;
  std::string run_dir;
  if (!args.resume.empty()) {
    DDPM_CHECK(args.config_file.empty(), "train: --resume takes the run's own config; use --set to change values");
    run_dir = args.resume;
    resumed = read_checkpoint_state(run_dir);
    config = apply_overrides(resumed.at("config"), args.overrides);
  } else {
    config = resolve_config(args.config_file, args.overrides);
    run_dir = args.out.empty() ? default_run_dir(args.config_file) : args.out;
    DDPM_CHECK(!fs::exists(fs::path(run_dir) / "checkpoint.json"), "train: '", run_dir,
               "' already holds a run; continue it with --resume ", run_dir, " or choose another --out");
  }
  fs::create_directories(fs::path(run_dir) / "samples");
  const Json& t = config.at("train");
  const int64_t total_steps = t.at("steps"), batch = t.at("batch_size"), log_every = t.at("log_every");
  const int64_t sample_every = t.at("sample_every"), checkpoint_every = t.at("checkpoint_every");
  const uint64_t seed = t.at("seed");
  const double lr = t.at("lr"), clip = t.at("grad_clip");
  const int64_t warmup = t.at("warmup");
  DDPM_CHECK(total_steps >= 1 && batch >= 1 && log_every >= 1 && warmup >= 0 && lr > 0,
             "train: need steps >= 1, batch_size >= 1, log_every >= 1, warmup >= 0 and lr > 0");

  // ---- data, model, optimizer ----
  const Device device = choose_device(t.at("device"));
  const bool mixed = t.at("mixed_precision");
  DDPM_CHECK(!mixed || device == Device::CUDA, "train.mixed_precision trains in bfloat16 on a GPU, but this run is on "
             "the CPU; set train.mixed_precision=false");
  apply_conv_impl(config);
  const ImageSet data = load_dataset(config, "train");
  const Shape image_shape{data.height(), data.width(), data.channels()};
  std::unique_ptr<Denoiser> model = build_model(config, image_shape);
  ParameterSet params(*model, seed, device);
  Adam adam(params, {lr, 0.9, 0.999, 1e-8, t.at("weight_decay").get<double>(), t.at("adamw").get<bool>()});
  Ema ema(params, t.at("ema_decay"));
  const GaussianDiffusion diffusion = build_diffusion(config);
  std::unique_ptr<TimestepSampler> timesteps = make_timestep_sampler(config, diffusion.steps());
  int64_t step = 0;
  if (!resumed.is_null()) {
    resumed = load_checkpoint(run_dir, params, &ema, &adam);
    step = resumed.at("step");
    DDPM_CHECK(resumed.at("image_shape").get<Shape>() == image_shape, "train --resume: the data's image shape ",
               shape_str(image_shape), " differs from the checkpoint's ", resumed.at("image_shape").dump());
    timesteps->restore(resumed.at("timestep_sampler"));
    DDPM_CHECK(step < total_steps, "train --resume: the run already reached step ", step, " of ", total_steps,
               "; raise train.steps with --set train.steps=N to go on");
  }
  write_file_atomically((fs::path(run_dir) / "config.json").string(), config.dump(2) + "\n");

  // ---- logs ----
  const fs::path metrics_path = fs::path(run_dir) / "metrics.jsonl";
  std::vector<Json> metrics = read_metrics(metrics_path, step);
  {
    std::string kept;
    for (const Json& j : metrics) kept += j.dump() + "\n";
    write_file_atomically(metrics_path.string(), kept);
  }
  std::ofstream metrics_out(metrics_path, std::ios::app);

  std::fprintf(stderr, "ddpm train: %s, %lld examples %s, %lld parameters on %s%s\n", run_dir.c_str(),
               static_cast<long long>(data.size()), shape_str(image_shape).c_str(),
               static_cast<long long>(params.count()), device_name(device),
               step ? (" (resuming at step " + std::to_string(step) + ")").c_str() : "");

  auto state_json = [&](int64_t at) {
    return Json{{"step", at},
                {"config", config},
                {"image_shape", image_shape},
                {"data", {{"examples", data.size()}, {"next_example", at * batch}, {"epoch", at * batch / data.size()}}},
                {"rng", {{"seed", seed}, {"stream", at}}},
                {"timestep_sampler", timesteps->state()}};
  };
  int64_t last_checkpoint = step;
  auto checkpoint = [&](int64_t at) {
    save_checkpoint(run_dir, params, ema, adam, state_json(at));
    last_checkpoint = at;
  };
  auto sample_grid = [&](const fs::path& path) {
    NoGradGuard no_grad;
    ema.swap_with(params);  // sample with the EMA weights
    GenerateOptions o;
    o.count = config.at("sample").at("count");
    o.steps = t.at("sample_steps");
    o.seed = seed_for(config.at("sample").at("seed"), Purpose::Sampling);
    Tensor images = generate(*model, diffusion, image_shape, device, o);
    ema.swap_with(params);
    save_samples(images, path.string());
  };

  // ---- the loop ----
  g_interrupted = 0;
  auto previous_handler = std::signal(SIGINT, on_sigint);
  BatchOrder order(data.size(), seed);
  ProgressBar bar("train", total_steps, step, log_every);
  auto window_start = std::chrono::steady_clock::now();
  int64_t window_steps = 0;
  double window_loss = 0;  // summed over the steps since the last log line
  int status = 0;
  while (step < total_steps) {
    ++step;
    const Tensor x0 = gather_batch(data, order.indices(step, batch), config.at("data").at("random_flip"),
                                   seed_for(seed, Purpose::Flip), static_cast<uint64_t>(step))
                          .to(device);
    const TimestepDraw draw = timesteps->draw(static_cast<int>(batch), seed_for(seed, Purpose::Timesteps), static_cast<uint64_t>(step));
    model->train(true);
    ModelFn network = model_fn(*model, {seed_for(seed, Purpose::Dropout), static_cast<uint64_t>(step)});
    if (mixed) network = in_bfloat16(std::move(network));
    const auto losses = diffusion.training_losses(network, x0, draw.t, seed_for(seed, Purpose::Noise),
                                                  static_cast<uint64_t>(step));
    const Tensor loss = mean(mul(losses.loss, Tensor::from_vector(draw.weights, {batch}, DType::F32, device)));
    const double value = loss.item();
    DDPM_CHECK(std::isfinite(value), "train: the loss is ", value, " at step ", step,
               "; training stopped. The last good checkpoint (step ", last_checkpoint, ") is kept in ", run_dir,
               ". Lower train.lr or set train.grad_clip, then resume with --resume ", run_dir);
    params.zero_grad();
    backward(loss);
    const double norm = clip > 0 ? clip_grad_norm(params, clip) : grad_norm(params);
    DDPM_CHECK(std::isfinite(norm), "train: the gradient norm is ", norm, " at step ", step,
               "; training stopped. The last good checkpoint (step ", last_checkpoint, ") is kept in ", run_dir);
    const double lr_now = lr * (warmup > 0 ? std::min(1.0, static_cast<double>(step) / static_cast<double>(warmup)) : 1.0);
    adam.step(lr_now, 1.0, &ema);
    timesteps->update(draw.t, losses.loss.to_vector());
    ++window_steps;
    window_loss += value;

    char extra[64];
    std::snprintf(extra, sizeof extra, "loss %.4f", value);
    bar.update(step, extra, static_cast<double>(batch));
    if (step % log_every == 0 || step == total_steps) {
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - window_start).count();
      Json line{{"step", step},
                {"loss", window_loss / static_cast<double>(window_steps)},
                {"mse", mean(losses.mse).item()},
                {"grad_norm", norm},
                {"lr", lr_now},
                {"images_per_s", seconds > 0 ? static_cast<double>(window_steps * batch) / seconds : 0.0}};
      if (losses.vb.defined()) line["vb_bits"] = mean(losses.vb).item();
      metrics_out << line.dump() << "\n" << std::flush;
      metrics.push_back(line);
      window_start = std::chrono::steady_clock::now();
      window_steps = 0;
      window_loss = 0;
    }
    if (sample_every > 0 && step % sample_every == 0) {
      char name[32];
      std::snprintf(name, sizeof name, "step_%07lld.png", static_cast<long long>(step));
      sample_grid(fs::path(run_dir) / "samples" / name);
    }
    if (g_interrupted) {
      checkpoint(step);
      bar.finish("interrupted");
      std::fprintf(stderr, "ddpm train: interrupted at step %lld; checkpoint saved. Continue with: ddpm train --resume %s\n",
                   static_cast<long long>(step), run_dir.c_str());
      status = 130;
      break;
    }
    if ((checkpoint_every > 0 && step % checkpoint_every == 0) || step == total_steps) checkpoint(step);
  }
  std::signal(SIGINT, previous_handler);
  if (status != 0) return status;
  bar.finish("done");

  // ---- the run's pictures ----
  Series curve{{}, {}, "loss"};
  for (const Json& j : metrics) curve.x.push_back(j["step"].get<double>()), curve.y.push_back(j["loss"].get<double>());
  write_line_plot((fs::path(run_dir) / "loss_curve.png").string(), {curve}, "training loss", "step", "loss", true);
  sample_grid(fs::path(run_dir) / "samples.png");
  std::fprintf(stderr, "ddpm train: final loss %.4f; wrote %s/loss_curve.png and %s/samples.png\n",
               metrics.empty() ? 0.0 : metrics.back()["loss"].get<double>(), run_dir.c_str(), run_dir.c_str());
  return 0;
}

}  // namespace ddpm
