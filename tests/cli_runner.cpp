#include "tests/cli_runner.h"

#include <stb/stb_image_write.h>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <thread>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace ddpm::test {

namespace fs = std::filesystem;

void write_two_class_folder(const std::string& root) {
  for (const char* name : {"bright", "dark"}) {
    fs::create_directories(root + "/" + name);
    for (int k = 0; k < 12; ++k) {
      const uint8_t pixel = static_cast<uint8_t>((name[0] == 'b' ? 200 : 25) + 3 * k);
      const std::string path = root + "/" + name + "/" + std::to_string(k) + ".png";
      if (!stbi_write_png(path.c_str(), 1, 1, 1, &pixel, 1)) throw std::runtime_error("cannot write " + path);
    }
  }
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

int start_program(const std::vector<std::string>& args, const std::string& capture_prefix) {
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);  // its own process group, so a hung program can be killed with its children
    const int out = ::open((capture_prefix + ".out").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = ::open((capture_prefix + ".err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(out, STDOUT_FILENO);
    dup2(err, STDERR_FILENO);
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

int start_ddpm(const std::vector<std::string>& args, const std::string& capture_prefix) {
  std::vector<std::string> argv{DDPM_EXECUTABLE};
  argv.insert(argv.end(), args.begin(), args.end());
  return start_program(argv, capture_prefix);
}

namespace {
Outcome outcome_of(int status, const std::string& capture_prefix) {
  Outcome o;
  o.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  o.out = read_text(capture_prefix + ".out");
  o.err = read_text(capture_prefix + ".err");
  return o;
}
}  // namespace

Outcome finish_ddpm(int pid, const std::string& capture_prefix) {
  int status = 0;
  waitpid(pid, &status, 0);
  return outcome_of(status, capture_prefix);
}

Outcome finish_within(int pid, const std::string& capture_prefix, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(-pid, SIGKILL);
      waitpid(pid, &status, 0);
      Outcome hung = outcome_of(status, capture_prefix);
      hung.status = -1;
      return hung;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return outcome_of(status, capture_prefix);
}

std::vector<nlohmann::json> metrics_of(const std::string& run) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(run + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

Outcome run_ddpm(const std::vector<std::string>& args) {
  TempDir capture;
  return finish_ddpm(start_ddpm(args, capture / "run"), capture / "run");
}

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  path = (fs::temp_directory_path() / ("ddpm_cli_" + std::to_string(getpid()) + "_" + std::to_string(counter++))).string();
  fs::remove_all(path);
  fs::create_directories(path);
}

TempDir::~TempDir() { fs::remove_all(path); }

}  // namespace ddpm::test
