// A one-line progress bar on stderr: step, loss, rate, ETA. On a terminal it redraws in place; in a
// log file it prints a line every `every` updates instead.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace ddpm {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total, int64_t start = 0, int64_t every = 50);
  // done: units finished so far; items: things processed per unit (images per step) for the rate.
  void update(int64_t done, const std::string& extra, double items_per_unit = 1);
  void finish(const std::string& message);

 private:
  std::string label_;
  int64_t total_, start_, every_;
  bool tty_;
  std::chrono::steady_clock::time_point began_;
};

std::string format_duration(double seconds);  // "1h02m", "3m07s", "12s"

}  // namespace ddpm
