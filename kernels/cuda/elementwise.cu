// add, sub, mul (b broadcast into a, as kernels/cpu/elementwise.cpp), scale, silu: float32 or
// bfloat16 storage, float32 math. The gradient of a broadcast b is a deterministic two-stage sum
// (broadcast.cu).
#include "kernels/cuda/broadcast.cuh"
#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/device_utils.cuh"

namespace ddpm {

namespace {
using cuda::BroadcastAxes;
using cuda::kThreads;
using cuda::launch_1d;
using cuda::load_f;
using cuda::ptr;
using cuda::put_f;
using cuda::store_f;

enum class Binary { Add, Sub, Mul };

template <Binary op> __device__ __forceinline__ float apply(float x, float y) {
  if constexpr (op == Binary::Add) return x + y;
  if constexpr (op == Binary::Sub) return x - y;
  return x * y;
}

// out [a's shape] = a op b[b_index(i)]
template <class T, Binary op>
__global__ void binary_forward_kernel(BroadcastAxes ax, const T* a, const T* b, T* out) {
  DDPM_GRID_STRIDE(i, ax.a_numel) { store_f(out, i, apply<op>(load_f(a, i), load_f(b, ax.b_index(i)))); }
}

// grad_a = g (add, sub) or g * b (mul)
template <class T, Binary op>
__global__ void grad_a_kernel(BroadcastAxes ax, const T* g, const T* b, T* ga, bool accumulate) {
  DDPM_GRID_STRIDE(i, ax.a_numel) {
    float v = load_f(g, i);
    if constexpr (op == Binary::Mul) v *= load_f(b, ax.b_index(i));
    put_f(ga, i, v, accumulate);
  }
}

// grad_b without broadcast (b has a's shape): g * factor, times a for mul.
template <class T>
__global__ void grad_b_same_kernel(int64_t n, const T* g, const T* a, float factor, T* gb, bool accumulate) {
  DDPM_GRID_STRIDE(i, n) {
    float v = load_f(g, i) * factor;
    if (a) v *= load_f(a, i);
    put_f(gb, i, v, accumulate);
  }
}

template <Binary op>
void binary_forward(const char* name, const BinaryFwd& args) {
  cuda::dispatch_float(name, args.a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands(name, args.a.dtype(), args.b, args.out);
    const BroadcastAxes ax = BroadcastAxes::make(name, args.a.shape(), args.b.shape());
    if (ax.a_numel == 0) return;
    binary_forward_kernel<T, op><<<launch_1d(ax.a_numel), kThreads, 0, cuda::stream()>>>(
        ax, ptr<T>(args.a), ptr<T>(args.b), ptr<T>(args.out));
    DDPM_CUDA_CHECK_LAUNCH();
  });
}

template <Binary op>
void binary_backward(const char* name, const BinaryBwd& args) {
  cuda::dispatch_float(name, args.a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands(name, args.a.dtype(), args.grad_out, args.b, args.grad_a.tensor, args.grad_b.tensor);
    const BroadcastAxes ax = BroadcastAxes::make(name, args.a.shape(), args.b.shape());
    cudaStream_t s = cuda::stream();
    if (args.grad_a.wanted() && ax.a_numel > 0) {
      grad_a_kernel<T, op><<<launch_1d(ax.a_numel), kThreads, 0, s>>>(
          ax, ptr<T>(args.grad_out), ptr<T>(args.b), ptr<T>(args.grad_a.tensor), args.grad_a.accumulate);
      DDPM_CUDA_CHECK_LAUNCH();
    }
    if (!args.grad_b.wanted()) return;
    // d(out)/d(b): 1 (add), -1 (sub), a (mul)
    const float factor = op == Binary::Sub ? -1.0f : 1.0f;
    const T* a_values = op == Binary::Mul ? ptr<T>(args.a) : nullptr;
    if (ax.b_numel == ax.a_numel) {
      if (ax.a_numel == 0) return;
      grad_b_same_kernel<T><<<launch_1d(ax.a_numel), kThreads, 0, s>>>(
          ax.a_numel, ptr<T>(args.grad_out), a_values, factor, ptr<T>(args.grad_b.tensor), args.grad_b.accumulate);
      DDPM_CUDA_CHECK_LAUNCH();
      return;
    }
    cuda::reduce_into_b(args.a.dtype(), ax, args.grad_out.raw(), a_values, factor, args.grad_b.tensor.raw(),
                        args.grad_b.accumulate);
  });
}

