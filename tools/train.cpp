// `ddpm train`: the training loop, its logs, sample grids and checkpoints.
#include "tools/train.h"

#include <csignal>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "diffusion/timestep_sampler.h"
#include "engine/autograd.h"
#include "engine/nn/parameters.h"
#include "engine/ops.h"
#include "engine/optim/adam.h"
#include "engine/optim/ema.h"
#include "tools/checkpoint.h"
#include "tools/conditioning.h"
#include "tools/data/batch_order.h"
#include "tools/data_parallel.h"
#include "tools/generate.h"
#include "tools/image_io.h"
#include "tools/progress.h"
#include "tools/runtime.h"

namespace ddpm {

namespace fs = std::filesystem;

namespace {
volatile std::sig_atomic_t g_interrupted = 0;
void on_stop_request(int) { g_interrupted = 1; }

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

// The n entries of v from `first` on.
template <class T>
std::vector<T> slice(const std::vector<T>& v, int64_t first, int64_t n) {
  return {v.begin() + first, v.begin() + first + n};
}

// Feeds the timestep sampler every rank's (t, loss) pairs in global batch order, so that its
// history, and with it the next draws, is the same on every rank and in a one-process run.
void update_timestep_sampler(TimestepSampler& sampler, Communicator& comm, const std::vector<int>& t,
                             const std::vector<double>& losses) {
  if (comm.size() == 1) return sampler.update(t, losses);
  std::vector<double> mine(t.begin(), t.end());
  mine.insert(mine.end(), losses.begin(), losses.end());
  const std::vector<double> all = comm.all_gather(mine);  // per rank: its t, then its losses
  const size_t n = t.size();
  std::vector<int> all_t;
  std::vector<double> all_losses;
  for (size_t r = 0; r < all.size(); r += 2 * n)
    for (size_t i = 0; i < n; ++i) {
      all_t.push_back(static_cast<int>(all[r + i]));
      all_losses.push_back(all[r + n + i]);
    }
  sampler.update(all_t, all_losses);
}

int train(const TrainArgs& args, Communicator& comm) {
  const bool root = comm.is_root();
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
  if (root) fs::create_directories(fs::path(run_dir) / "samples");
  const Json& t = config.at("train");
  const int64_t total_steps = t.at("steps"), batch = t.at("batch_size"), log_every = t.at("log_every");
  const int64_t sample_every = t.at("sample_every"), checkpoint_every = t.at("checkpoint_every");
  const uint64_t seed = t.at("seed");
  const double lr = t.at("lr"), clip = t.at("grad_clip");
  const int64_t warmup = t.at("warmup");
  DDPM_CHECK(total_steps >= 1 && batch >= 1 && log_every >= 1 && warmup >= 0 && lr > 0,
             "train: need steps >= 1, batch_size >= 1, log_every >= 1, warmup >= 0 and lr > 0");
  const Shard shard = shard_of(batch, comm);
  // This rank's share of the global mean: summing the ranks' gradients gives its gradient.
  const double share = static_cast<double>(shard.size) / static_cast<double>(batch);

  // ---- data, model, optimizer ----
  const Device device = choose_device(t.at("device"));
  const bool mixed = t.at("mixed_precision");
  DDPM_CHECK(!mixed || device == Device::CUDA, "train.mixed_precision trains in bfloat16 on a GPU, but this run is on "
             "the CPU; set train.mixed_precision=false");
  apply_conv_impl(config);
  const ImageSet data = load_dataset(config, "train");
  check_class_conditioning(config, data);
  const int num_classes = num_classes_of(config);
  const std::vector<std::string> class_names = run_class_names(config, data);
  const double label_dropout = t.value("label_dropout", 0.1);
  GenerateOptions sample_check;  // sample.class and sample.guidance, checked now rather than after training
  choose_sample_classes(config, class_names, num_classes, sample_check);
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
    DDPM_CHECK(class_names_of_run(resumed) == class_names, "train --resume: the data's classes differ from the ",
               "classes the checkpoint was trained on (", resumed.value("classes", Json::array()).dump(), ")");
    DDPM_CHECK(step < total_steps, "train --resume: the run already reached step ", step, " of ", total_steps,
               "; raise train.steps with --set train.steps=N to go on");
  }
  broadcast_training_state(comm, params, ema, adam);

