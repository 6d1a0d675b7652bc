// Mixed precision's gradient fold: the layers' bfloat16 weight gradients (one flat buffer, see
// engine/nn/parameters.h) added into the float32 master gradients and cleared, in one pass per
// step instead of one cast per layer. Elementwise, so each sum is the CPU's: float32(g_bf16) + g.
#include <cuda_bf16.h>

#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/device_utils.cuh"

namespace ddpm {

namespace {
using cuda::kThreads;
using cuda::launch_1d;

__global__ void accumulate_bf16_kernel(int64_t n, __nv_bfloat16* __restrict__ in, float* __restrict__ out) {
  DDPM_GRID_STRIDE(i, n) {
    out[i] += __bfloat162float(in[i]);
    in[i] = __float2bfloat16_rn(0.0f);
  }
}
}  // namespace

void CudaBackend::accumulate_cast(const accumulate_cast_args& args) {
  const int64_t n = args.in.numel();
  DDPM_CHECK(args.in.defined() && args.out.defined() && args.in.device() == Device::CUDA &&
                 args.out.device() == Device::CUDA && args.in.dtype() == DType::BF16 &&
                 args.out.dtype() == DType::F32 && args.out.numel() == n,
             "CUDA accumulate_cast: adds a bfloat16 cuda buffer into a float32 cuda buffer of the same element count, "
             "got ", args.in.describe(), " into ", args.out.describe());
  if (n == 0) return;
  accumulate_bf16_kernel<<<launch_1d(n), kThreads, 0, cuda::stream()>>>(n, cuda::ptr<__nv_bfloat16>(args.in),
                                                                        cuda::ptr<float>(args.out));
  DDPM_CUDA_CHECK_LAUNCH();
}

}  // namespace ddpm
