// conv2d through cuDNN's convolution API (cudnnConvolutionForward / BackwardData /
// BackwardFilter): NHWC tensors, filters in CUDNN_TENSOR_NHWC format (= [Cout, KH, KW, Cin], our
// layout), float32 compute. float32 runs on FMA kernels only (CUDNN_FMA_MATH: no TF32, so results
// match the CPU like the custom kernels do); bfloat16 may use tensor cores.
//
// A plan (descriptors and one algorithm per direction) is built once per shape and dtype and
// cached; the algorithm comes from cuDNN's heuristics or from cudnnFind (conv2d_impl.h). The
// GradSlot rule maps onto beta (1 accumulates; cuDNN does not read the output when beta is 0).
// The bias add and the bias gradient use the custom kernels of conv2d_reduce.cu. A direction cuDNN
// has no algorithm for (or refuses at execution) runs on the custom kernels, alone, so that no
// gradient is ever computed twice. cuDNN pads symmetrically only: conv2d.cu sends asymmetric pads
// to the custom kernels before reaching this file.
#include <array>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "kernels/cuda/check_libs.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/conv2d_impl.h"
#include "kernels/cuda/conv2d_internal.h"
#include "kernels/cuda/device_utils.cuh"

namespace ddpm::cuda::conv {

namespace {

enum Dir { kFwd = 0, kDgrad = 1, kWgrad = 2 };

struct Key {
  std::array<int64_t, 12> dims;  // n, h, w, cin, cout, kh, kw, oh, ow, stride, pad_h, pad_w
  DType dtype;
  bool deterministic;  // only deterministic algorithms (conv2d_impl.h)
  bool operator<(const Key& o) const {
    return std::tie(dims, dtype, deterministic) < std::tie(o.dims, o.dtype, o.deterministic);
  }
};

struct Algo {
  bool searched = false, ok = false;
  int algo = 0;
  size_t workspace = 0;
};

// Descriptors live as long as the process (plans are cached), one convolution descriptor per
// direction because each carries the math type of its algorithm.
struct Plan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv[3] = {};
  bool f32 = true;
  bool deterministic = true;
  Algo algo[3];

  explicit Plan(const Key& k) : deterministic(k.deterministic) {
    const auto& d = k.dims;
    const auto i = [](int64_t v) { return static_cast<int>(v); };
    f32 = k.dtype == DType::F32;
    const cudnnDataType_t type = f32 ? CUDNN_DATA_FLOAT : CUDNN_DATA_BFLOAT16;
    DDPM_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x));
    DDPM_CUDNN_CHECK(cudnnCreateTensorDescriptor(&y));
    DDPM_CUDNN_CHECK(cudnnCreateFilterDescriptor(&w));
    DDPM_CUDNN_CHECK(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NHWC, type, i(d[0]), i(d[3]), i(d[1]), i(d[2])));
    DDPM_CUDNN_CHECK(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NHWC, type, i(d[0]), i(d[4]), i(d[7]), i(d[8])));
    DDPM_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w, type, CUDNN_TENSOR_NHWC, i(d[4]), i(d[3]), i(d[5]), i(d[6])));
    for (auto& c : conv) {
      DDPM_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&c));
      DDPM_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(c, i(d[10]), i(d[11]), i(d[9]), i(d[9]), 1, 1,
                                                       CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
      DDPM_CUDNN_CHECK(cudnnSetConvolutionMathType(c, f32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH));
    }
    int n = 0, c = 0, h = 0, wd = 0;
    DDPM_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(conv[kFwd], x, w, &n, &c, &h, &wd));
    DDPM_CHECK(n == d[0] && c == d[4] && h == d[7] && wd == d[8], "CUDA conv2d (cuDNN): output ", n, "x", h, "x", wd, "x",
               c, " differs from the expected ", d[0], "x", d[7], "x", d[8], "x", d[4]);
  }
};

