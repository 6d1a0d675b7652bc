// The optimizer step on the GPU: Adam with the EMA of the weights fused into the same pass
// (adam_step with args.ema set), against Adam followed by a separate ema_update, Adam alone and
// the EMA alone, over flat float32 buffers the size of the DDPM CIFAR-10 UNet (35.7M parameters,
// rounded to 36M). One JSON line per case on stdout.
//
//   bench_cuda_adam [parameters=36000000] [reps=20]
//
// First line: the memory ceiling measured in the same run, a 1 GiB device-to-device copy counting
// the bytes read and written (bench/cuda_bench_util.h). Every case reports ms (median of `reps`
// calls, each timed alone with CUDA events after 3 warm-up calls and an L2 flush), the bytes it
// moves, GB/s and "of_copy_bandwidth" = (bytes / time) / copy GB/s. Bytes per parameter, all
// float32 (the kernels read each buffer once and write each updated buffer once):
//   adam_ema, impl "fused":    reads p, g, m, v, ema; writes p, m, v, ema          36 bytes
//   adam_ema, impl "separate": adam_step (28) then ema_update (12)                  40 bytes
//   adam:                      reads p, g, m, v; writes p, m, v                    28 bytes
//   ema_update:                reads ema, p; writes ema                            12 bytes
// The buffers (about 1.3 GB) are far larger than L2, so every case streams from DRAM.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <exception>

#include "bench/cuda_bench_util.h"
#include "engine/backend.h"
#include "engine/tensor.h"

namespace {

using ddpm::Device;
using ddpm::DType;
using ddpm::Tensor;
using ddpm::bench::JsonLine;

void emit(const char* bench, const char* impl, long long params, double bytes_per_param, double ms,
          double copy_gbps) {
  const double bytes = bytes_per_param * static_cast<double>(params);
  const double rate = ddpm::bench::gb_per_s(bytes, ms);
  JsonLine line(bench);
  if (impl) line.add("impl", impl);
  line.add("params", params)
      .add("dtype", "f32")
      .add("bytes_per_param", bytes_per_param)
      .add("bytes", static_cast<long long>(bytes))
      .add("ms", ms)
      .add("gb_per_s", rate)
      .add("of_copy_bandwidth", rate / copy_gbps)
      .print();
}

}  // namespace

int main(int argc, char** argv) {
  if (!ddpm::bench::require_cuda("bench_cuda_adam")) return 77;
  const long long n = argc > 1 ? std::atoll(argv[1]) : 36000000LL;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 20;
  if (n <= 0 || reps <= 0) {
    std::fprintf(stderr, "usage: bench_cuda_adam [parameters > 0] [reps > 0]\n");
    return 2;
  }
  try {
    ddpm::Backend& gpu = ddpm::cuda_backend();
    const ddpm::bench::EventTimer timer(reps);
    const double copy_gbps = ddpm::bench::measure_copy_bandwidth(timer);

    const ddpm::Shape shape{n};
    const Tensor params = Tensor::normal(shape, 1, 0, 0.0, 0.05, DType::F32, Device::CUDA);
    const Tensor grads = Tensor::normal(shape, 1, 1, 0.0, 1e-3, DType::F32, Device::CUDA);
    const Tensor m = Tensor::zeros(shape, DType::F32, Device::CUDA);
    const Tensor v = Tensor::zeros(shape, DType::F32, Device::CUDA);
    const Tensor ema = params.clone();

    ddpm::adam_step_args adam;
    adam.params = params;
    adam.grads = grads;
    adam.m = m;
    adam.v = v;
    adam.lr = 2e-4;
    ddpm::adam_step_args adam_ema = adam;
    adam_ema.ema = ema;
    const ddpm::ema_update_args ema_only{ema, params, 0.9999};

    const double fused_ms = timer.median_ms([&] {
      ++adam_ema.step;
      gpu.adam_step(adam_ema);
    });
    const double separate_ms = timer.median_ms([&] {
      ++adam.step;
      gpu.adam_step(adam);
      gpu.ema_update(ema_only);
    });
    const double adam_ms = timer.median_ms([&] {
      ++adam.step;
      gpu.adam_step(adam);
    });
    const double ema_ms = timer.median_ms([&] { gpu.ema_update(ema_only); });

    emit("adam_ema", "fused", n, 36.0, fused_ms, copy_gbps);
    emit("adam_ema", "separate", n, 40.0, separate_ms, copy_gbps);
    emit("adam", nullptr, n, 28.0, adam_ms, copy_gbps);
    emit("ema_update", nullptr, n, 12.0, ema_ms, copy_gbps);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cuda_adam: %s\n", e.what());
    return 1;
  }
  return 0;
}
