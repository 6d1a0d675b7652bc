#include "engine/cpu_threads.h"

#include <dirent.h>
#include <omp.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

namespace ddpm {

namespace {
// Runnable threads on the whole machine, or -1 when /proc/stat cannot be read.
int machine_running_threads() {
  std::FILE* f = std::fopen("/proc/stat", "r");
  if (!f) return -1;
  char line[256];
  int running = -1;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "procs_running %d", &running) == 1) break;
  std::fclose(f);
  return running;
}

// This process's threads in state R (running or runnable), from /proc/self/task/*/stat.
int own_running_threads() {
  DIR* tasks = ::opendir("/proc/self/task");
  if (!tasks) return 0;
  int running = 0;
  while (const dirent* task = ::readdir(tasks)) {
    if (task->d_name[0] == '.') continue;
    char path[300], stat[512];
    std::snprintf(path, sizeof path, "/proc/self/task/%s/stat", task->d_name);
    std::FILE* f = std::fopen(path, "r");
    if (!f) continue;
    const size_t n = std::fread(stat, 1, sizeof stat - 1, f);
    std::fclose(f);
    stat[n] = '\0';
    // The state follows the command name, which is in parentheses and may itself hold spaces.
    const char* close = std::strrchr(stat, ')');
    if (close && close[1] == ' ' && close[2] == 'R') ++running;
  }
  ::closedir(tasks);
  return running;
}

int usable_cores() {
  cpu_set_t set;
  return ::sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : omp_get_num_procs();
}
}  // namespace

int fit_threads_to_load() {
  static const bool fixed = std::getenv("DDPM_FIXED_THREADS") != nullptr;
  if (fixed) return omp_get_max_threads();
  static const int team_at_start = omp_get_max_threads();
  static const int cores = usable_cores();
  static std::atomic<int64_t> last_sample_ns{std::numeric_limits<int64_t>::min() / 2};
  const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::steady_clock::now().time_since_epoch()).count();
  int64_t last = last_sample_ns.load(std::memory_order_relaxed);
  if (now - last < 50'000'000 || !last_sample_ns.compare_exchange_strong(last, now)) return omp_get_max_threads();
  int others = -1;
  for (int sample = 0; sample < 3; ++sample) {
    const int machine = machine_running_threads();
    if (machine < 0) return omp_get_max_threads();
    const int mine = std::max(own_running_threads(), 1);  // the caller itself is running
    others = sample == 0 ? machine - mine : std::min(others, machine - mine);
  }
  const int team = std::clamp(cores - std::max(others, 0), 1, team_at_start);
  if (team != omp_get_max_threads()) omp_set_num_threads(team);
  return team;
}

}  // namespace ddpm
