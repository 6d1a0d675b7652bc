// CPU micro-benchmarks: float32 GEMM (OpenBLAS) and conv2d forward/backward at the shapes of a
// small 28x28 UNet for Fashion-MNIST. One JSON line per case on stdout.
//
//   bench_cpu [batch=64] [seconds_per_case=0.3]
//
// FLOPs count 2 per multiply-add. A conv2d forward is N*OH*OW*Cout*KH*KW*Cin MACs; its backward
// (dx and dW) is twice that; the bias terms are ignored. The first line measures a large square
// sgemm as the machine's practical GEMM ceiling (and which OpenBLAS kernels ran it); every case
// reports its fraction of it. "ms" is the median call.
//
// The engine links OpenBLAS's OpenMP build (one thread pool for BLAS and our loops) and
// set_cpu_startup_env() re-executes with OPENBLAS_CORETYPE set when OpenBLAS misdetects the CPU.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <nlohmann/json.hpp>
#include <omp.h>

#include "engine/backend.h"
#include "engine/cpu_startup_env.h"
#include "engine/ops.h"
#include "engine/tensor.h"
#include "kernels/cpu/blas.h"

namespace {

using ddpm::Tensor;
using Clock = std::chrono::steady_clock;

double g_seconds_per_case = 0.3;

// Milliseconds per call of fn: two warm-up calls, then calls until the time budget is spent;
// the median call, because other processes share this machine's cores and inflate the mean.
template <class Fn>
double time_ms(Fn&& fn) {
  fn();
  fn();
  std::vector<double> calls;
  const auto start = Clock::now();
  do {
    const auto t0 = Clock::now();
    fn();
    calls.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  } while (std::chrono::duration<double>(Clock::now() - start).count() < g_seconds_per_case);
  std::nth_element(calls.begin(), calls.begin() + static_cast<std::ptrdiff_t>(calls.size() / 2), calls.end());
  return calls[calls.size() / 2];
}

double gflops(double flops, double ms) { return flops / (ms * 1e-3) / 1e9; }

std::vector<float> random_floats(int64_t n, uint64_t stream) {
  std::vector<float> v(static_cast<size_t>(n));
  Tensor t = Tensor::normal({n}, 7, stream);
  const float* p = t.data<float>();
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = p[i];
  return v;
}

// C [m, n] = A [m, k] B [k, n]; returns ms per call.
double time_gemm(int64_t m, int64_t n, int64_t k) {
  const std::vector<float> a = random_floats(m * k, 1), b = random_floats(k * n, 2);
  std::vector<float> c(static_cast<size_t>(m * n));
  return time_ms([&] { ddpm::cpu::gemm(false, false, m, n, k, 1.0f, a.data(), k, b.data(), n, 0.0f, c.data(), n); });
}

struct ConvCase {
  int64_t h, w, cin, cout, k, stride;
};

}  // namespace

