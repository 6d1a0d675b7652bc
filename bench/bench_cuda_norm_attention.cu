// GroupNorm with fused SiLU and self-attention on the GPU at the DDPM CIFAR-10 UNet's shapes (base
// 128 channels, channel_mult [1, 2, 2, 2], attention at resolution 16), float32 and bfloat16,
// against ceilings measured in the same run. One JSON line per case on stdout:
//
//   bench_cuda_norm_attention [batch=128] [reps=20]
//
// First lines: the memory ceiling (a 1 GiB device-to-device copy, read + write bytes counted)
// and the compute ceilings (a cuBLAS 8192^3 GEMM with float32 accumulation: SGEMM without TF32
// for float32, tensor cores for bfloat16), see bench/cuda_bench_util.h. Every case reports ms
// (median of `reps` calls, each timed alone with CUDA events after 3 warm-up calls; GroupNorm
// after an L2 flush, attention as said below).
//
// GroupNorm+SiLU (32 groups, out = silu(groupnorm(x))): the UNet's maps at `batch` ([B,32,32,128],
// [B,16,16,256], [B,8,8,256], [B,4,4,256]) plus two streaming sizes at batch 512 ([512,32,32,128],
// [512,16,16,256]). Bytes count the activation tensors, each read or written once: forward reads x
// and writes out (2 tensors); backward (dx, dgamma, dbeta, as training asks) reads x and dy and
// writes dx (3 tensors). Not counted: gamma, beta and the statistics (negligible), and in the
// backward the per-sample channel partial sums (3 C floats per sample, written, then read back by
// the parameter-gradient kernel), which add 8 / (S x dtype size) to the counted bytes for S
// spatial positions: 0.2 to 0.4% at 32x32, 0.8 to 1.6% at 16x16, 12 to 25% at 4x4.
// "of_copy_bandwidth" = (bytes / time) / copy GB/s; "streaming" is true when one activation
// tensor is at least twice the L2 size (so none of it can stay in L2).
//
// Attention (q, k, v, out [B, T, 256]) at T = 256 tokens (16x16, the UNet's attention) and T = 64
// (8x8), 1 head (the CIFAR-10 config, head_dim 256) and 4 heads (head_dim 64). impl "backend":
// what CudaBackend::attention_* runs ("backend_runs": simt for float32; for bfloat16 the
// DDPM_ATTENTION_IMPL choice, tensor_core by default); impl "tensor_core" (bfloat16 only):
// kernels/cuda/attention_tc.h (mma.sync, FlashAttention-2 style); impl "unfused":
// kernels/cuda/attention_unfused.h (cuBLAS batched GEMMs + a softmax kernel, materializing
// [B, T, T] per head). Run once more with DDPM_ATTENTION_IMPL=simt to time the SIMT kernels in
// bfloat16 as "backend". Benches: attention_forward, attention_backward (all three
// gradients, from the saved output) and attention_forward_backward (both, one timed call, what
// bench/pytorch_reference.py times for SDPA). FLOPs are the conventional ones, 2 per
// multiply-add: forward 4 B H T^2 d (Q K^T and P V), backward 10 B H T^2 d (recomputed S, dP,
// dV, dQ, dK), forward + backward 14 B H T^2 d; the softmax is not counted. Attention is timed
// with a warm L2 ("ms": back-to-back calls, the inputs left in L2 by the previous call, as in a
// training step and in the PyTorch reference) and also after an L2 flush ("ms_cold_l2");
// TFLOP/s and "of_gemm_peak" (against the GEMM peak of the dtype) use "ms". The backend and
// tensor_core lines carry "speedup_vs_unfused" = unfused ms / their ms.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <vector>

#include "bench/cuda_bench_util.h"
#include "engine/backend.h"
#include "engine/tensor.h"
#include "kernels/cuda/attention_tc.h"
#include "kernels/cuda/attention_unfused.h"

