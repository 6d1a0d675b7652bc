// Shared pieces of the CUDA kernel benchmarks (bench/bench_cuda_*.cu). Header-only: each benchmark
// is one translation unit built into its own executable (bench/CMakeLists.txt), so the kernel and
// the functions below are defined once per program.
//
// - EventTimer::median_ms(fn, cache): `warmup` untimed calls, then `reps` calls, each timed alone
//   with a pair of CUDA events on the engine's stream; returns the median in ms. Cache::Cold (the
//   default) flushes L2 before each timed call; Cache::Warm leaves in L2 what the previous call
//   left there (back-to-back calls, as a training step sees them and as the PyTorch reference
//   times), running a 20 us busy-wait kernel instead.
// - The L2 flush reads (and never writes) a zeroed buffer of max(4 x L2, 64 MiB): afterwards L2
//   holds only clean lines of that buffer, so the timed call starts cold and pays no write-back of
//   someone else's dirty lines. The flush (or the busy wait) keeps the stream busy while the host
//   enqueues the start event and the call, so host launch latency stays outside the interval.
// - measure_copy_bandwidth(): the memory ceiling, a 1 GiB device-to-device cudaMemcpyAsync,
//   counted as 2 GiB moved (read + write), in GB/s (1e9 bytes/s).
// - measure_gemm_peak(dtype): the compute ceiling, C = A B through cuBLAS at m = n = k = 8192 with
//   float32 accumulation, 2 FLOPs per multiply-add, in TFLOP/s. bfloat16: cublasGemmEx on bfloat16
//   A, B, C (tensor cores); float32: cublasSgemm with CUBLAS_DEFAULT_MATH (FMA, no TF32).
// - JsonLine: one JSON object per line on stdout. Every line starts with "bench", "side":"ddpm",
//   "device":"cuda" and "gpu" (the device name); numbers that are not finite print as null.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/device.h"
#include "engine/dtype.h"
#include "engine/shape.h"
#include "engine/tensor.h"
#include "kernels/cuda/check_libs.h"
#include "kernels/cuda/context.h"

namespace ddpm::bench {

// "f32" / "bf16", the dtype names of the JSON lines.
inline const char* short_dtype(DType dt) {
  switch (dt) {
    case DType::F32: return "f32";
    case DType::BF16: return "bf16";
    case DType::F64: return "f64";
  }
  return "?";
}

inline std::string gpu_name() { return cuda::device_properties().name; }
inline size_t l2_bytes() { return static_cast<size_t>(cuda::device_properties().l2CacheSize); }

// True when a tensor of `bytes` is at least twice the L2 size: neither its reads nor its writes
// can be served from L2, so its traffic is DRAM traffic.
inline bool streaming(double bytes) { return bytes >= 2.0 * static_cast<double>(l2_bytes()); }

inline double gb_per_s(double bytes, double ms) { return bytes / (ms * 1e-3) / 1e9; }
inline double tflop_per_s(double flops, double ms) { return flops / (ms * 1e-3) / 1e12; }

// Philox normals (engine's fill_random) on the GPU: mean + stddev z, rounded to dtype.
inline Tensor random_cuda(const Shape& shape, DType dt, uint64_t stream, double mean = 0.0, double stddev = 1.0) {
  return Tensor::normal(shape, 2024, stream, mean, stddev, dt, Device::CUDA);
}

// False (after a line on stderr) when there is no usable GPU; main() then returns 77 ("skipped").
inline bool require_cuda(const char* program) {
  if (cuda_available()) return true;
  std::fprintf(stderr, "%s: no CUDA device on this machine, skipped\n", program);
  return false;
}

// ---- JSON lines ----
class JsonLine {
 public:
  explicit JsonLine(const char* bench) {
    add("bench", bench);
    add("side", "ddpm");
    add("device", "cuda");
    add("gpu", gpu_name());
  }