int main(int argc, char** argv) {
  ddpm::set_cpu_startup_env(argv);
  const int64_t batch = argc > 1 ? std::atoll(argv[1]) : 64;
  if (argc > 2) g_seconds_per_case = std::atof(argv[2]);
  if (batch < 1 || g_seconds_per_case <= 0) {
    std::fprintf(stderr, "usage: bench_cpu [batch >= 1] [seconds_per_case > 0]\n");
    return 2;
  }

  // The ceiling: a large square sgemm, where OpenBLAS runs closest to the machine's peak.
  const int64_t peak_size = 2048;
  const double peak_ms = time_gemm(peak_size, peak_size, peak_size);
  const double peak = gflops(2.0 * peak_size * peak_size * peak_size, peak_ms);
  const char* core = openblas_get_corename();
  std::printf("%s\n", nlohmann::json{{"bench", "gemm_peak"},
                                     {"m", peak_size},
                                     {"n", peak_size},
                                     {"k", peak_size},
                                     {"ms", peak_ms},
                                     {"gflops", peak},
                                     {"blas_core", core},
                                     {"blas_threads", openblas_get_num_threads()},
                                     {"omp_threads", omp_get_max_threads()}}
                          .dump()
                          .c_str());
  auto report = [&](nlohmann::json line, double flops, double ms) {
    line["ms"] = ms;
    line["gflops"] = gflops(flops, ms);
    line["of_peak_gemm"] = gflops(flops, ms) / peak;
    std::printf("%s\n", line.dump().c_str());
    std::fflush(stdout);
  };

  // The GEMMs that the 3x3 convolutions below lower to: [N*H*W, 9 Cin] x [9 Cin, Cout].
  const int64_t gemm_cases[][3] = {
      {batch * 28 * 28, 32, 9 * 32}, {batch * 14 * 14, 64, 9 * 64}, {batch * 7 * 7, 128, 9 * 128}};
  for (const auto& s : gemm_cases)
    report({{"bench", "gemm"}, {"m", s[0]}, {"n", s[1]}, {"k", s[2]}}, 2.0 * s[0] * s[1] * s[2],
           time_gemm(s[0], s[1], s[2]));

  // A small UNet: 28x28x32 -> 14x14x64 -> 7x7x128 and back, 3x3 pad-1 convs, stride-2
  // downsamples, 1x1 skip projections; decoder convs see concatenated channels.
  const ConvCase conv_cases[] = {
      {28, 28, 1, 32, 3, 1},    // input conv
      {28, 28, 32, 32, 3, 1},   // res block, level 0
      {28, 28, 32, 32, 3, 2},   // downsample 28 -> 14
      {14, 14, 32, 64, 3, 1},   // res block in, level 1
      {14, 14, 64, 64, 3, 1},   // res block, level 1
      {14, 14, 32, 64, 1, 1},   // 1x1 skip, level 1
      {14, 14, 64, 64, 3, 2},   // downsample 14 -> 7
      {7, 7, 64, 128, 3, 1},    // res block in, level 2
      {7, 7, 128, 128, 3, 1},   // res block, level 2 / middle
      {7, 7, 64, 128, 1, 1},    // 1x1 skip, level 2
      {7, 7, 256, 128, 3, 1},   // decoder, level 2 (concat skip)
      {14, 14, 192, 64, 3, 1},  // decoder, level 1
      {28, 28, 96, 32, 3, 1},   // decoder, level 0
      {28, 28, 96, 32, 1, 1},   // decoder 1x1 skip, level 0
      {28, 28, 32, 1, 3, 1},    // output conv
  };
  ddpm::Backend& cpu = ddpm::cpu_backend();
  for (const ConvCase& c : conv_cases) {
    const int pad = static_cast<int>(c.k / 2), stride = static_cast<int>(c.stride);
    Tensor x = Tensor::normal({batch, c.h, c.w, c.cin}, 7, 3);
    Tensor w = Tensor::normal({c.cout, c.k, c.k, c.cin}, 7, 4, 0.0, 0.1);
    Tensor b = Tensor::normal({c.cout}, 7, 5);
    Tensor out = ddpm::conv2d(x, w, b, stride, pad);  // checks the shapes and sizes the output
    Tensor g = Tensor::normal(out.shape(), 7, 6);
    Tensor dx = Tensor::empty(x.shape()), dw = Tensor::empty(w.shape()), db = Tensor::empty(b.shape());
    const double macs = static_cast<double>(out.numel()) * static_cast<double>(c.k * c.k * c.cin);
    const nlohmann::json shape = {{"n", batch},       {"h", c.h},   {"w", c.w},          {"cin", c.cin},
                                  {"cout", c.cout},   {"k", c.k},   {"stride", c.stride}};

    nlohmann::json fwd = shape;
    fwd["bench"] = "conv2d_fwd";
    report(fwd, 2 * macs, time_ms([&] { cpu.conv2d_forward({x, w, b, out, stride, pad}); }));

    nlohmann::json bwd = shape;
    bwd["bench"] = "conv2d_bwd";
    report(bwd, 4 * macs, time_ms([&] {
             cpu.conv2d_backward({g, x, w, stride, pad, {dx, false}, {dw, false}, {db, false}});
           }));
  }
  return 0;
}