namespace {

using ddpm::Device;
using ddpm::DType;
using ddpm::Shape;
using ddpm::Tensor;
using ddpm::bench::JsonLine;
namespace bench = ddpm::bench;

void group_norm_cases(ddpm::Backend& gpu, int64_t batch, double copy_gbps, const bench::EventTimer& timer) {
  const std::vector<Shape> maps = {{batch, 32, 32, 128}, {batch, 16, 16, 256}, {batch, 8, 8, 256},
                                   {batch, 4, 4, 256},   {512, 32, 32, 128},   {512, 16, 16, 256}};
  const int groups = 32;
  for (DType dt : {DType::F32, DType::BF16})
    for (const Shape& shape : maps) {
      const int64_t n = shape.front(), c = shape.back();
      const Tensor x = bench::random_cuda(shape, dt, 3, 0.5, 2.0), dy = bench::random_cuda(shape, dt, 4);
      const Tensor gamma = bench::random_cuda({c}, dt, 5, 1.0, 0.2), beta = bench::random_cuda({c}, dt, 6, 0.0, 0.2);
      const Tensor out = Tensor::empty(shape, dt, Device::CUDA), dx = Tensor::empty(shape, dt, Device::CUDA);
      const Tensor mean = Tensor::empty({n, groups}, DType::F32, Device::CUDA);
      const Tensor rstd = Tensor::empty({n, groups}, DType::F32, Device::CUDA);
      const Tensor dgamma = Tensor::empty({c}, dt, Device::CUDA), dbeta = Tensor::empty({c}, dt, Device::CUDA);
      const ddpm::group_norm_fwd fwd{x, gamma, beta, out, mean, rstd, groups, 1e-5, true};
      const ddpm::group_norm_bwd bwd{dy, x, gamma, beta, mean, rstd, groups, true, {dx, false}, {dgamma, false},
                                     {dbeta, false}};
      const double fwd_ms = timer.median_ms([&] { gpu.group_norm_forward(fwd); });
      gpu.group_norm_forward(fwd);  // the backward reads the forward's statistics
      const double bwd_ms = timer.median_ms([&] { gpu.group_norm_backward(bwd); });
      const double tensor_bytes = static_cast<double>(x.nbytes());
      for (int pass = 0; pass < 2; ++pass) {
        const double ms = pass == 0 ? fwd_ms : bwd_ms;
        const double bytes = (pass == 0 ? 2.0 : 3.0) * tensor_bytes;
        const double rate = bench::gb_per_s(bytes, ms);
        JsonLine(pass == 0 ? "group_norm_silu_forward" : "group_norm_silu_backward")
            .add("shape", shape)
            .add("groups", groups)
            .add("dtype", bench::short_dtype(dt))
            .add("tensors_read", pass == 0 ? 1 : 2)
            .add("tensors_written", 1)
            .add("bytes", static_cast<long long>(bytes))
            .add("streaming", bench::streaming(tensor_bytes))
            .add("ms", ms)
            .add("gb_per_s", rate)
            .add("of_copy_bandwidth", rate / copy_gbps)
            .print();
      }
    }
}

void attention_cases(ddpm::Backend& gpu, int64_t batch, const double (&peak)[2], const bench::EventTimer& timer) {
  const int64_t c = 256;
  for (DType dt : {DType::F32, DType::BF16})
    for (int64_t side : {16, 8})
      for (int heads : {1, 4}) {
        const int64_t t = side * side;
        const Shape shape{batch, t, c};
        const Tensor q = bench::random_cuda(shape, dt, 7), k = bench::random_cuda(shape, dt, 8),
                     v = bench::random_cuda(shape, dt, 9), dout = bench::random_cuda(shape, dt, 10);
        const Tensor out = Tensor::empty(shape, dt, Device::CUDA);
        const Tensor dq = Tensor::empty(shape, dt, Device::CUDA), dk = Tensor::empty(shape, dt, Device::CUDA),
                     dv = Tensor::empty(shape, dt, Device::CUDA);
        const ddpm::attention_fwd fwd{q, k, v, out, heads};
        const ddpm::attention_bwd bwd{dout, q, k, v, out, heads, {dq, false}, {dk, false}, {dv, false}};
        gpu.attention_forward(fwd);  // the backwards read `out`: the fused forward's, for both impls

        // [impl: backend, tensor cores, unfused][pass: forward, backward, forward + backward][cache: warm, cold]
        const bool tc = ddpm::cuda::attention_tc_supported(q, heads, {&k, &v, &out, &dout, &dq, &dk, &dv});
        double ms[3][3][2] = {};
        for (int impl = 0; impl < 3; ++impl)
          for (int pass = 0; pass < 3; ++pass)
            for (int cold = 0; cold < 2; ++cold) {
              if (impl == 1 && !tc) continue;
              const bench::Cache cache = cold ? bench::Cache::Cold : bench::Cache::Warm;
              ms[impl][pass][cold] = timer.median_ms(
                  [&] {
                    if (pass != 1) {
                      if (impl == 0)
                        gpu.attention_forward(fwd);
                      else if (impl == 1)
                        ddpm::cuda::attention_tc_forward(fwd);
                      else
                        ddpm::cuda::attention_unfused_forward(fwd);
                    }
                    if (pass != 0) {
                      if (impl == 0)
                        gpu.attention_backward(bwd);
                      else if (impl == 1)
                        ddpm::cuda::attention_tc_backward(bwd);
                      else
                        ddpm::cuda::attention_unfused_backward(bwd);
                    }
                  },
                  cache);
            }
        // What gpu.attention_* ran (DDPM_ATTENTION_IMPL, attention_tc.h).
        const ddpm::cuda::AttentionImpl chosen = ddpm::cuda::attention_impl();
        const char* backend_runs = dt == DType::F32                                      ? "simt"
                                   : chosen == ddpm::cuda::AttentionImpl::Unfused        ? "unfused"
                                   : chosen == ddpm::cuda::AttentionImpl::Tc && tc       ? "tensor_core"
                                                                                         : "simt";
        const char* impl_names[3] = {"backend", "tensor_core", "unfused"};

        const int64_t d = c / heads;
        const double unit = static_cast<double>(batch) * heads * static_cast<double>(t) * t * d;  // B H T^2 d
        const double gemm = peak[dt == DType::F32 ? 0 : 1];
        const char* names[3] = {"attention_forward", "attention_backward", "attention_forward_backward"};
        const double flop_units[3] = {4.0, 10.0, 14.0};
        for (int pass = 0; pass < 3; ++pass)
          for (int impl = 0; impl < 3; ++impl) {
            if (impl == 1 && !tc) continue;
            const double flops = flop_units[pass] * unit;
            const double rate = bench::tflop_per_s(flops, ms[impl][pass][0]);
            JsonLine line(names[pass]);
            line.add("shape", shape)
                .add("batch", batch)
                .add("tokens", t)
                .add("resolution", side)
                .add("channels", c)
                .add("heads", heads)
                .add("head_dim", d)
                .add("dtype", bench::short_dtype(dt))
                .add("impl", impl_names[impl])
                .add("backend_runs", backend_runs)
                .add("flops", flops)
                .add("ms", ms[impl][pass][0])
                .add("ms_cold_l2", ms[impl][pass][1])
                .add("tflop_per_s", rate)
                .add("of_gemm_peak", rate / gemm);
            if (impl != 2) line.add("speedup_vs_unfused", ms[2][pass][0] / ms[impl][pass][0]);
            line.print();
          }
      }
}

}  // namespace

int main(int argc, char** argv) {
  if (!bench::require_cuda("bench_cuda_norm_attention")) return 77;
  const int64_t batch = argc > 1 ? std::atoll(argv[1]) : 128;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 20;
  if (batch <= 0 || reps <= 0) {
    std::fprintf(stderr, "usage: bench_cuda_norm_attention [batch > 0] [reps > 0]\n");
    return 2;
  }
  try {
    ddpm::Backend& gpu = ddpm::cuda_backend();
    const bench::EventTimer timer(reps);
    const double copy_gbps = bench::measure_copy_bandwidth(timer);
    const double peak[2] = {bench::measure_gemm_peak(DType::F32, timer), bench::measure_gemm_peak(DType::BF16, timer)};
    group_norm_cases(gpu, batch, copy_gbps, timer);
    attention_cases(gpu, batch, peak, timer);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cuda_norm_attention: %s\n", e.what());
    return 1;
  }
  return 0;
}
