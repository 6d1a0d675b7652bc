#include "tools/progress.h"

#include <unistd.h>

#include <cstdio>

namespace ddpm {

std::string format_duration(double seconds) {
  const auto s = static_cast<long long>(seconds + 0.5);
  char out[32];
  if (s >= 3600)
    std::snprintf(out, sizeof out, "%lldh%02lldm", s / 3600, (s / 60) % 60);
  else if (s >= 60)
    std::snprintf(out, sizeof out, "%lldm%02llds", s / 60, s % 60);
  else
    std::snprintf(out, sizeof out, "%llds", s);
  return out;
}

ProgressBar::ProgressBar(std::string label, int64_t total, int64_t start, int64_t every)
    : label_(std::move(label)), total_(total), start_(start), every_(every > 0 ? every : 1),
      tty_(isatty(STDERR_FILENO) != 0), began_(std::chrono::steady_clock::now()) {}

void ProgressBar::update(int64_t done, const std::string& extra, double items_per_unit) {
  if (!tty_ && done % every_ != 0 && done != total_) return;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - began_).count();
  const double units = static_cast<double>(done - start_);
  const double rate = elapsed > 0 ? units / elapsed : 0;
  const double eta = rate > 0 ? static_cast<double>(total_ - done) / rate : 0;
  const int width = 24;
  const int filled = total_ > 0 ? static_cast<int>(width * done / total_) : width;
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(static_cast<size_t>(width), '.');
  std::fprintf(stderr, "%s%s [%s] %lld/%lld %s %.1f/s ETA %s%s", tty_ ? "\r" : "", label_.c_str(), bar.c_str(),
               static_cast<long long>(done), static_cast<long long>(total_), extra.c_str(), rate * items_per_unit,
               format_duration(eta).c_str(), tty_ ? "\033[K" : "\n");
  std::fflush(stderr);
}

void ProgressBar::finish(const std::string& message) {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - began_).count();
  std::fprintf(stderr, "%s%s %s in %s\n", tty_ ? "\r\033[K" : "", label_.c_str(), message.c_str(),
               format_duration(elapsed).c_str());
}

}  // namespace ddpm
