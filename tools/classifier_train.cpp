// `ddpm classifier train`: trains the image classifier (models/classifier.h) on the configured
// data set's labels with softmax cross-entropy, AdamW/Adam, linear warm-up then cosine decay, and
// evaluates the result on the test split. Keys: data.*, train.* (optimization) and classifier.*
// (the network); docs/usage.md.
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/optim/adam.h"
#include "engine/optim/ema.h"
#include "tools/checkpoint.h"
#include "tools/classifier_run.h"
#include "tools/commands.h"
#include "tools/data/batch_order.h"
#include "tools/progress.h"
#include "tools/factories.h"
#include "tools/lr_schedule.h"
#include "tools/train.h"

namespace ddpm {

namespace fs = std::filesystem;

namespace {
volatile std::sig_atomic_t g_interrupted = 0;
void on_interrupt(int) { g_interrupted = 1; }

}  // namespace

int classifier_train_command(const TrainArgs& args) {
  DDPM_CHECK(args.resume.empty(), "classifier train: --resume is not supported (a classifier trains in minutes); "
             "start a new run with --out");
  const Config config = load_config(args.config_file, args.overrides);
  const std::string run_dir =
      args.out.empty() ? "runs/" + (args.config_file.empty() ? std::string("classifier")
                                                             : fs::path(args.config_file).stem().string())
                       : args.out;
  DDPM_CHECK(!fs::exists(fs::path(run_dir) / "checkpoint.json"), "classifier train: '", run_dir,
             "' already holds a run; choose another --out");
  const TrainSection& t = config.train;
  const int64_t total_steps = t.steps, batch = t.batch_size, log_every = t.log_every;
  const uint64_t seed = t.seed;
  const double clip = t.grad_clip;
  DDPM_CHECK(total_steps >= 1 && batch >= 1 && log_every >= 1 && t.warmup >= 0 && t.warmup < total_steps && t.lr > 0,
             "classifier train: need train.steps >= 1, train.batch_size >= 1, train.log_every >= 1, "
             "0 <= train.warmup < train.steps and train.lr > 0");
  const LrSchedule lr(t, config.classifier.cosine_decay);

  // ---- data, model, optimizer ----
  const Device device = choose_device(t.device);
  const ImageSet data = load_dataset(config.data, "train");
  require_labels(data, "classifier train");
  const int64_t classes = *std::max_element(data.labels.begin(), data.labels.end()) + 1;
  DDPM_CHECK(classes >= 2, "classifier train: every training label is ", classes - 1,
             "; a classifier needs at least two classes (", data.description, ")");
  const Shape image_shape{data.height(), data.width(), data.channels()};
  Classifier model(classifier_config(config.classifier, image_shape, classes));
  ParameterSet params(model, seed, device);
  Adam adam(params, {0.9, 0.999, 1e-8, t.weight_decay, t.adamw});
  Ema ema(params, t.ema_decay);
  fs::create_directories(run_dir);
  write_file_atomically((fs::path(run_dir) / "config.json").string(), config.json.dump(2) + "\n");
  std::ofstream metrics((fs::path(run_dir) / "metrics.jsonl").string(), std::ios::trunc);
  std::fprintf(stderr, "ddpm classifier train: %s, %lld examples %s in %lld classes, %lld parameters on %s\n",
               run_dir.c_str(), static_cast<long long>(data.size()), shape_str(image_shape).c_str(),
               static_cast<long long>(classes), static_cast<long long>(params.count()), device_name(device));

  // ---- the loop ----
  g_interrupted = 0;
  auto previous_sigint = std::signal(SIGINT, on_interrupt);
  BatchOrder order(data.size(), seed);
  ProgressBar bar("classifier", total_steps, 0, log_every);
  const auto began = std::chrono::steady_clock::now();
  auto window_start = began;
  int64_t window_steps = 0, window_correct = 0, step = 0;
  double window_loss = 0;
  while (step < total_steps && !g_interrupted) {
    ++step;
    const std::vector<int64_t> indices = order.indices(step, batch);
    std::vector<float> labels;
    for (int64_t i : indices) labels.push_back(static_cast<float>(data.labels[static_cast<size_t>(i)]));
    const Tensor x = gather_batch(data, indices, config.data.random_flip, seed_for(seed, Purpose::Flip),
                                  static_cast<uint64_t>(step))
                         .to(device);
    const Tensor y = Tensor::from_vector(labels, {batch}, device);
    model.train(true);
    const ClassifierOutput out = model.forward(x);
    const Tensor loss = mean(softmax_cross_entropy(out.logits, y));
    const double value = loss.item();
    DDPM_CHECK(std::isfinite(value), "classifier train: the loss is ", value, " at step ", step,
               "; training stopped. Lower train.lr or set train.grad_clip");
    params.zero_grad();
    backward(loss);
    const double norm = clip > 0 ? clip_grad_norm(params, clip) : grad_norm(params);
    const double lr_now = lr.lr_at(step);
    adam.step(lr_now, 1.0, &ema);
    const std::vector<int> predicted = predicted_classes(out.logits.detach().to(Device::CPU));
    for (size_t i = 0; i < predicted.size(); ++i) window_correct += predicted[i] == static_cast<int>(labels[i]);
    ++window_steps;
    window_loss += value;

    char extra[64];
    std::snprintf(extra, sizeof extra, "loss %.4f", value);
    bar.update(step, extra, static_cast<double>(batch));
    if (step % log_every == 0 || step == total_steps) {
      const auto now = std::chrono::steady_clock::now();
      const double seconds = std::chrono::duration<double>(now - window_start).count();
      const double images = static_cast<double>(window_steps * batch);
      metrics << Json{{"step", step},
                      {"loss", window_loss / static_cast<double>(window_steps)},
                      {"accuracy", static_cast<double>(window_correct) / images},
                      {"grad_norm", norm},
                      {"lr", lr_now},
                      {"images_per_s", seconds > 0 ? images / seconds : 0.0}}
                     .dump()
              << "\n"
              << std::flush;
      window_start = now;
      window_steps = window_correct = 0;
      window_loss = 0;
    }
  }
  std::signal(SIGINT, previous_sigint);
  const double train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  bar.finish(g_interrupted ? "interrupted" : "done");

  // ---- the checkpoint, then the test accuracy of what it holds ----
  const Json state{{"kind", kClassifierRunKind},
                   {"step", step},
                   {"config", config.json},
                   {"image_shape", image_shape},
                   {"classes", classes},
                   {"train_seconds", train_seconds},
                   {"data", {{"examples", data.size()}, {"description", data.description}}}};
  save_checkpoint(run_dir, params, ema, adam, state);
  const ClassifierRun run = load_classifier_run(run_dir, {}, device);
  const Json report = evaluate_classifier(run, load_dataset(config.data, "test"), "test");
  write_file_atomically((fs::path(run_dir) / "eval_test.json").string(), report.dump(2) + "\n");
  std::fprintf(stderr,
               "ddpm classifier train: %lld steps in %s (%.0f images/s); test accuracy %.2f%% (%lld of %lld), "
               "loss %.4f (%s weights); wrote %s/eval_test.json\n",
               static_cast<long long>(step), format_duration(train_seconds).c_str(),
               static_cast<double>(step * batch) / train_seconds, 100.0 * report["accuracy"].get<double>(),
               static_cast<long long>(report["correct"].get<int64_t>()),
               static_cast<long long>(report["images"].get<int64_t>()), report["loss"].get<double>(),
               report["weights"].get<std::string>().c_str(), run_dir.c_str());
  return g_interrupted ? 130 : 0;
}

}  // namespace ddpm
