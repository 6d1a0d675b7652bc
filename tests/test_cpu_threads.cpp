// engine/cpu_threads: with other processes keeping every core busy, the OpenMP team shrinks to one
// thread (a wider team would wait at each barrier for its descheduled threads).
#include <catch2/catch.hpp>
#include <omp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <vector>

#include "engine/cpu_threads.h"

TEST_CASE("the OpenMP team shrinks to one thread while other processes hold every core", "[threads]") {
  const int team_before = omp_get_max_threads();
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  std::vector<pid_t> busy;
  for (int i = 0; i < cores; ++i) {
    const pid_t pid = fork();
    if (pid == 0) {
      volatile unsigned long spin = 0;
      for (;;) spin = spin + 1;  // killed by the parent
    }
    busy.push_back(pid);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let them be scheduled
  const int team = ddpm::fit_threads_to_load();
  for (pid_t pid : busy) kill(pid, SIGKILL);
  for (pid_t pid : busy) waitpid(pid, nullptr, 0);
  REQUIRE(team == 1);
  REQUIRE(omp_get_max_threads() == 1);

  // Idle again: the team may grow back up to what it was (other load on the machine permitting).
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const int after = ddpm::fit_threads_to_load();
  REQUIRE(after >= 1);
  REQUIRE(after <= team_before);
  omp_set_num_threads(team_before);
}