// Per direction: the perf struct, the search calls and the workspace query.
struct FwdCalls {
  using Perf = cudnnConvolutionFwdAlgoPerf_t;
  static constexpr int kCount = CUDNN_CONVOLUTION_FWD_ALGO_COUNT;
  static cudnnStatus_t heuristic(const Plan& p, int* got, Perf* perf) {
    return cudnnGetConvolutionForwardAlgorithm_v7(cudnn(), p.x, p.w, p.conv[kFwd], p.y, kCount, got, perf);
  }
  static cudnnStatus_t measure(const Plan& p, int* got, Perf* perf) {
    return cudnnFindConvolutionForwardAlgorithm(cudnn(), p.x, p.w, p.conv[kFwd], p.y, kCount, got, perf);
  }
  static cudnnStatus_t workspace(const Plan& p, const Perf& perf, size_t* bytes) {
    return cudnnGetConvolutionForwardWorkspaceSize(cudnn(), p.x, p.w, p.conv[kFwd], p.y, perf.algo, bytes);
  }
};
struct DgradCalls {
  using Perf = cudnnConvolutionBwdDataAlgoPerf_t;
  static constexpr int kCount = CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT;
  static cudnnStatus_t heuristic(const Plan& p, int* got, Perf* perf) {
    return cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnn(), p.w, p.y, p.conv[kDgrad], p.x, kCount, got, perf);
  }
  static cudnnStatus_t measure(const Plan& p, int* got, Perf* perf) {
    return cudnnFindConvolutionBackwardDataAlgorithm(cudnn(), p.w, p.y, p.conv[kDgrad], p.x, kCount, got, perf);
  }
  static cudnnStatus_t workspace(const Plan& p, const Perf& perf, size_t* bytes) {
    return cudnnGetConvolutionBackwardDataWorkspaceSize(cudnn(), p.w, p.y, p.conv[kDgrad], p.x, perf.algo, bytes);
  }
};
struct WgradCalls {
  using Perf = cudnnConvolutionBwdFilterAlgoPerf_t;
  static constexpr int kCount = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT;
  static cudnnStatus_t heuristic(const Plan& p, int* got, Perf* perf) {
    return cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnn(), p.x, p.y, p.conv[kWgrad], p.w, kCount, got, perf);
  }
  static cudnnStatus_t measure(const Plan& p, int* got, Perf* perf) {
    return cudnnFindConvolutionBackwardFilterAlgorithm(cudnn(), p.x, p.y, p.conv[kWgrad], p.w, kCount, got, perf);
  }
  static cudnnStatus_t workspace(const Plan& p, const Perf& perf, size_t* bytes) {
    return cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnn(), p.x, p.y, p.conv[kWgrad], p.w, perf.algo, bytes);
  }
};

// The first candidate (best first, by heuristic rank or measured time) that succeeded, fits the
// math rule (float32: FMA only) and whose workspace query succeeds with that math type set.
template <class Calls>
Algo search(Plan& p, Dir dir) {
  Algo result;
  result.searched = true;
  typename Calls::Perf perf[Calls::kCount];
  int got = 0;
  const cudnnStatus_t status = cudnn_algo_search() == CudnnAlgoSearch::Measure ? Calls::measure(p, &got, perf)
                                                                              : Calls::heuristic(p, &got, perf);
  if (status != CUDNN_STATUS_SUCCESS) return result;
  for (int i = 0; i < got; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS) continue;
    if (p.deterministic && perf[i].determinism == CUDNN_NON_DETERMINISTIC) continue;
    if (p.f32 && perf[i].mathType != CUDNN_FMA_MATH && perf[i].mathType != CUDNN_DEFAULT_MATH) continue;
    const cudnnMathType_t math = p.f32 ? CUDNN_FMA_MATH : perf[i].mathType;
    DDPM_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv[dir], math));
    size_t bytes = 0;
    if (Calls::workspace(p, perf[i], &bytes) != CUDNN_STATUS_SUCCESS) continue;
    result.ok = true;
    result.algo = static_cast<int>(perf[i].algo);
    result.workspace = bytes;
    return result;
  }
  return result;
}

std::mutex g_mutex;
std::map<Key, std::unique_ptr<Plan>> g_plans;

// pad must be symmetric (top == bottom, left == right).
Key key_of(const Tensor& x, const Tensor& weight, const Tensor& out_or_grad, int stride, Pad2d pad) {
  DDPM_CHECK(pad.symmetric(), "CUDA conv2d (cuDNN): asymmetric padding reached the cuDNN path");
  return {{x.dim(0), x.dim(1), x.dim(2), x.dim(3), weight.dim(0), weight.dim(1), weight.dim(2), out_or_grad.dim(1),
           out_or_grad.dim(2), stride, pad.top, pad.left},
          x.dtype(), conv2d_deterministic()};
}

// The plan for this shape with the algorithms of the wanted directions searched (under the lock:
// a search sets math types on the plan's descriptors).
Plan& plan_for(const Key& key, std::initializer_list<Dir> dirs) {
  constexpr int64_t kIntMax = 2147483647;
  for (int64_t d : key.dims) DDPM_CHECK(d <= kIntMax, "CUDA conv2d (cuDNN): extent ", d, " exceeds cuDNN's int dimensions");
  std::lock_guard<std::mutex> lock(g_mutex);
  auto& slot = g_plans[key];
  if (!slot) slot = std::make_unique<Plan>(key);
  Plan& p = *slot;
  for (Dir d : dirs) {
    if (p.algo[d].searched) continue;
    p.algo[d] = d == kFwd ? search<FwdCalls>(p, d) : d == kDgrad ? search<DgradCalls>(p, d) : search<WgradCalls>(p, d);
  }
  return p;
}

// A copy of a direction's algorithm (ran() may clear `ok` from another thread).
Algo algo_of(Plan& p, Dir dir) {
  std::lock_guard<std::mutex> lock(g_mutex);
  return p.algo[dir];
}

void* workspace_for(const Algo& a) { return a.workspace > 0 ? workspace(a.workspace) : nullptr; }