  // ---- logs (rank 0 writes every file of the run) ----
  const fs::path metrics_path = fs::path(run_dir) / "metrics.jsonl";
  std::vector<Json> metrics;
  std::ofstream metrics_out;
  if (root) {
    write_file_atomically((fs::path(run_dir) / "config.json").string(), config.dump(2) + "\n");
    if (num_classes > 0)
      write_file_atomically((fs::path(run_dir) / "classes.json").string(), classes_json(class_names).dump(2) + "\n");
    metrics = read_metrics(metrics_path, step);
    std::string kept;
    for (const Json& j : metrics) kept += j.dump() + "\n";
    write_file_atomically(metrics_path.string(), kept);
    metrics_out.open(metrics_path, std::ios::app);
    std::fprintf(stderr, "ddpm train: %s, %lld examples %s, %lld parameters on %s%s%s\n", run_dir.c_str(),
                 static_cast<long long>(data.size()), shape_str(image_shape).c_str(),
                 static_cast<long long>(params.count()), device_name(device),
                 comm.size() > 1 ? (", data-parallel: " + comm.describe() + ", " + std::to_string(shard.size) +
                                    " examples per rank")
                                       .c_str()
                                 : "",
                 step ? (" (resuming at step " + std::to_string(step) + ")").c_str() : "");
  }

  auto state_json = [&](int64_t at) {
    Json state{{"step", at},
               {"config", config},
               {"image_shape", image_shape},
               {"data", {{"examples", data.size()}, {"next_example", at * batch}, {"epoch", at * batch / data.size()}}},
               {"rng", {{"seed", seed}, {"stream", at}}},
               {"timestep_sampler", timesteps->state()}};
    if (num_classes > 0) state["classes"] = class_names;
    return state;
  };
  int64_t last_checkpoint = step;
  auto say_what_is_kept = [&] {
    on_termination_say(comm, last_checkpoint ? "The last checkpoint (step " + std::to_string(last_checkpoint) +
                                                   ") is kept in " + run_dir + "; continue with --resume " + run_dir
                                             : std::string("No checkpoint had been written yet."));
  };
  say_what_is_kept();
  auto checkpoint = [&](int64_t at) {
    if (root) save_checkpoint(run_dir, params, ema, adam, state_json(at));
    last_checkpoint = at;
    say_what_is_kept();
  };
  auto sample_grid = [&](const fs::path& path) {  // rank 0 only
    NoGradGuard no_grad;
    ema.swap_with(params);  // sample with the EMA weights
    GenerateOptions o;
    o.count = config.at("sample").at("count");
    o.steps = t.at("sample_steps");
    o.seed = seed_for(config.at("sample").at("seed"), Purpose::Sampling);
    const int columns = choose_sample_classes(config, class_names, num_classes, o);
    Tensor images = generate(*model, diffusion, image_shape, device, o);
    ema.swap_with(params);
    save_samples(images, path.string(), columns);
  };

