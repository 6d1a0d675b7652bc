// GroupNorm (+ fused SiLU) and attention on the GPU at the DDPM CIFAR-10 UNet's shapes, float32
// and bfloat16, against limits measured in the same run. One JSON line per case on stdout.
//
//   bench_cuda_norm_attention [batch=128] [iterations=20]
//
// Ceilings:
// - memory: a device-to-device cudaMemcpy of 1 GiB (bytes read + written);
// - GEMM: a cuBLAS 8192^3 GEMM with float32 accumulation, per dtype (float32 inputs: plain SGEMM;
//   bfloat16 inputs: tensor cores), 2 FLOPs per multiply-add.
// GroupNorm moves 2 activation tensors forward (read x, write out) and 3 backward (read x and dy,
// write dx); parameters and statistics are negligible. Its maps fit in the 50 MB L2 at the small
// resolutions, so a 256 MiB memset (not timed) flushes L2 before every timed call.
// Attention counts the conventional FLOPs: forward 4 N H T^2 d (Q K^T and P V), backward
// 10 N H T^2 d (recomputed S, dP, dV, dQ, dK). The fused path is kernels/cuda/attention.cu (SIMT,
// float32 math); the unfused one (kernels/cuda/attention_unfused.h) is cuBLAS batched GEMMs with a
// softmax kernel, materializing [N, T, T] per head. Backward calls want all three gradients.
// Times are cudaEvent intervals after 3 warm-up calls.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/tensor.h"
#include "kernels/cuda/attention_unfused.h"
#include "kernels/cuda/check_libs.h"
#include "kernels/cuda/context.h"

