// relu on CUDA: out = max(x, 0), gradient passed where x > 0; one thread per element.
#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/device_utils.cuh"

namespace ddpm {

namespace {
template <class T>
__global__ void relu_forward_kernel(int64_t n, const T* x, T* out) {
  DDPM_GRID_STRIDE(i, n) {
    const float v = cuda::load_f(x, i);
    cuda::store_f(out, i, v > 0.0f ? v : 0.0f);
  }
}

template <class T>
__global__ void relu_backward_kernel(int64_t n, const T* x, const T* g, T* gx, bool accumulate) {
  DDPM_GRID_STRIDE(i, n) { cuda::put_f(gx, i, cuda::load_f(x, i) > 0.0f ? cuda::load_f(g, i) : 0.0f, accumulate); }
}
}  // namespace

void CudaBackend::relu_forward(const relu_fwd& args) {
  cuda::dispatch_float("relu", args.x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands("relu", args.x.dtype(), args.out);
    const int64_t n = args.x.numel();
    if (n == 0) return;
    relu_forward_kernel<T><<<cuda::launch_1d(n), cuda::kThreads, 0, cuda::stream()>>>(n, cuda::ptr<T>(args.x),
                                                                                      cuda::ptr<T>(args.out));
    DDPM_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::relu_backward(const relu_bwd& args) {
  if (!args.grad_x.wanted()) return;
  cuda::dispatch_float("relu", args.x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands("relu", args.x.dtype(), args.grad_out, args.grad_x.tensor);
    const int64_t n = args.x.numel();
    if (n == 0) return;
    relu_backward_kernel<T><<<cuda::launch_1d(n), cuda::kThreads, 0, cuda::stream()>>>(
        n, cuda::ptr<T>(args.x), cuda::ptr<T>(args.grad_out), cuda::ptr<T>(args.grad_x.tensor),
        args.grad_x.accumulate);
    DDPM_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace ddpm
