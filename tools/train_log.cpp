#include "tools/train_log.h"

#include <cstdio>
#include <filesystem>

#include "engine/io/atomic_file.h"
#include "engine/ops.h"
#include "tools/conditioning.h"
#include "tools/image_io.h"

namespace ddpm {

namespace fs = std::filesystem;

namespace {
// The metrics log up to `last_step`.
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
}  // namespace

TrainLog::TrainLog(const TrainRun& run, const Communicator& comm) : root_(comm.is_root()) {
  const fs::path dir(run.run_dir);
  if (root_) {
    write_file_atomically((dir / "config.json").string(), run.config.json.dump(2) + "\n");
    if (run.num_classes > 0)
      write_file_atomically((dir / "classes.json").string(), classes_json(run.class_names).dump(2) + "\n");
    const fs::path metrics_path = dir / "metrics.jsonl";
    lines_ = read_metrics(metrics_path, run.step);
    std::string kept;
    for (const Json& j : lines_) kept += j.dump() + "\n";
    write_file_atomically(metrics_path.string(), kept);
    out_.open(metrics_path, std::ios::app);
    std::fprintf(stderr, "ddpm train: %s, %lld examples %s, %lld parameters on %s%s%s\n", run.run_dir.c_str(),
                 static_cast<long long>(run.data.size()), shape_str(run.image_shape).c_str(),
                 static_cast<long long>(run.params->count()), device_name(run.device),
                 comm.size() > 1 ? (", data-parallel: " + comm.describe() + ", " + std::to_string(run.shard.size) +
                                    " examples per rank")
                                       .c_str()
                                 : "",
                 run.step ? (" (resuming at step " + std::to_string(run.step) + ")").c_str() : "");
  }
  bar_ = std::make_unique<ProgressBar>("train", run.config.train.steps, run.step, run.config.train.log_every);
  window_start_ = std::chrono::steady_clock::now();
}

void TrainLog::record(const TrainRun& run, const StepResult& r, Communicator& comm) {
  const TrainSection& t = run.config.train;
  ++window_steps_;
  window_loss_ += r.loss;
  char extra[64];
  std::snprintf(extra, sizeof extra, "loss %.4f", r.loss);
  if (root_) bar_->update(run.step, extra, static_cast<double>(t.batch_size));
  if (run.step % t.log_every != 0 && run.step != t.steps) return;
  const GaussianDiffusion::Losses& losses = r.losses;
  std::vector<double> diagnostics{run.share * mean(losses.mse).item(),
                                  losses.vb.defined() ? run.share * mean(losses.vb).item() : 0};
  comm.sum(diagnostics);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - window_start_).count();
  Json line{{"step", run.step},
            {"loss", window_loss_ / static_cast<double>(window_steps_)},
            {"mse", diagnostics[0]},
            {"grad_norm", r.grad_norm},
            {"lr", r.lr},
            {"images_per_s", seconds > 0 ? static_cast<double>(window_steps_ * t.batch_size) / seconds : 0.0}};
  if (losses.vb.defined()) line["vb_bits"] = diagnostics[1];
  if (root_) out_ << line.dump() << "\n" << std::flush;
  lines_.push_back(line);
  window_start_ = std::chrono::steady_clock::now();
  window_steps_ = 0;
  window_loss_ = 0;
}

void TrainLog::finish(const std::string& message) {
  if (root_) bar_->finish(message);
}

double TrainLog::write_loss_curve(const std::string& run_dir) const {
  Series curve{{}, {}, "loss"};
  for (const Json& j : lines_) curve.x.push_back(j["step"].get<double>()), curve.y.push_back(j["loss"].get<double>());
  write_line_plot((fs::path(run_dir) / "loss_curve.png").string(), {curve}, "training loss", "step", "loss", true);
  return lines_.empty() ? 0.0 : lines_.back()["loss"].get<double>();
}

}  // namespace ddpm
