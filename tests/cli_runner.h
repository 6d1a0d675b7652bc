// Runs the ddpm program as a child process for the command-line tests.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ddpm::test {

struct Outcome {
  int status = -1;  // exit status, or 128 + signal
  std::string out, err;
};

// Runs DDPM_EXECUTABLE with `args` and waits for it.
Outcome run_ddpm(const std::vector<std::string>& args);

// Starts it without waiting; returns the pid. finish() waits and collects the outcome.
int start_ddpm(const std::vector<std::string>& args, const std::string& capture_prefix);
Outcome finish_ddpm(int pid, const std::string& capture_prefix);

// Any program: argv[0] is its path. Output goes to capture_prefix + ".out" / ".err".
int start_program(const std::vector<std::string>& argv, const std::string& capture_prefix);
// Waits at most `seconds`; a program still running then is killed (with its process group) and
// the outcome's status is -1.
Outcome finish_within(int pid, const std::string& capture_prefix, double seconds);

// A fresh, empty directory under the system temp folder, removed at scope exit.
struct TempDir {
  TempDir();
  ~TempDir();
  std::string path;
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

std::string read_text(const std::string& path);

// A labelled image folder for conditional runs: ROOT/bright and ROOT/dark, 12 one-pixel gray PNGs
// each, bytes 200..233 (mean pixel +0.70) and 25..58 (mean -0.67), so an MLP learns them in a second.
void write_two_class_folder(const std::string& root);

// The lines of RUN/metrics.jsonl, parsed.
std::vector<nlohmann::json> metrics_of(const std::string& run);

}  // namespace ddpm::test
