// conv2d on the GPU at the DDPM CIFAR-10 UNet's shapes (batch 128, NHWC), the project's implicit
// GEMM kernels ("impl":"custom") against cuDNN ("impl":"cudnn"), float32 and bfloat16, forward and
// backward. One JSON line per measurement on stdout:
//
//   bench_cuda_conv2d [reps=20]
//
// First lines: the compute ceilings measured in the same run (bench/cuda_bench_util.h), a cuBLAS
// 8192^3 GEMM with float32 accumulation in bfloat16 (tensor cores) and in float32 (SGEMM, no
// TF32). Every case reports ms (median of `reps` calls, each timed alone with CUDA events after 3
// warm-up calls and an L2 flush), TFLOP/s and "of_gemm_peak", the fraction of the GEMM peak of
// its dtype. FLOPs: 2 per multiply-add; the forward is 2 N OH OW Cout KH KW Cin (the bias add is
// not counted); the backward computes dx and dW, each as many FLOPs as the forward, except for
// the input convolution (3 -> 128), whose dx training never asks for: dW only. The bias gradient
// is not requested. cuDNN's algorithms are chosen by measurement (cudnnFind), its best showing.
// The custom lines also carry "custom_over_cudnn", the ratio of the two times.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "bench/cuda_bench_util.h"
#include "engine/backend.h"
#include "engine/tensor.h"
#include "kernels/cuda/conv2d_impl.h"

namespace {

using namespace ddpm;
using bench::JsonLine;

struct Case {
  const char* name;
  int n, h, w, cin, cout, k, stride, pad;
  bool grad_x;  // the backward computes dx (and always dW)
  int oh() const { return (h + 2 * pad - k) / stride + 1; }
  int ow() const { return (w + 2 * pad - k) / stride + 1; }
  double fwd_flops() const { return 2.0 * n * oh() * ow() * cout * static_cast<double>(k * k * cin); }
  double bwd_flops() const { return (grad_x ? 2.0 : 1.0) * fwd_flops(); }
};

const Case kCases[] = {
    {"res 32x32x128", 128, 32, 32, 128, 128, 3, 1, 1, true},
    {"res 16x16x256", 128, 16, 16, 256, 256, 3, 1, 1, true},
    {"res 8x8x256", 128, 8, 8, 256, 256, 3, 1, 1, true},
    {"res 4x4x256", 128, 4, 4, 256, 256, 3, 1, 1, true},
    {"downsample 32x32x128 s2", 128, 32, 32, 128, 128, 3, 2, 1, true},
    {"skip 1x1 16x16 128->256", 128, 16, 16, 128, 256, 1, 1, 0, true},
    {"input 32x32 3->128", 128, 32, 32, 3, 128, 3, 1, 1, false},
    {"output 32x32 128->3", 128, 32, 32, 128, 3, 3, 1, 1, true},
};

const char* impl_name(cuda::ConvImpl impl) { return impl == cuda::ConvImpl::Custom ? "custom" : "cudnn"; }

void run_case(const Case& c, DType dt, double peak, const bench::EventTimer& timer) {
  Backend& gpu = cuda_backend();
  const double w_scale = 1.0 / std::sqrt(static_cast<double>(c.k * c.k * c.cin));
  const Tensor x = bench::random_cuda({c.n, c.h, c.w, c.cin}, dt, 3);
  const Tensor w = bench::random_cuda({c.cout, c.k, c.k, c.cin}, dt, 4, 0.0, w_scale);
  const Tensor b = bench::random_cuda({c.cout}, dt, 5);
  const Tensor g = bench::random_cuda({c.n, c.oh(), c.ow(), c.cout}, dt, 6);
  const Tensor out = Tensor::empty(g.shape(), dt, Device::CUDA);
  const Tensor dx = Tensor::empty(x.shape(), dt, Device::CUDA), dw = Tensor::empty(w.shape(), dt, Device::CUDA);
  const conv2d_fwd fwd{x, w, b, out, c.stride, c.pad};
  const conv2d_bwd bwd{g, x, w, c.stride, c.pad, {c.grad_x ? dx : Tensor(), false}, {dw, false}, {}};

  const cuda::ConvImpl impls[2] = {cuda::ConvImpl::Custom, cuda::ConvImpl::Cudnn};
  double ms[2][2] = {};  // [impl][forward, backward]
  for (int i = 0; i < 2; ++i) {
    cuda::set_conv2d_impl(impls[i]);
    ms[i][0] = timer.median_ms([&] { gpu.conv2d_forward(fwd); });
    ms[i][1] = timer.median_ms([&] { gpu.conv2d_backward(bwd); });
  }
  cuda::set_conv2d_impl(cuda::ConvImpl::Custom);

  for (int dir = 0; dir < 2; ++dir)
    for (int i = 0; i < 2; ++i) {
      const double flops = dir == 0 ? c.fwd_flops() : c.bwd_flops();
      const double rate = bench::tflop_per_s(flops, ms[i][dir]);
      JsonLine line(dir == 0 ? "conv2d_forward" : "conv2d_backward");
      line.add("case", c.name)
          .add("shape", Shape{c.n, c.h, c.w, c.cin})
          .add("cout", c.cout)
          .add("kernel", c.k)
          .add("stride", c.stride)
          .add("pad", c.pad);
      if (dir == 1) line.add("grads", c.grad_x ? "dx+dw" : "dw");
      line.add("dtype", bench::short_dtype(dt))
          .add("impl", impl_name(impls[i]))
          .add("flops", flops)
          .add("ms", ms[i][dir])
          .add("tflop_per_s", rate)
          .add("of_gemm_peak", rate / peak);
      if (i == 0) line.add("custom_over_cudnn", ms[0][dir] / ms[1][dir]);
      line.print();
    }
}

}  // namespace

int main(int argc, char** argv) {
  if (!bench::require_cuda("bench_cuda_conv2d")) return 77;
  const int reps = argc > 1 ? std::atoi(argv[1]) : 20;
  if (reps <= 0) {
    std::fprintf(stderr, "usage: bench_cuda_conv2d [reps > 0]\n");
    return 2;
  }
  try {
    const bench::EventTimer timer(reps);
    cuda::set_cudnn_algo_search(cuda::CudnnAlgoSearch::Measure);
    const double peak_bf16 = bench::measure_gemm_peak(DType::BF16, timer);
    const double peak_f32 = bench::measure_gemm_peak(DType::F32, timer);
    for (DType dt : {DType::F32, DType::BF16})
      for (const Case& c : kCases) run_case(c, dt, dt == DType::BF16 ? peak_bf16 : peak_f32, timer);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cuda_conv2d: %s\n", e.what());
    return 1;
  }
  return 0;
}