namespace {

using ddpm::Device;
using ddpm::DType;
using ddpm::Shape;
using ddpm::Tensor;

struct Timer {
  cudaEvent_t start = nullptr, stop = nullptr;
  Timer() {
    DDPM_CUDA_CHECK(cudaEventCreate(&start));
    DDPM_CUDA_CHECK(cudaEventCreate(&stop));
  }
  ~Timer() {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
  }
  // Milliseconds of fn on the engine's stream.
  template <class Fn> double ms(Fn&& fn) const {
    cudaStream_t s = ddpm::cuda::stream();
    DDPM_CUDA_CHECK(cudaEventRecord(start, s));
    fn();
    DDPM_CUDA_CHECK(cudaEventRecord(stop, s));
    DDPM_CUDA_CHECK(cudaEventSynchronize(stop));
    float elapsed = 0;
    DDPM_CUDA_CHECK(cudaEventElapsedTime(&elapsed, start, stop));
    return static_cast<double>(elapsed);
  }
};

// Milliseconds per call: `iterations` back-to-back calls after a warm-up.
template <class Fn> double time_ms(int iterations, Fn&& fn) {
  for (int i = 0; i < 3; ++i) fn();
  return Timer().ms([&] {
           for (int i = 0; i < iterations; ++i) fn();
         }) /
         iterations;
}

// Milliseconds per call with a cold L2: each call is timed alone after a flush.
template <class Fn> double time_cold_ms(int iterations, const Tensor& flush, Fn&& fn) {
  for (int i = 0; i < 3; ++i) fn();
  const Timer timer;
  double total = 0;
  for (int i = 0; i < iterations; ++i) {
    DDPM_CUDA_CHECK(cudaMemsetAsync(flush.raw(), i & 0xff, flush.nbytes(), ddpm::cuda::stream()));
    total += timer.ms(fn);
  }
  return total / iterations;
}

Tensor random_cuda(const Shape& shape, DType dtype, uint64_t stream, double mean = 0.0, double stddev = 1.0) {
  return Tensor::normal(shape, 2024, stream, mean, stddev, DType::F32).to(dtype).to(Device::CUDA);
}

const char* short_name(DType dt) { return dt == DType::F32 ? "f32" : "bf16"; }

std::string shape_json(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// cuBLAS GEMM throughput (TFLOP/s) at m = n = k = size, float32 accumulation.
double gemm_peak(DType dt, int size, int iterations) {
  const Shape square{size, size};
  const Tensor a = random_cuda(square, dt, 1), b = random_cuda(square, dt, 2);
  const Tensor c = Tensor::empty(square, dt, Device::CUDA);
  const cudaDataType_t ty = dt == DType::F32 ? CUDA_R_32F : CUDA_R_16BF;
  const float alpha = 1.0f, beta = 0.0f;
  const double ms = time_ms(iterations, [&] {
    DDPM_CUBLAS_CHECK(cublasGemmEx(ddpm::cuda::cublas(), CUBLAS_OP_N, CUBLAS_OP_N, size, size, size, &alpha, a.raw(),
                                   ty, size, b.raw(), ty, size, &beta, c.raw(), ty, size, CUBLAS_COMPUTE_32F,
                                   CUBLAS_GEMM_DEFAULT));
  });
  return 2.0 * size * static_cast<double>(size) * size / (ms * 1e-3) / 1e12;
}

void group_norm_cases(ddpm::Backend& gpu, const std::string& device, int64_t batch, int iterations,
                      double copy_gbps, const Tensor& flush) {
  const std::vector<Shape> maps = {{batch, 32, 32, 128}, {batch, 16, 16, 256}, {batch, 8, 8, 256}, {batch, 4, 4, 512}};
  const int groups = 32;
  for (DType dt : {DType::F32, DType::BF16})
    for (const Shape& shape : maps) {
      const int64_t c = shape.back();
      const Tensor x = random_cuda(shape, dt, 3, 0.5, 2.0), dy = random_cuda(shape, dt, 4);
      const Tensor gamma = random_cuda({c}, dt, 5, 1.0, 0.2), beta = random_cuda({c}, dt, 6, 0.0, 0.2);
      const Tensor out = Tensor::empty(shape, dt, Device::CUDA), dx = Tensor::empty(shape, dt, Device::CUDA);
      const Tensor mean = Tensor::empty({batch, groups}, DType::F32, Device::CUDA);
      const Tensor rstd = Tensor::empty({batch, groups}, DType::F32, Device::CUDA);
      const Tensor dgamma = Tensor::empty({c}, dt, Device::CUDA), dbeta = Tensor::empty({c}, dt, Device::CUDA);
      const double tensor_bytes = static_cast<double>(x.nbytes());
      const double fwd_ms = time_cold_ms(iterations, flush, [&] {
        gpu.group_norm_forward({x, gamma, beta, out, mean, rstd, groups, 1e-5, true});
      });
      const double bwd_ms = time_cold_ms(iterations, flush, [&] {
        gpu.group_norm_backward({dy, x, gamma, beta, mean, rstd, groups, true, {dx, false}, {dgamma, false}, {dbeta, false}});
      });
      for (int pass = 0; pass < 2; ++pass) {
        const double ms = pass == 0 ? fwd_ms : bwd_ms;
        const double bytes = (pass == 0 ? 2.0 : 3.0) * tensor_bytes;
        const double rate = bytes / (ms * 1e-3) / 1e9;
        std::printf(
            "{\"bench\": \"group_norm_silu_%s\", \"device\": \"%s\", \"dtype\": \"%s\", \"shape\": %s, \"groups\": %d, "
            "\"bytes\": %.0f, \"ms\": %.4f, \"gb_per_s\": %.1f, \"fraction_of_copy\": %.3f}\n",
            pass == 0 ? "fwd" : "bwd", device.c_str(), short_name(dt), shape_json(shape).c_str(), groups, bytes, ms,
            rate, rate / copy_gbps);
      }
    }
}

void attention_cases(ddpm::Backend& gpu, const std::string& device, int64_t batch, int iterations,
                     const double (&peak)[2]) {
  const int64_t t = 256, c = 256;
  for (DType dt : {DType::F32, DType::BF16})
    for (int heads : {1, 4}) {
      const Shape shape{batch, t, c};
      const Tensor q = random_cuda(shape, dt, 7), k = random_cuda(shape, dt, 8), v = random_cuda(shape, dt, 9);
      const Tensor dout = random_cuda(shape, dt, 10);
      const Tensor out = Tensor::empty(shape, dt, Device::CUDA);
      const Tensor dq = Tensor::empty(shape, dt, Device::CUDA), dk = Tensor::empty(shape, dt, Device::CUDA),
                   dv = Tensor::empty(shape, dt, Device::CUDA);
      const ddpm::attention_fwd fwd{q, k, v, out, heads};
      const ddpm::attention_bwd bwd{dout, q, k, v, out, heads, {dq, false}, {dk, false}, {dv, false}};
      const double fused_fwd = time_ms(iterations, [&] { gpu.attention_forward(fwd); });
      const double unfused_fwd = time_ms(iterations, [&] { ddpm::cuda::attention_unfused_forward(fwd); });
      gpu.attention_forward(fwd);  // the backward reads the fused forward's output
      const double fused_bwd = time_ms(iterations, [&] { gpu.attention_backward(bwd); });
      const double unfused_bwd = time_ms(iterations, [&] { ddpm::cuda::attention_unfused_backward(bwd); });

      const double d = static_cast<double>(c / heads);
      const double unit = static_cast<double>(batch) * heads * static_cast<double>(t) * t * d;  // N H T^2 d
      const double gemm = peak[dt == DType::F32 ? 0 : 1];
      struct Row {
        const char* pass;
        const char* path;
        double ms, flops, speedup;
      };
      const Row rows[] = {{"fwd", "fused", fused_fwd, 4 * unit, unfused_fwd / fused_fwd},
                          {"fwd", "unfused", unfused_fwd, 4 * unit, 1.0},
                          {"bwd", "fused", fused_bwd, 10 * unit, unfused_bwd / fused_bwd},
                          {"bwd", "unfused", unfused_bwd, 10 * unit, 1.0}};
      for (const Row& r : rows) {
        const double tflops = r.flops / (r.ms * 1e-3) / 1e12;
        std::printf(
            "{\"bench\": \"attention_%s\", \"path\": \"%s\", \"device\": \"%s\", \"dtype\": \"%s\", \"shape\": %s, "
            "\"heads\": %d, \"d\": %d, \"ms\": %.4f, \"tflop_per_s\": %.2f, \"fraction_of_gemm_peak\": %.3f, "
            "\"fused_speedup_over_unfused\": %.3f}\n",
            r.pass, r.path, device.c_str(), short_name(dt), shape_json(shape).c_str(), heads, static_cast<int>(d), r.ms,
            tflops, tflops / gemm, r.speedup);
      }
    }
}

}  // namespace

int main(int argc, char** argv) {
  if (!ddpm::cuda_available()) {
    std::fprintf(stderr, "bench_cuda_norm_attention: no CUDA device on this machine\n");
    return 1;
  }
  const int64_t batch = argc > 1 ? std::atoll(argv[1]) : 128;
  const int iterations = argc > 2 ? std::atoi(argv[2]) : 20;
  if (batch <= 0 || iterations <= 0) {
    std::fprintf(stderr, "usage: bench_cuda_norm_attention [batch > 0] [iterations > 0]\n");
    return 2;
  }
  try {
    ddpm::Backend& gpu = ddpm::cuda_backend();
    const std::string device = ddpm::cuda::device_properties().name;

    // Memory ceiling: copy 1 GiB device to device, counting the read and the write.
    const int64_t copy_bytes = int64_t{1} << 30;
    double copy_gbps = 0;
    {
      const Tensor src = Tensor::zeros({copy_bytes / 4}, DType::F32, Device::CUDA);
      const Tensor dst = Tensor::empty({copy_bytes / 4}, DType::F32, Device::CUDA);
      const double ms = time_ms(iterations, [&] {
        DDPM_CUDA_CHECK(cudaMemcpyAsync(dst.raw(), src.raw(), static_cast<size_t>(copy_bytes),
                                        cudaMemcpyDeviceToDevice, ddpm::cuda::stream()));
      });
      copy_gbps = 2.0 * static_cast<double>(copy_bytes) / (ms * 1e-3) / 1e9;
      std::printf("{\"bench\": \"memcpy_d2d\", \"device\": \"%s\", \"bytes_per_copy\": %lld, \"ms\": %.4f, "
                  "\"gb_per_s\": %.1f}\n",
                  device.c_str(), static_cast<long long>(copy_bytes), ms, copy_gbps);
    }

    // GEMM ceilings, float32 and bfloat16 inputs.
    double peak[2] = {0, 0};
    for (int i = 0; i < 2; ++i) {
      const DType dt = i == 0 ? DType::F32 : DType::BF16;
      peak[i] = gemm_peak(dt, 8192, i == 0 ? 5 : 20);
      std::printf("{\"bench\": \"cublas_gemm_peak\", \"device\": \"%s\", \"dtype\": \"%s\", \"size\": 8192, "
                  "\"tflop_per_s\": %.2f}\n",
                  device.c_str(), short_name(dt), peak[i]);
    }

    {
      const Tensor flush = Tensor::empty({int64_t{64} << 20}, DType::F32, Device::CUDA);  // 256 MiB
      group_norm_cases(gpu, device, batch, iterations, copy_gbps, flush);
    }
    attention_cases(gpu, device, batch, iterations, peak);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cuda_norm_attention: %s\n", e.what());
    return 1;
  }
  return 0;
}