// An execution status: true when the call ran. A "not supported" refusal (cuDNN 9's 3000 range)
// marks the direction unusable for this shape, so that later calls go straight to the custom
// kernels; other failures throw.
bool ran(cudnnStatus_t status, Plan& p, Dir dir, const char* call) {
  if (status == CUDNN_STATUS_SUCCESS) return true;
  if (status >= CUDNN_STATUS_NOT_SUPPORTED && status < CUDNN_STATUS_NOT_SUPPORTED + 1000) {
    std::lock_guard<std::mutex> lock(g_mutex);
    p.algo[dir].ok = false;
    return false;
  }
  detail::fail("cuDNN error in ", call, ": ", cudnnGetErrorString(status));
}

template <class T>
void custom_only(const conv2d_bwd& args, bool dx, bool dw) {
  conv2d_bwd part = args;
  if (!dx) part.grad_x = GradSlot{};
  if (!dw) part.grad_weight = GradSlot{};
  part.grad_bias = GradSlot{};
  custom_backward<T>(part);
}

}  // namespace

bool cudnn_forward(const conv2d_fwd& args) {
  Plan& p = plan_for(key_of(args.x, args.weight, args.out, args.stride, args.pad), {kFwd});
  const Algo a = algo_of(p, kFwd);
  if (!a.ok) return false;
  const float one = 1.0f, zero = 0.0f;
  if (!ran(cudnnConvolutionForward(cudnn(), &one, p.x, args.x.raw(), p.w, args.weight.raw(), p.conv[kFwd],
                                   static_cast<cudnnConvolutionFwdAlgo_t>(a.algo), workspace_for(a), a.workspace,
                                   &zero, p.y, args.out.raw()),
           p, kFwd, "cudnnConvolutionForward"))
    return false;
  if (args.bias.defined()) {
    const int64_t rows = args.out.numel() / args.out.dim(3);
    const int cols = static_cast<int>(args.out.dim(3));
    if (p.f32)
      add_bias_rows<float>(ptr<float>(args.out), ptr<float>(args.bias), rows, cols);
    else
      add_bias_rows<__nv_bfloat16>(ptr<__nv_bfloat16>(args.out), ptr<__nv_bfloat16>(args.bias), rows, cols);
  }
  return true;
}

void cudnn_backward(const conv2d_bwd& args) {
  const bool want_x = args.grad_x.wanted() && args.grad_x.tensor.numel() > 0;
  const bool want_w = args.grad_weight.wanted() && args.grad_weight.tensor.numel() > 0;
  const Key key = key_of(args.x, args.weight, args.grad_out, args.stride, args.pad);
  Plan& p = want_x && want_w ? plan_for(key, {kDgrad, kWgrad})
            : want_x         ? plan_for(key, {kDgrad})
            : want_w         ? plan_for(key, {kWgrad})
                             : plan_for(key, {});
  const float one = 1.0f;
  bool custom_x = false, custom_w = false;  // directions cuDNN has no algorithm for
  if (want_x) {
    const Algo a = algo_of(p, kDgrad);
    const float beta = args.grad_x.accumulate ? 1.0f : 0.0f;
    custom_x = !a.ok || !ran(cudnnConvolutionBackwardData(cudnn(), &one, p.w, args.weight.raw(), p.y,
                                                          args.grad_out.raw(), p.conv[kDgrad],
                                                          static_cast<cudnnConvolutionBwdDataAlgo_t>(a.algo),
                                                          workspace_for(a), a.workspace, &beta, p.x,
                                                          args.grad_x.tensor.raw()),
                             p, kDgrad, "cudnnConvolutionBackwardData");
  }
  if (want_w) {
    const Algo a = algo_of(p, kWgrad);
    const float beta = args.grad_weight.accumulate ? 1.0f : 0.0f;
    custom_w = !a.ok || !ran(cudnnConvolutionBackwardFilter(cudnn(), &one, p.x, args.x.raw(), p.y,
                                                            args.grad_out.raw(), p.conv[kWgrad],
                                                            static_cast<cudnnConvolutionBwdFilterAlgo_t>(a.algo),
                                                            workspace_for(a), a.workspace, &beta, p.w,
                                                            args.grad_weight.tensor.raw()),
                             p, kWgrad, "cudnnConvolutionBackwardFilter");
  }
  if (custom_x || custom_w) {
    if (p.f32)
      custom_only<float>(args, custom_x, custom_w);
    else
      custom_only<__nv_bfloat16>(args, custom_x, custom_w);
  }
  if (args.grad_bias.wanted()) {
    const int64_t rows = args.grad_out.numel() / args.grad_out.dim(3);
    const int cols = static_cast<int>(args.grad_out.dim(3));
    if (p.f32)
      column_sums<float>(ptr<float>(args.grad_out), rows, cols, ptr<float>(args.grad_bias.tensor),
                         args.grad_bias.accumulate);
    else
      column_sums<__nv_bfloat16>(ptr<__nv_bfloat16>(args.grad_out), rows, cols,
                                 ptr<__nv_bfloat16>(args.grad_bias.tensor), args.grad_bias.accumulate);
  }
}

}  // namespace ddpm::cuda::conv
