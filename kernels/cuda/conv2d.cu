// conv2d on CUDA (NHWC; x [N,H,W,Cin], weight [Cout,KH,KW,Cin], bias [Cout], out [N,OH,OW,Cout]):
// checks the operands, then runs the implementation chosen in conv2d_impl.h. The custom path is
// an implicit GEMM (conv2d_gather.cuh, conv2d_driver.cuh) on tensor cores for bfloat16 and on the
// FMA units for float32; the cuDNN path is conv2d_cudnn.cu. The ops layer (engine/ops_nn.cpp)
// has already checked the shapes. cuDNN takes only symmetric pads: asymmetric ones (TF-style
// "SAME" downsampling) run on the custom kernels under either setting.
#include <atomic>

#include "kernels/cuda/conv2d_impl.h"
#include "kernels/cuda/conv2d_internal.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/device_utils.cuh"

namespace ddpm {

namespace cuda {
namespace {
std::atomic<ConvImpl> g_impl{ConvImpl::Custom};
std::atomic<CudnnAlgoSearch> g_search{CudnnAlgoSearch::Heuristic};
std::atomic<int> g_tile{-1};
std::atomic<bool> g_deterministic{true};
}  // namespace

void set_conv2d_impl(ConvImpl impl) { g_impl = impl; }
ConvImpl conv2d_impl() { return g_impl; }
void set_cudnn_algo_search(CudnnAlgoSearch search) { g_search = search; }
CudnnAlgoSearch cudnn_algo_search() { return g_search; }
void set_conv2d_deterministic(bool deterministic) { g_deterministic = deterministic; }
bool conv2d_deterministic() { return g_deterministic; }
void set_conv2d_custom_tile(int config) { g_tile = config >= 0 && config <= 2 ? config : -1; }
int conv2d_custom_tile() { return g_tile; }
}  // namespace cuda

void CudaBackend::conv2d_forward(const conv2d_fwd& args) {
  cuda::dispatch_float("conv2d", args.x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands("conv2d", args.x.dtype(), args.x, args.weight, args.bias, args.out);
    if (args.out.numel() == 0) return;
    if (cuda::conv2d_impl() == cuda::ConvImpl::Cudnn && args.pad.symmetric() && args.x.numel() > 0 &&
        args.weight.numel() > 0 && cuda::conv::cudnn_forward(args))
      return;
    cuda::conv::custom_forward<T>(args);
  });
}

void CudaBackend::conv2d_backward(const conv2d_bwd& args) {
  cuda::dispatch_float("conv2d", args.x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands("conv2d", args.x.dtype(), args.grad_out, args.x, args.weight, args.grad_x.tensor,
                         args.grad_weight.tensor, args.grad_bias.tensor);
    if (!args.grad_x.wanted() && !args.grad_weight.wanted() && !args.grad_bias.wanted()) return;
    if (cuda::conv2d_impl() == cuda::ConvImpl::Cudnn && args.pad.symmetric() && args.grad_out.numel() > 0 &&
        args.x.numel() > 0 && args.weight.numel() > 0)
      cuda::conv::cudnn_backward(args);
    else
      cuda::conv::custom_backward<T>(args);
  });
}

}  // namespace ddpm
