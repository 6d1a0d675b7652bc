// CUDA conv2d benchmark: forward and backward (dx + dW) at the DDPM CIFAR-10 UNet's shapes
// (batch 128), custom implicit GEMM against cuDNN, float32 and bfloat16. One JSON line per
// measurement on stdout:
//
//   bench_cuda_conv2d [reps=20]
//
// The first lines measure the device's practical peak in the same run: a large cuBLAS GEMM in
// bfloat16 (float32 compute, tensor cores) and in float32 (sgemm, default math: no TF32). Every
// case reports ms (median of `reps` timed calls after two warm-up calls, each timed alone with
// CUDA events after an L2 flush), TFLOP/s (2 FLOPs per multiply-add; the backward counts dx and
// dW, twice the forward) and the fraction of the peak of its dtype, then the ratio custom/cuDNN.
// cuDNN's algorithms are chosen by measurement (cudnnFind), its best showing.
#include <cublas_v2.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/tensor.h"
#include "kernels/cuda/check_libs.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/conv2d_impl.h"

namespace {

using namespace ddpm;

int g_reps = 20;

// Uniform values in [-scale, scale) from a hash of the index: no dependence on other kernels.
template <class T>
__global__ void init_kernel(T* p, int64_t n, uint32_t seed, float scale) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ seed;
    h ^= h >> 16;
    h *= 0x7feb352du;
    h ^= h >> 15;
    h *= 0x846ca68bu;
    h ^= h >> 16;
    const float u = static_cast<float>(h >> 8) * (1.0f / 16777216.0f);
    if constexpr (sizeof(T) == 2)
      p[i] = __float2bfloat16_rn((2.0f * u - 1.0f) * scale);
    else
      p[i] = (2.0f * u - 1.0f) * scale;
  }
}

Tensor random_tensor(const Shape& shape, DType dt, uint32_t seed, float scale = 1.0f) {
  Tensor t = Tensor::empty(shape, dt, Device::CUDA);
  const int64_t n = t.numel();
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((n + 255) / 256, 4096));
  if (dt == DType::BF16)
    init_kernel<<<blocks, 256, 0, cuda::stream()>>>(static_cast<__nv_bfloat16*>(t.raw()), n, seed, scale);
  else
    init_kernel<<<blocks, 256, 0, cuda::stream()>>>(static_cast<float*>(t.raw()), n, seed, scale);
  DDPM_CUDA_CHECK_LAUNCH();
  return t;
}

// Median milliseconds of fn over g_reps calls, each after an L2 flush and timed alone.
template <class Fn>
double time_ms(Fn&& fn) {
  static void* flush = nullptr;
  static size_t flush_bytes = 0;
  if (!flush) {
    flush_bytes = 2 * static_cast<size_t>(cuda::device_properties().l2CacheSize);
    DDPM_CUDA_CHECK(cudaMalloc(&flush, flush_bytes));
  }
  cudaStream_t s = cuda::stream();
  fn();
  fn();
  cudaEvent_t start, stop;
  DDPM_CUDA_CHECK(cudaEventCreate(&start));
  DDPM_CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<float> ms;
  for (int r = 0; r < g_reps; ++r) {
    DDPM_CUDA_CHECK(cudaMemsetAsync(flush, r & 0xff, flush_bytes, s));
    DDPM_CUDA_CHECK(cudaEventRecord(start, s));
    fn();
    DDPM_CUDA_CHECK(cudaEventRecord(stop, s));
    DDPM_CUDA_CHECK(cudaEventSynchronize(stop));
    float t = 0;
    DDPM_CUDA_CHECK(cudaEventElapsedTime(&t, start, stop));
    ms.push_back(t);
  }
  DDPM_CUDA_CHECK(cudaEventDestroy(start));
  DDPM_CUDA_CHECK(cudaEventDestroy(stop));
  std::nth_element(ms.begin(), ms.begin() + static_cast<std::ptrdiff_t>(ms.size() / 2), ms.end());
  return ms[ms.size() / 2];
}

double tflops(double flops, double ms) { return flops / (ms * 1e-3) / 1e12; }

// Practical peak of the dtype: C [n, n] = A B, n = 8192, through cuBLAS.
double measure_peak(DType dt) {
  const int n = 8192;
  const Tensor a = random_tensor({n, n}, dt, 1), b = random_tensor({n, n}, dt, 2);
  const Tensor c = Tensor::empty({n, n}, dt, Device::CUDA);
  cublasHandle_t h = cuda::cublas();
  DDPM_CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));  // float32: no TF32
  const float one = 1.0f, zero = 0.0f;
  const double ms = time_ms([&] {
    if (dt == DType::BF16)
      DDPM_CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, a.raw(), CUDA_R_16BF, n, b.raw(),
                                     CUDA_R_16BF, n, &zero, c.raw(), CUDA_R_16BF, n, CUBLAS_COMPUTE_32F,
                                     CUBLAS_GEMM_DEFAULT));
    else
      DDPM_CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, static_cast<const float*>(a.raw()), n,
                                    static_cast<const float*>(b.raw()), n, &zero, static_cast<float*>(c.raw()), n));
  });
  const double peak = tflops(2.0 * n * n * static_cast<double>(n), ms);
  std::printf("{\"bench\":\"peak\",\"what\":\"cublas gemm %dx%dx%d\",\"dtype\":\"%s\",\"ms\":%.4f,\"tflops\":%.2f}\n", n,
              n, n, dtype_name(dt), ms, peak);
  return peak;
}

