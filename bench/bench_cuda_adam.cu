// The fused Adam(+EMA) step over a flat float32 buffer the size of the DDPM CIFAR-10 UNet
// (35.7M parameters, rounded to 36M), against the device's measured memory bandwidth. One JSON
// line per case on stdout.
//
//   bench_cuda_adam [parameters=36000000] [iterations=50]
//
// The ceiling is a device-to-device cudaMemcpy of 1 GiB in the same run (bytes read + written).
// Adam reads p, g, m, v and writes p, m, v: 28 bytes per parameter; with the fused EMA it also
// reads and writes the shadow: 36 bytes. The buffers (1+ GB) dwarf the L2 cache, so no flush is
// needed between iterations. Times are cudaEvent intervals over `iterations` back-to-back calls
// after a warm-up.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "engine/backend.h"
#include "engine/tensor.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"

namespace {

using ddpm::Device;
using ddpm::DType;
using ddpm::Tensor;

// Milliseconds per call of fn on the engine's stream.
template <class Fn>
double time_ms(int iterations, Fn&& fn) {
  cudaStream_t s = ddpm::cuda::stream();
  for (int i = 0; i < 3; ++i) fn();  // warm-up: caches, clocks, lazy module loading
  cudaEvent_t start, stop;
  DDPM_CUDA_CHECK(cudaEventCreate(&start));
  DDPM_CUDA_CHECK(cudaEventCreate(&stop));
  DDPM_CUDA_CHECK(cudaEventRecord(start, s));
  for (int i = 0; i < iterations; ++i) fn();
  DDPM_CUDA_CHECK(cudaEventRecord(stop, s));
  DDPM_CUDA_CHECK(cudaEventSynchronize(stop));
  float ms = 0;
  DDPM_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  DDPM_CUDA_CHECK(cudaEventDestroy(start));
  DDPM_CUDA_CHECK(cudaEventDestroy(stop));
  return static_cast<double>(ms) / iterations;
}

double gbps(double bytes, double ms) { return bytes / (ms * 1e-3) / 1e9; }

void emit(const std::string& device, const char* bench, long long params, double bytes, double ms, double ceiling) {
  const double rate = gbps(bytes, ms);
  std::printf(
      "{\"bench\": \"%s\", \"device\": \"%s\", \"params\": %lld, \"bytes_per_step\": %.0f, \"ms\": %.4f, "
      "\"gb_per_s\": %.1f, \"fraction_of_copy\": %.3f}\n",
      bench, device.c_str(), params, bytes, ms, rate, rate / ceiling);
}

}  // namespace

int main(int argc, char** argv) {
  if (!ddpm::cuda_available()) {
    std::fprintf(stderr, "bench_cuda_adam: no CUDA device on this machine\n");
    return 1;
  }
  const long long n = argc > 1 ? std::atoll(argv[1]) : 36000000LL;
  const int iterations = argc > 2 ? std::atoi(argv[2]) : 50;
  if (n <= 0 || iterations <= 0) {
    std::fprintf(stderr, "usage: bench_cuda_adam [parameters > 0] [iterations > 0]\n");
    return 2;
  }
  try {
    ddpm::Backend& gpu = ddpm::cuda_backend();
    const std::string device = ddpm::cuda::device_properties().name;

    // The ceiling: copy 1 GiB device to device, counting the read and the write.
    const long long copy_bytes = 1LL << 30;
    double copy_gbps = 0;
    {
      Tensor src = Tensor::zeros({copy_bytes / 4}, DType::F32, Device::CUDA);
      Tensor dst = Tensor::empty({copy_bytes / 4}, DType::F32, Device::CUDA);
      const double ms = time_ms(20, [&] {
        DDPM_CUDA_CHECK(cudaMemcpyAsync(dst.raw(), src.raw(), static_cast<size_t>(copy_bytes),
                                        cudaMemcpyDeviceToDevice, ddpm::cuda::stream()));
      });
      copy_gbps = gbps(2.0 * static_cast<double>(copy_bytes), ms);
      std::printf(
          "{\"bench\": \"memcpy_d2d\", \"device\": \"%s\", \"bytes_per_copy\": %lld, \"ms\": %.4f, \"gb_per_s\": %.1f}\n",
          device.c_str(), copy_bytes, ms, copy_gbps);
    }

    const ddpm::Shape shape{n};
    Tensor params = Tensor::normal(shape, 1, 0, 0.0, 0.05, DType::F32, Device::CUDA);
    Tensor grads = Tensor::normal(shape, 1, 1, 0.0, 1e-3, DType::F32, Device::CUDA);
    Tensor m = Tensor::zeros(shape, DType::F32, Device::CUDA);
    Tensor v = Tensor::zeros(shape, DType::F32, Device::CUDA);
    Tensor ema = params.clone();

    for (bool fused_ema : {true, false}) {
      ddpm::adam_step_args args;
      args.params = params;
      args.grads = grads;
      args.m = m;
      args.v = v;
      if (fused_ema) args.ema = ema;
      args.lr = 2e-4;
      const double ms = time_ms(iterations, [&] {
        ++args.step;
        gpu.adam_step(args);
      });
      emit(device, fused_ema ? "adam_ema_fused" : "adam", n, (fused_ema ? 36.0 : 28.0) * static_cast<double>(n), ms,
           copy_gbps);
    }
    // The stand-alone EMA (reads ema and p, writes ema: 12 bytes per parameter), for comparison:
    // Adam then EMA separately moves 28 + 12 = 40 bytes against the fused 36.
    const double ms = time_ms(iterations, [&] { gpu.ema_update({ema, params, 0.9999}); });
    emit(device, "ema_update", n, 12.0 * static_cast<double>(n), ms, copy_gbps);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cuda_adam: %s\n", e.what());
    return 1;
  }
  return 0;
}
