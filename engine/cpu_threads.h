// OpenMP team size that follows the load of the machine. Every parallel region of the CPU backend
// ends in a barrier, so when another process keeps a core busy, a team as wide as the machine
// waits at each barrier for its descheduled thread: on 2 cores shared with another 2-thread
// process, the quick start's 30 training steps took 189 s with 2 threads and 73 s with 1
// (docs/benchmarks.md). fit_threads_to_load() shrinks the team to the cores that other processes
// leave free, and grows it back when they go.
#pragma once

namespace ddpm {

// Sets the OpenMP team (and so OpenBLAS's, which uses it) to min(the team at start-up, usable
// cores - threads of other processes that are running), at least 1. "Running" is sampled from
// /proc/stat's procs_running less this process's own running threads, three times, keeping the
// smallest, so that a brief blip does not count. It samples at most every 50 ms (a few /proc reads)
// and otherwise only reads the clock, so the CPU backend calls it at the start of its GEMM-heavy ops
// (conv2d and linear forwards), which every model step runs. Returns the team size now in use.
// Without /proc, or with DDPM_FIXED_THREADS set (benchmarks that compare fixed thread counts), it
// changes nothing.
int fit_threads_to_load();

}  // namespace ddpm