  // Strings (const char*, std::string), bool, integers, floating point and Shape (a JSON array).
  template <class V> JsonLine& add(const char* key, const V& value) {
    text_ += text_.empty() ? "{" : ",";
    text_ += quote(key);
    text_ += ':';
    if constexpr (std::is_same_v<V, bool>) {
      text_ += value ? "true" : "false";
    } else if constexpr (std::is_integral_v<V>) {
      text_ += std::to_string(static_cast<long long>(value));
    } else if constexpr (std::is_floating_point_v<V>) {
      text_ += number(static_cast<double>(value));
    } else if constexpr (std::is_same_v<V, Shape>) {
      text_ += '[';
      for (size_t i = 0; i < value.size(); ++i) text_ += (i ? "," : "") + std::to_string(value[i]);
      text_ += ']';
    } else {
      text_ += quote(std::string(value));
    }
    return *this;
  }

  // Writes the line to stdout and flushes (a long run shows progress; a crash keeps what ran).
  void print() const {
    std::printf("%s}\n", text_.c_str());
    std::fflush(stdout);
  }

 private:
  static std::string quote(const std::string& s) {
    std::string out = "\"";
    for (char ch : s) {
      if (ch == '"' || ch == '\\') {
        out += '\\';
        out += ch;
      } else if (static_cast<unsigned char>(ch) < 0x20) {
        out += ' ';
      } else {
        out += ch;
      }
    }
    return out + "\"";
  }
  static std::string number(double v) {
    if (!std::isfinite(v)) return "null";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
  }

  std::string text_;
};

// ---- timing ----
namespace detail {
// Reads n 16-byte words. The store never happens (the buffer holds zeros, `never` is not zero),
// but the compiler cannot know that, so every load stays.
__global__ void l2_flush_kernel(const uint4* __restrict__ words, int64_t n, unsigned never, unsigned* sink) {
  unsigned acc = 0;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const uint4 w = words[i];
    acc ^= w.x ^ w.y ^ w.z ^ w.w;
  }
  if (acc == never) *sink = acc;
}

// Spins for `ns` nanoseconds of the GPU's global timer.
__global__ void busy_wait_kernel(unsigned long long ns) {
  unsigned long long start = 0, now = 0;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
  do {
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
  } while (now - start < ns);
}
}  // namespace detail

// What L2 holds when a timed call starts (see the file comment).
enum class Cache { Cold, Warm };

class EventTimer {
 public:
  explicit EventTimer(int reps = 20, int warmup = 3) : reps_(std::max(reps, 1)), warmup_(std::max(warmup, 0)) {
    const size_t bytes = std::max<size_t>(4 * l2_bytes(), size_t{64} << 20);
    flush_ = Tensor::zeros({static_cast<int64_t>(bytes / 4)}, DType::F32, Device::CUDA);
    sink_ = Tensor::zeros({4}, DType::F32, Device::CUDA);
    DDPM_CUDA_CHECK(cudaEventCreate(&start_));
    DDPM_CUDA_CHECK(cudaEventCreate(&stop_));
  }
  ~EventTimer() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;

  int reps() const { return reps_; }

  // Evicts everything from L2 (see the file comment); enqueued on the engine's stream.
  void flush_l2() const {
    const int64_t words = static_cast<int64_t>(flush_.nbytes() / 16);
    detail::l2_flush_kernel<<<static_cast<unsigned>(cuda::sm_count() * 4), 512, 0, cuda::stream()>>>(
        static_cast<const uint4*>(flush_.raw()), words, 0xdeadbeefu, static_cast<unsigned*>(sink_.raw()));
    DDPM_CUDA_CHECK(cudaGetLastError());
  }

  // Median milliseconds of fn (which enqueues its work on cuda::stream()).
  template <class Fn> double median_ms(Fn&& fn, Cache cache = Cache::Cold) const {
    cudaStream_t s = cuda::stream();
    for (int i = 0; i < warmup_; ++i) fn();
    std::vector<double> ms;
    ms.reserve(static_cast<size_t>(reps_));
    for (int r = 0; r < reps_; ++r) {
      if (cache == Cache::Cold) {
        flush_l2();
      } else {
        detail::busy_wait_kernel<<<1, 32, 0, s>>>(20000ull);
        DDPM_CUDA_CHECK(cudaGetLastError());
      }
      DDPM_CUDA_CHECK(cudaEventRecord(start_, s));
      fn();
      DDPM_CUDA_CHECK(cudaEventRecord(stop_, s));
      DDPM_CUDA_CHECK(cudaEventSynchronize(stop_));
      float elapsed = 0.0f;
      DDPM_CUDA_CHECK(cudaEventElapsedTime(&elapsed, start_, stop_));
      ms.push_back(static_cast<double>(elapsed));
    }
    std::sort(ms.begin(), ms.end());
    const size_t mid = ms.size() / 2;
    return ms.size() % 2 ? ms[mid] : 0.5 * (ms[mid - 1] + ms[mid]);
  }

