// The gradient all-reduce of data-parallel training, alone: Communicator::sum over a float32 buffer
// the size of a model's gradients, on the CPU (MPI_Allreduce) or the GPU (NCCL). Run it under the
// launcher that training uses; rank 0 prints one JSON line.
//
//   mpirun -np N bench_allreduce [elements=35746307] [iterations=20] [device=cpu|cuda]
//
// The default size is the DDPM CIFAR-10 UNet (35,746,307 parameters, 143 MB of float32); the
// quick-start model has 1,112,801. "ms" is the median over iterations, each ended by a wait for
// the device and a 1-element host sum, so that a rank's clock covers the slowest rank. algbw = bytes / time; busbw =
// algbw * 2 (N - 1) / N, the bytes each rank must move in a ring all-reduce per unit time, which
// compares directly with a link's or memory's bandwidth.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/cpu_startup_env.h"
#include "engine/dist/communicator.h"
#include "engine/tensor.h"

int main(int argc, char** argv) {
  ddpm::set_cpu_startup_env(argv);
  const int64_t elements = argc > 1 ? std::atoll(argv[1]) : 35746307;
  const int iterations = argc > 2 ? std::atoi(argv[2]) : 20;
  const std::string device_arg = argc > 3 ? argv[3] : "cpu";
  if (elements < 1 || iterations < 1 || (device_arg != "cpu" && device_arg != "cuda")) {
    std::fprintf(stderr, "usage: bench_allreduce [elements >= 1] [iterations >= 1] [cpu|cuda]\n");
    return 2;
  }
  try {
    ddpm::Communicator& comm = ddpm::world();
    const ddpm::Device device = device_arg == "cuda" ? ddpm::Device::CUDA : ddpm::Device::CPU;
    const ddpm::Tensor grads = ddpm::Tensor::ones({elements}, ddpm::DType::F32, device);
    const ddpm::Tensor last = ddpm::Tensor::zeros({1}, ddpm::DType::F32, device);
    std::vector<double> fence{0};
    auto reduce_once = [&] {
      comm.sum(grads);
      (void)last.item();  // a copy to the host on the engine's stream: waits for NCCL's reduction
      comm.sum(fence);    // and for every rank's
    };
    reduce_once();  // warm-up: connections, NCCL channels, allocator
    std::vector<double> ms;
    for (int i = 0; i < iterations; ++i) {
      const auto start = std::chrono::steady_clock::now();
      reduce_once();
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    }
    std::sort(ms.begin(), ms.end());
    const double median = ms[ms.size() / 2], bytes = 4.0 * static_cast<double>(elements);
    const double algbw = bytes / (median * 1e6), n = comm.size();
    if (comm.is_root())
      std::printf("%s\n", nlohmann::json{{"bench", "allreduce_sum"},
                                         {"side", "ddpm"},
                                         {"device", device_arg},
                                         {"communicator", comm.describe()},
                                         {"ranks", comm.size()},
                                         {"elements", elements},
                                         {"bytes", bytes},
                                         {"ms", median},
                                         {"ms_min", ms.front()},
                                         {"algbw_gb_s", algbw},
                                         {"busbw_gb_s", algbw * 2 * (n - 1) / n}}
                              .dump()
                              .c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_allreduce: %s\n", e.what());
    return 1;
  }
  return 0;
}
