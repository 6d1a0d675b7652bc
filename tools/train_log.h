// `ddpm train`, logging: the run's config.json (and classes.json), metrics.jsonl (one JSON line
// per train.log_every steps: window-mean loss, mse, vb_bits, gradient norm, lr, images/s), the
// progress bar, and the loss curve at the end. Rank 0 writes every file.
#pragma once
#include <chrono>
#include <fstream>
#include <memory>
#include <vector>

#include "tools/config.h"
#include "tools/progress.h"
#include "tools/train_setup.h"
#include "tools/train_step.h"

namespace ddpm {

class TrainLog {
 public:
  // Writes the run's config (as resolved) and class names, keeps the metrics log up to run.step
  // (a resumed run drops what came after its checkpoint), and prints the start line.
  TrainLog(const TrainRun& run, const Communicator& comm);

  // After each step: the progress bar, and every log_every steps (and at the last) a metrics line.
  // Every rank must call it: the line's diagnostics are summed over the ranks.
  void record(const TrainRun& run, const StepResult& result, Communicator& comm);

  void finish(const std::string& message);  // the progress bar's last line (rank 0)
  // loss_curve.png of every logged line (rank 0, after the last step); returns the last line's loss.
  double write_loss_curve(const std::string& run_dir) const;

 private:
  bool root_;
  std::vector<Json> lines_;  // the whole metrics log, for the curve
  std::ofstream out_;
  std::unique_ptr<ProgressBar> bar_;
  std::chrono::steady_clock::time_point window_start_;
  int64_t window_steps_ = 0;
  double window_loss_ = 0;  // summed over the steps since the last line
};

}  // namespace ddpm