 private:
  int reps_, warmup_;
  Tensor flush_, sink_;
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

// ---- ceilings measured in the same run ----

// GB/s of a 1 GiB device-to-device copy, counting the bytes read and the bytes written; prints
// a "copy_bandwidth" line.
inline double measure_copy_bandwidth(const EventTimer& timer) {
  const int64_t bytes = int64_t{1} << 30;
  const Tensor src = Tensor::zeros({bytes / 4}, DType::F32, Device::CUDA);
  const Tensor dst = Tensor::empty({bytes / 4}, DType::F32, Device::CUDA);
  const double ms = timer.median_ms([&] {
    DDPM_CUDA_CHECK(cudaMemcpyAsync(dst.raw(), src.raw(), static_cast<size_t>(bytes), cudaMemcpyDeviceToDevice,
                                    cuda::stream()));
  });
  const double moved = 2.0 * static_cast<double>(bytes);
  const double rate = gb_per_s(moved, ms);
  JsonLine("copy_bandwidth")
      .add("what", "cudaMemcpyAsync device to device, 1 GiB, read + write counted")
      .add("bytes", static_cast<long long>(moved))
      .add("ms", ms)
      .add("gb_per_s", rate)
      .add("l2_bytes", static_cast<long long>(l2_bytes()))
      .print();
  return rate;
}

// TFLOP/s of C [n, n] = A [n, n] B [n, n] through cuBLAS, n = 8192, float32 accumulation: bfloat16
// A, B, C on tensor cores, or float32 SGEMM without TF32. Prints a "gemm_peak" line.
inline double measure_gemm_peak(DType dt, const EventTimer& timer) {
  const int n = 8192;
  const Shape square{n, n};
  const Tensor a = random_cuda(square, dt, 1), b = random_cuda(square, dt, 2);
  const Tensor c = Tensor::empty(square, dt, Device::CUDA);
  cublasHandle_t h = cuda::cublas();
  cublasMath_t previous = CUBLAS_DEFAULT_MATH;
  DDPM_CUBLAS_CHECK(cublasGetMathMode(h, &previous));
  DDPM_CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));  // float32: FMA, no TF32
  const float one = 1.0f, zero = 0.0f;
  const double ms = timer.median_ms([&] {
    if (dt == DType::BF16)
      DDPM_CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, a.raw(), CUDA_R_16BF, n, b.raw(),
                                     CUDA_R_16BF, n, &zero, c.raw(), CUDA_R_16BF, n, CUBLAS_COMPUTE_32F,
                                     CUBLAS_GEMM_DEFAULT));
    else
      DDPM_CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, static_cast<const float*>(a.raw()), n,
                                    static_cast<const float*>(b.raw()), n, &zero, static_cast<float*>(c.raw()), n));
  });
  DDPM_CUBLAS_CHECK(cublasSetMathMode(h, previous));
  const double flops = 2.0 * n * static_cast<double>(n) * n;
  const double rate = tflop_per_s(flops, ms);
  JsonLine("gemm_peak")
      .add("what", dt == DType::BF16 ? "cublasGemmEx bf16 in/out, f32 accumulation (tensor cores)"
                                     : "cublasSgemm f32, default math (no TF32)")
      .add("m", n)
      .add("n", n)
      .add("k", n)
      .add("dtype", short_dtype(dt))
      .add("ms", ms)
      .add("tflop_per_s", rate)
      .print();
  return rate;
}

}  // namespace ddpm::bench
