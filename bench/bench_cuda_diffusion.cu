// The fused diffusion kernels on the GPU (kernels/cuda/diffusion_fused.cu): forward noising
// (q_sample: x_t, the noise and optionally the v target in one pass) and one reverse step
// (reverse_step: ancestral or DDIM), float32 and bfloat16, against the memory ceiling measured in
// the same run. One JSON line per case on stdout:
//
//   bench_cuda_diffusion [reps=20]
//
// First line: the memory ceiling, a 1 GiB device-to-device copy counting the bytes read and
// written (bench/cuda_bench_util.h). Every case reports ms (median of `reps` calls, each timed
// alone with CUDA events after 3 warm-up calls and an L2 flush), the bytes it moves, GB/s and
// "of_copy_bandwidth" = (bytes / time) / copy GB/s. Sizes: CIFAR-10 batches of 128 and 256
// ([N, 32, 32, 3]: 1.5 and 3 MiB per float32 tensor) and [21846, 32, 32, 3], 67.1M elements (256
// MiB per float32 tensor), clearly streaming. "streaming" is true when one tensor is at least twice
// the L2 size; the CIFAR batches are not: their reads are cold after the flush, but their writes
// can still sit in L2 when the stop event fires and a few microseconds of launch and tail weigh,
// so their fractions say how long the step takes, not how well it streams.
//
// Bytes count the [N, ...] tensors of the dtype, each read or written exactly once per element
// (the kernels are one grid-stride pass with scalar accesses), elements x dtype size x (tensors
// read + tensors written). The Philox noise is generated in registers, never read from memory: it
// counts only where the kernel stores it. Not counted: the step indices t [N] (float32) and the
// few coefficient-table entries each distinct step reads (from the [11, 1000] float32 table),
// together under 10 KB: below 0.5% of the bytes even at batch 128.
//   q_sample, noise "philox", no v:   reads x0;        writes x_t, noise         (1 + 2 tensors)
//   q_sample, noise "philox", v:      reads x0;        writes x_t, noise, v      (1 + 3)
//   q_sample, noise "given", no v:    reads x0, noise; writes x_t                (2 + 1)
//   q_sample, noise "given", v:       reads x0, noise; writes x_t, v             (2 + 2)
// The training loss runs the first (epsilon prediction) or the second (v prediction).
//   reverse_step "ancestral" fixed_large:    reads x_t, model_out; writes x_prev            (2 + 1)
//   reverse_step "ancestral" learned_range:  reads x_t, model_out, var_out; writes x_prev   (3 + 1)
//   reverse_step "ddim" (eta 0):             reads x_t, model_out; writes x_prev            (2 + 1)
//   reverse_step "ancestral", all outputs:   reads x_t, model_out; writes x_prev, x0_pred,
//                                            mean, log_var (p_mean_variance)               (2 + 4)
// All with epsilon prediction; the first is what configs/cifar10_ddpm.json samples with.
// The sampling steps run in place (x_prev is x_t, as the sampler does); the p_mean_variance case
// writes a separate x_prev, as GaussianDiffusion::reverse_moments does. All at step 500 of a
// linear schedule with T = 1000, clipping on; ancestral steps add noise (z from Philox) there.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <vector>

#include "bench/cuda_bench_util.h"
#include "engine/backend.h"
#include "engine/tensor.h"