  // ---- the loop ----
  // SIGINT, or SIGUSR1 (which mpirun forwards to every rank), stops after the step with a checkpoint.
  g_interrupted = 0;
  auto previous_sigint = std::signal(SIGINT, on_stop_request);
  auto previous_sigusr1 = std::signal(SIGUSR1, on_stop_request);
  BatchOrder order(data.size(), seed);
  ProgressBar bar("train", total_steps, step, log_every);
  auto window_start = std::chrono::steady_clock::now();
  int64_t window_steps = 0;
  double window_loss = 0;  // summed over the steps since the last log line
  int status = 0;
  while (step < total_steps) {
    ++step;
    // Every random draw is addressed by the step and by the example's place in the global batch,
    // so a shard draws exactly what its rows would draw in a one-process run.
    const uint64_t stream = static_cast<uint64_t>(step), first = static_cast<uint64_t>(shard.first);
    const std::vector<int64_t> rows = slice(order.indices(step, batch), shard.first, shard.size);
    const Tensor x0 = gather_batch(data, rows, config.at("data").at("random_flip"), seed_for(seed, Purpose::Flip), stream,
                                   first)
                          .to(device);
    const TimestepDraw whole = timesteps->draw(static_cast<int>(batch), seed_for(seed, Purpose::Timesteps), stream);
    const TimestepDraw draw{slice(whole.t, shard.first, shard.size), slice(whole.weights, shard.first, shard.size)};
    model->train(true);
    const DropoutKey dropout_key{seed_for(seed, Purpose::Dropout), stream, first};
    ModelFn network = num_classes == 0 ? model_fn(*model, dropout_key)
                                       : condition_on(labeled_model_fn(*model, dropout_key),
                                                      training_labels(data, rows, label_dropout, num_classes,
                                                                      dropout_key.seed, stream, first));
    if (mixed) network = in_bfloat16(std::move(network));
    const auto losses = diffusion.training_losses(network, x0, draw.t, seed_for(seed, Purpose::Noise), stream, first);
    Tensor loss = mean(mul(losses.loss, Tensor::from_vector(draw.weights, {shard.size}, DType::F32, device)));
    if (comm.size() > 1) loss = scale(loss, share);
    // One collective for the loss of the global batch and the stop flag, so every rank takes the
    // same decision at the same step.
    std::vector<double> shared{loss.item(), g_interrupted ? 1.0 : 0.0};
    comm.sum(shared);
    const double value = shared[0];
    const bool stop_requested = shared[1] > 0;
    DDPM_CHECK(std::isfinite(value), "train: the loss is ", value, " at step ", step,
               "; training stopped. The last good checkpoint (step ", last_checkpoint, ") is kept in ", run_dir,
               ". Lower train.lr or set train.grad_clip, then resume with --resume ", run_dir);
    params.zero_grad();
    backward(loss);
    comm.sum(params.grads());  // the gradient of the global batch's mean loss, on every rank
    const double norm = clip > 0 ? clip_grad_norm(params, clip) : grad_norm(params);
    DDPM_CHECK(std::isfinite(norm), "train: the gradient norm is ", norm, " at step ", step,
               "; training stopped. The last good checkpoint (step ", last_checkpoint, ") is kept in ", run_dir);
    const double lr_now = lr * (warmup > 0 ? std::min(1.0, static_cast<double>(step) / static_cast<double>(warmup)) : 1.0);
    adam.step(lr_now, 1.0, &ema);
    update_timestep_sampler(*timesteps, comm, draw.t, losses.loss.to_vector());
    ++window_steps;
    window_loss += value;

    char extra[64];
    std::snprintf(extra, sizeof extra, "loss %.4f", value);
    if (root) bar.update(step, extra, static_cast<double>(batch));
    if (step % log_every == 0 || step == total_steps) {
      std::vector<double> diagnostics{share * mean(losses.mse).item(), losses.vb.defined() ? share * mean(losses.vb).item() : 0};
      comm.sum(diagnostics);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - window_start).count();
      Json line{{"step", step},
                {"loss", window_loss / static_cast<double>(window_steps)},
                {"mse", diagnostics[0]},
                {"grad_norm", norm},
                {"lr", lr_now},
                {"images_per_s", seconds > 0 ? static_cast<double>(window_steps * batch) / seconds : 0.0}};
      if (losses.vb.defined()) line["vb_bits"] = diagnostics[1];
      if (root) metrics_out << line.dump() << "\n" << std::flush;
      metrics.push_back(line);
      window_start = std::chrono::steady_clock::now();
      window_steps = 0;
      window_loss = 0;
    }
    if (root && sample_every > 0 && step % sample_every == 0) {
      char name[32];
      std::snprintf(name, sizeof name, "step_%07lld.png", static_cast<long long>(step));
      sample_grid(fs::path(run_dir) / "samples" / name);
    }
    if (stop_requested) {
      checkpoint(step);
      if (root) {
        bar.finish("interrupted");
        std::fprintf(stderr, "ddpm train: interrupted at step %lld; checkpoint saved. Continue with: ddpm train --resume %s\n",
                     static_cast<long long>(step), run_dir.c_str());
      }
      status = 130;
      break;
    }
    if ((checkpoint_every > 0 && step % checkpoint_every == 0) || step == total_steps) checkpoint(step);
  }
  std::signal(SIGINT, previous_sigint);
  std::signal(SIGUSR1, previous_sigusr1);
  if (status != 0 || !root) return status;
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

}  // namespace

int train_command(const TrainArgs& args) {
  Communicator& comm = world();  // first: with several ranks it also picks this rank's GPU
  if (comm.size() == 1) return train(args, comm);
  try {
    return train(args, comm);
  } catch (const std::exception& e) {
    // The other ranks may be waiting in a collective for this one: end the whole job.
    std::fprintf(stderr, "\nddpm train (rank %d of %d): error: %s\n", comm.rank(), comm.size(), e.what());
    comm.abort(1);
  }
  return 1;  // not reached: abort() ends the process
}

}  // namespace ddpm