template <class T>
__global__ void scale_kernel(int64_t n, const T* x, float factor, T* out, bool accumulate) {
  DDPM_GRID_STRIDE(i, n) { put_f(out, i, factor * load_f(x, i), accumulate); }
}

// 1 / (1 + e^-x) with the accurate expf (the backward reuses it, so no fast-math intrinsic).
__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

template <class T>
__global__ void silu_forward_kernel(int64_t n, const T* x, T* out) {
  DDPM_GRID_STRIDE(i, n) {
    const float v = load_f(x, i);
    store_f(out, i, v * sigmoid(v));
  }
}

// d silu / dx = s (1 + x (1 - s)), s = sigmoid(x)
template <class T>
__global__ void silu_backward_kernel(int64_t n, const T* g, const T* x, T* gx, bool accumulate) {
  DDPM_GRID_STRIDE(i, n) {
    const float v = load_f(x, i), s = sigmoid(v);
    put_f(gx, i, load_f(g, i) * s * (1.0f + v * (1.0f - s)), accumulate);
  }
}
}  // namespace

void CudaBackend::add_forward(const add_fwd& args) { binary_forward<Binary::Add>("add", args); }
void CudaBackend::add_backward(const add_bwd& args) { binary_backward<Binary::Add>("add", args); }
void CudaBackend::sub_forward(const sub_fwd& args) { binary_forward<Binary::Sub>("sub", args); }
void CudaBackend::sub_backward(const sub_bwd& args) { binary_backward<Binary::Sub>("sub", args); }
void CudaBackend::mul_forward(const mul_fwd& args) { binary_forward<Binary::Mul>("mul", args); }
void CudaBackend::mul_backward(const mul_bwd& args) { binary_backward<Binary::Mul>("mul", args); }

// out may alias x (clip_grad_norm scales the gradient buffer in place): element i reads then
// writes only element i.
void CudaBackend::scale_forward(const scale_fwd& args) {
  cuda::dispatch_float("scale", args.x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands("scale", args.x.dtype(), args.out);
    const int64_t n = args.x.numel();
    if (n == 0) return;
    scale_kernel<T><<<launch_1d(n), kThreads, 0, cuda::stream()>>>(n, ptr<T>(args.x), static_cast<float>(args.factor),
                                                                  ptr<T>(args.out), false);
    DDPM_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::scale_backward(const scale_bwd& args) {
  if (!args.grad_x.wanted()) return;
  cuda::dispatch_float("scale", args.grad_out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands("scale", args.grad_out.dtype(), args.grad_x.tensor);
    const int64_t n = args.grad_out.numel();
    if (n == 0) return;
    scale_kernel<T><<<launch_1d(n), kThreads, 0, cuda::stream()>>>(
        n, ptr<T>(args.grad_out), static_cast<float>(args.factor), ptr<T>(args.grad_x.tensor), args.grad_x.accumulate);
    DDPM_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::silu_forward(const silu_fwd& args) {
  cuda::dispatch_float("silu", args.x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands("silu", args.x.dtype(), args.out);
    const int64_t n = args.x.numel();
    if (n == 0) return;
    silu_forward_kernel<T><<<launch_1d(n), kThreads, 0, cuda::stream()>>>(n, ptr<T>(args.x), ptr<T>(args.out));
    DDPM_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::silu_backward(const silu_bwd& args) {
  if (!args.grad_x.wanted()) return;
  cuda::dispatch_float("silu", args.x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands("silu", args.x.dtype(), args.grad_out, args.grad_x.tensor);
    const int64_t n = args.x.numel();
    if (n == 0) return;
    silu_backward_kernel<T><<<launch_1d(n), kThreads, 0, cuda::stream()>>>(
        n, ptr<T>(args.grad_out), ptr<T>(args.x), ptr<T>(args.grad_x.tensor), args.grad_x.accumulate);
    DDPM_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace ddpm