namespace {

using ddpm::Device;
using ddpm::DType;
using ddpm::Shape;
using ddpm::Tensor;
using ddpm::bench::JsonLine;
namespace bench = ddpm::bench;

constexpr int kSteps = 1000;

// The [kCoefCount, T] table of a linear schedule (betas 1e-4 .. 0.02), rows as engine/op_args.h's
// DiffusionCoef. The same formulas as diffusion/schedule.cpp (the benchmarks link only the engine);
// the values only need to be realistic, the kernels' work does not depend on them.
Tensor coefficient_table() {
  const size_t n = kSteps;
  std::vector<double> beta(n), abar(n), abar_prev(n), post_var(n);
  double prod = 1.0;
  for (size_t t = 0; t < n; ++t) {
    beta[t] = 1e-4 + (0.02 - 1e-4) * static_cast<double>(t) / static_cast<double>(n - 1);
    abar_prev[t] = prod;
    prod *= 1.0 - beta[t];
    abar[t] = prod;
    post_var[t] = beta[t] * (1.0 - abar_prev[t]) / (1.0 - abar[t]);
  }
  std::vector<double> table(ddpm::kCoefCount * n);
  for (size_t t = 0; t < n; ++t) {
    auto set = [&](ddpm::DiffusionCoef row, double value) { table[row * n + t] = value; };
    set(ddpm::kSqrtAbar, std::sqrt(abar[t]));
    set(ddpm::kSqrtOneMinusAbar, std::sqrt(1.0 - abar[t]));
    set(ddpm::kSqrtRecipAbar, 1.0 / std::sqrt(abar[t]));
    set(ddpm::kSqrtRecipm1Abar, std::sqrt(1.0 / abar[t] - 1.0));
    set(ddpm::kPosteriorCoef1, beta[t] * std::sqrt(abar_prev[t]) / (1.0 - abar[t]));
    set(ddpm::kPosteriorCoef2, (1.0 - abar_prev[t]) * std::sqrt(1.0 - beta[t]) / (1.0 - abar[t]));
    set(ddpm::kPosteriorLogVar, std::log(post_var[t == 0 ? 1 : t]));
    set(ddpm::kLargeLogVar, std::log(t == 0 ? post_var[1] : beta[t]));
    set(ddpm::kLogBeta, std::log(beta[t]));
    set(ddpm::kAbar, abar[t]);
    set(ddpm::kAbarPrev, abar_prev[t]);
  }
  return Tensor::from_vector(table, {ddpm::kCoefCount, static_cast<int64_t>(n)}, DType::F32, Device::CUDA);
}

// Step indices spread over the chain (as reals, what q_sample reads), one per sample.
Tensor step_indices(int64_t n) {
  std::vector<double> t(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) t[static_cast<size_t>(i)] = static_cast<double>((i * 7919) % kSteps);
  return Tensor::from_vector(t, {n}, DType::F32, Device::CUDA);
}

struct Size {
  const char* name;
  Shape shape;
};

// Completes a line with the byte count of `read` + `written` tensors of the size and prints it.
void emit(JsonLine& line, const Size& size, DType dt, int read, int written, double ms, double copy_gbps) {
  const double tensor_bytes = static_cast<double>(ddpm::numel(size.shape)) * static_cast<double>(ddpm::dtype_size(dt));
  const double bytes = tensor_bytes * (read + written);
  const double rate = bench::gb_per_s(bytes, ms);
  line.add("tensors_read", read)
      .add("tensors_written", written)
      .add("bytes", static_cast<long long>(bytes))
      .add("streaming", bench::streaming(tensor_bytes))
      .add("ms", ms)
      .add("gb_per_s", rate)
      .add("of_copy_bandwidth", rate / copy_gbps)
      .print();
}

JsonLine start_line(const char* bench_name, const Size& size, DType dt) {
  JsonLine line(bench_name);
  line.add("case", size.name)
      .add("shape", size.shape)
      .add("elements", ddpm::numel(size.shape))
      .add("dtype", bench::short_dtype(dt));
  return line;
}

void q_sample_cases(ddpm::Backend& gpu, const Size& size, DType dt, const Tensor& coefs, double copy_gbps,
                    const bench::EventTimer& timer) {
  const Tensor x0 = bench::random_cuda(size.shape, dt, 11);
  const Tensor given = bench::random_cuda(size.shape, dt, 12);
  const Tensor x_t = Tensor::empty(size.shape, dt, Device::CUDA), noise = Tensor::empty(size.shape, dt, Device::CUDA);
  const Tensor v = Tensor::empty(size.shape, dt, Device::CUDA);
  const Tensor t = step_indices(size.shape.front());
  for (bool noise_given : {false, true})
    for (bool with_v : {false, true}) {
      ddpm::q_sample_args args;
      args.x0 = x0;
      args.t = t;
      args.coefs = coefs;
      args.x_t = x_t;
      args.noise = noise_given ? given : noise;
      if (with_v) args.v_target = v;
      args.noise_given = noise_given;
      args.seed = 1234;
      const double ms = timer.median_ms([&] {
        ++args.stream;  // fresh noise every call, as training draws
        gpu.q_sample(args);
      });
      JsonLine line = start_line("q_sample", size, dt);
      line.add("noise", noise_given ? "given" : "philox").add("v_target", with_v);
      emit(line, size, dt, noise_given ? 2 : 1, 1 + (noise_given ? 0 : 1) + (with_v ? 1 : 0), ms, copy_gbps);
    }
}

void reverse_step_cases(ddpm::Backend& gpu, const Size& size, DType dt, const Tensor& coefs, double copy_gbps,
                        const bench::EventTimer& timer) {
  using Mode = ddpm::reverse_step_args::Mode;
  const Tensor x = bench::random_cuda(size.shape, dt, 21);
  const Tensor model_out = bench::random_cuda(size.shape, dt, 22);
  const Tensor var_out = bench::random_cuda(size.shape, dt, 23, 0.0, 0.5);
  const Tensor x_prev = Tensor::empty(size.shape, dt, Device::CUDA), x0_pred = Tensor::empty(size.shape, dt, Device::CUDA);
  const Tensor mean = Tensor::empty(size.shape, dt, Device::CUDA), log_var = Tensor::empty(size.shape, dt, Device::CUDA);

  struct Variant {
    const char* mode;
    const char* variance;  // DDIM ignores it
    bool learned, extra_outputs;
  };
  const Variant variants[] = {{"ancestral", "fixed_large", false, false},
                              {"ancestral", "learned_range", true, false},
                              {"ddim", "fixed_large", false, false},
                              {"ancestral", "fixed_large", false, true}};
  for (const Variant& variant : variants) {
    const bool ddim = variant.mode[0] == 'd';
    ddpm::reverse_step_args args;
    args.x_t = x;
    args.model_out = model_out;
    args.coefs = coefs;
    args.step = kSteps / 2;
    args.mode = ddim ? Mode::Ddim : Mode::Ancestral;
    args.prediction = ddpm::Prediction::Epsilon;
    args.variance = variant.learned ? ddpm::VarianceType::LearnedRange : ddpm::VarianceType::FixedLarge;
    args.clip = true;
    args.eta = 0.0;
    args.seed = 99;
    if (variant.learned) args.var_out = var_out;
    if (variant.extra_outputs) {
      args.x_prev = x_prev;
      args.x0_pred = x0_pred;
      args.mean = mean;
      args.log_var = log_var;
    } else {
      args.x_prev = x;  // in place, as the sampler runs it
    }
    const double ms = timer.median_ms([&] {
      ++args.stream;
      gpu.reverse_step(args);
    });
    JsonLine line = start_line("reverse_step", size, dt);
    line.add("mode", variant.mode)
        .add("prediction", "epsilon")
        .add("variance", variant.variance)
        .add("outputs", variant.extra_outputs ? "x_prev+x0_pred+mean+log_var" : "x_prev")
        .add("in_place", !variant.extra_outputs);
    emit(line, size, dt, variant.learned ? 3 : 2, variant.extra_outputs ? 4 : 1, ms, copy_gbps);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (!bench::require_cuda("bench_cuda_diffusion")) return 77;
  const int reps = argc > 1 ? std::atoi(argv[1]) : 20;
  if (reps <= 0) {
    std::fprintf(stderr, "usage: bench_cuda_diffusion [reps > 0]\n");
    return 2;
  }
  try {
    ddpm::Backend& gpu = ddpm::cuda_backend();
    const bench::EventTimer timer(reps);
    const double copy_gbps = bench::measure_copy_bandwidth(timer);
    const Tensor coefs = coefficient_table();
    const Size sizes[] = {{"cifar10 batch 128", {128, 32, 32, 3}},
                          {"cifar10 batch 256", {256, 32, 32, 3}},
                          {"67.1M elements", {21846, 32, 32, 3}}};
    for (DType dt : {DType::F32, DType::BF16})
      for (const Size& size : sizes) {
        q_sample_cases(gpu, size, dt, coefs, copy_gbps, timer);
        reverse_step_cases(gpu, size, dt, coefs, copy_gbps, timer);
      }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cuda_diffusion: %s\n", e.what());
    return 1;
  }
  return 0;
}