struct Case {
  const char* name;
  int n, h, w, cin, cout, k, stride, pad;
  int oh() const { return (h + 2 * pad - k) / stride + 1; }
  int ow() const { return (w + 2 * pad - k) / stride + 1; }
  double fwd_flops() const { return 2.0 * n * oh() * ow() * cout * static_cast<double>(k * k * cin); }
};

const Case kCases[] = {
    {"res 32x32x128", 128, 32, 32, 128, 128, 3, 1, 1},  {"res 16x16x256", 128, 16, 16, 256, 256, 3, 1, 1},
    {"res 8x8x256", 128, 8, 8, 256, 256, 3, 1, 1},      {"res 4x4x256", 128, 4, 4, 256, 256, 3, 1, 1},
    {"downsample 32x32x128 s2", 128, 32, 32, 128, 128, 3, 2, 1},
    {"skip 1x1 16x16 128->256", 128, 16, 16, 128, 256, 1, 1, 0},
    {"input 32x32 3->128", 128, 32, 32, 3, 128, 3, 1, 1},  {"output 32x32 128->3", 128, 32, 32, 128, 3, 3, 1, 1},
};

const char* impl_name(cuda::ConvImpl impl) { return impl == cuda::ConvImpl::Custom ? "custom" : "cudnn"; }

void print_line(const Case& c, DType dt, const char* dir, cuda::ConvImpl impl, double ms, double flops, double peak) {
  const double t = tflops(flops, ms);
  std::printf(
      "{\"bench\":\"conv2d\",\"case\":\"%s\",\"shape\":[%d,%d,%d,%d],\"cout\":%d,\"kernel\":%d,\"stride\":%d,"
      "\"dtype\":\"%s\",\"dir\":\"%s\",\"impl\":\"%s\",\"ms\":%.4f,\"tflops\":%.2f,\"frac_peak\":%.3f}\n",
      c.name, c.n, c.h, c.w, c.cin, c.cout, c.k, c.stride, dtype_name(dt), dir, impl_name(impl), ms, t, t / peak);
}

void run_case(const Case& c, DType dt, double peak) {
  Backend& gpu = cuda_backend();
  const float w_scale = 1.0f / std::sqrt(static_cast<float>(c.k * c.k * c.cin));
  const Tensor x = random_tensor({c.n, c.h, c.w, c.cin}, dt, 3);
  const Tensor w = random_tensor({c.cout, c.k, c.k, c.cin}, dt, 4, w_scale);
  const Tensor b = random_tensor({c.cout}, dt, 5);
  const Tensor g = random_tensor({c.n, c.oh(), c.ow(), c.cout}, dt, 6);
  const Tensor out = Tensor::empty(g.shape(), dt, Device::CUDA);
  const Tensor dx = Tensor::empty(x.shape(), dt, Device::CUDA), dw = Tensor::empty(w.shape(), dt, Device::CUDA);

  double ms[2][2] = {};  // [impl][fwd, bwd]
  for (cuda::ConvImpl impl : {cuda::ConvImpl::Custom, cuda::ConvImpl::Cudnn}) {
    cuda::set_conv2d_impl(impl);
    const int i = impl == cuda::ConvImpl::Custom ? 0 : 1;
    ms[i][0] = time_ms([&] { gpu.conv2d_forward({x, w, b, out, c.stride, c.pad}); });
    ms[i][1] = time_ms([&] {
      gpu.conv2d_backward({g, x, w, c.stride, c.pad, {dx, false}, {dw, false}, {}});
    });
    print_line(c, dt, "fwd", impl, ms[i][0], c.fwd_flops(), peak);
    print_line(c, dt, "bwd", impl, ms[i][1], 2 * c.fwd_flops(), peak);
  }
  for (int d = 0; d < 2; ++d)
    std::printf(
        "{\"bench\":\"conv2d_ratio\",\"case\":\"%s\",\"dtype\":\"%s\",\"dir\":\"%s\",\"custom_over_cudnn\":%.3f}\n",
        c.name, dtype_name(dt), d == 0 ? "fwd" : "bwd", ms[0][d] / ms[1][d]);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) g_reps = std::max(1, std::atoi(argv[1]));
  if (!cuda_available()) {
    std::puts("no CUDA device: bench_cuda_conv2d skipped");
    return 77;
  }
  try {
    cuda::set_cudnn_algo_search(cuda::CudnnAlgoSearch::Measure);
    const double peak_bf16 = measure_peak(DType::BF16), peak_f32 = measure_peak(DType::F32);
    for (DType dt : {DType::F32, DType::BF16})
      for (const Case& c : kCases) run_case(c, dt, dt == DType::BF16 ? peak_bf16 : peak_f32);
    cuda::set_conv2d_impl(cuda::ConvImpl::Custom);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cuda_conv2d: %s\n", e.what());
    return 1;
  }
  return 0;
}
