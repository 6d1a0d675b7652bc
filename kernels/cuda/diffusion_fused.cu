// The fused diffusion kernels on the GPU: forward noising (q_sample), one reverse step (ancestral
// or DDIM) and the variational-bound term with its backward. The per-element formulas are the ones
// the CPU runs (kernels/diffusion_math.h), computed in float32; data may be float32 or bfloat16,
// coefficient tables and step indices are float32.
#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/graph_capture.h"
#include "kernels/cuda/philox_blocks.cuh"
#include "kernels/diffusion_math.h"

namespace ddpm {

namespace {
using cuda::kThreads;
using cuda::launch_1d;
using cuda::load_f;
using cuda::put_f;
using cuda::store_f;

struct Table {
  const float* data;
  int steps;
  __device__ dm::StepCoefs<float> at(int step) const { return {data, steps, step}; }
};

Table table_of(const Tensor& coefs) {
  DDPM_CHECK(coefs.device() == Device::CUDA && coefs.dtype() == DType::F32 && coefs.rank() == 2 && coefs.dim(0) == kCoefCount,
             "CUDA diffusion kernels: coefficient table must be float32 [", kCoefCount, ", T] on cuda, got ",
             coefs.describe());
  return {cuda::ptr<float>(coefs), static_cast<int>(coefs.dim(1))};
}

void check_steps_tensor(const char* op, const Tensor& t) {
  DDPM_CHECK(t.device() == Device::CUDA && t.dtype() == DType::F32, "CUDA ", op, ": step indices must be float32 on cuda, got ",
             t.describe());
}

template <class T>
const T* optional(const Tensor& t) {
  return t.defined() ? cuda::ptr<T>(t) : nullptr;
}
template <class T>
T* optional_out(const Tensor& t) {
  return t.defined() ? cuda::ptr<T>(t) : nullptr;
}

// x_t = sqrt(abar) x0 + sqrt(1 - abar) eps per element; eps drawn (one thread per Philox block of
// four elements, DrawBlocks) or read (one thread per element); v target optional.
template <class T>
__global__ void q_sample_kernel(const T* x0, const float* t, Table table, int64_t per, int64_t total, T* x_t,
                                T* noise, T* v, bool noise_given, uint64_t seed, uint64_t stream,
                                const uint64_t* stream_offset, uint64_t offset) {
  stream = replay_stream(stream, stream_offset);  // a CUDA graph's replay: engine/replay_counter.h
  auto one = [&](int64_t i, float eps) {
    const auto c = table.at(static_cast<int>(t[i / per]));
    const float x = load_f(x0, i);
    store_f(x_t, i, c[kSqrtAbar] * x + c[kSqrtOneMinusAbar] * eps);
    if (v) store_f(v, i, c[kSqrtAbar] * eps - c[kSqrtOneMinusAbar] * x);
  };
  if (noise_given) {
    DDPM_GRID_STRIDE(i, total) one(i, load_f(noise, i));
    return;
  }
  const cuda::DrawBlocks blocks = cuda::draw_blocks(total, offset);
  DDPM_GRID_STRIDE(b, blocks.count) {
    cuda::draw_block<true>(seed, stream, offset, total, blocks.first + static_cast<uint64_t>(b), [&](int64_t i, float eps) {
      store_f(noise, i, eps);
      one(i, eps);
    });
  }
}

// One thread per Philox block of four elements; x_prev may alias x_t (each thread reads its own
// elements before writing them).
template <class T>
__global__ void reverse_step_kernel(dm::ReverseStep settings, const T* x_t, const T* out, const T* var, Table table,
                                    int64_t total, T* x_prev, T* x0_pred, T* mean, T* log_var, uint64_t seed,
                                    uint64_t stream, const uint64_t* stream_offset) {
  stream = replay_stream(stream, stream_offset);
  const auto c = table.at(settings.step);
  const cuda::DrawBlocks blocks = cuda::draw_blocks(total, 0);
  DDPM_GRID_STRIDE(b, blocks.count) {
    cuda::draw_block<true>(seed, stream, 0, total, blocks.first + static_cast<uint64_t>(b), [&](int64_t i, float z) {
      float x0, m, lv;
      const dm::ReverseOutputs<float> extra{x0_pred ? &x0 : nullptr, mean ? &m : nullptr, log_var ? &lv : nullptr};
      const float next =
          dm::reverse_element(settings, c, load_f(x_t, i), load_f(out, i), var ? load_f(var, i) : 0.0f, z, extra);
      store_f(x_prev, i, next);
      if (x0_pred) store_f(x0_pred, i, x0);
      if (mean) store_f(mean, i, m);
      if (log_var) store_f(log_var, i, lv);
    });
  }
}

struct VlbSettings {
  Prediction prediction;
  VarianceType variance;
  bool clip;
};

// One block per sample: out[n] = mean over the sample's elements, summed in double.
template <class T>
__global__ void vlb_forward_kernel(VlbSettings s, const T* x0, const T* x_t, const T* out, const T* var, const float* t,
                                   Table table, int64_t per, T* result) {
  __shared__ double scratch[32];
  const int64_t n = blockIdx.x;
  const int step = static_cast<int>(t[n]);
  const auto c = table.at(step);
  double total = 0;
  for (int64_t i = n * per + threadIdx.x; i < (n + 1) * per; i += blockDim.x)
    total += dm::vlb_element(s.prediction, s.variance, s.clip, c, step == 0, load_f(x0, i), load_f(x_t, i),
                             load_f(out, i), var ? load_f(var, i) : 0.0f, static_cast<float*>(nullptr),
                             static_cast<float*>(nullptr));
  total = cuda::block_sum_d(total, scratch);
  if (threadIdx.x == 0) store_f(result, n, static_cast<float>(total / static_cast<double>(per)));
}

template <class T>
__global__ void vlb_backward_kernel(VlbSettings s, const T* x0, const T* x_t, const T* out, const T* var, const float* t,
                                    Table table, int64_t per, int64_t total, const T* grad, T* g_out, bool acc_out,
                                    T* g_var, bool acc_var) {
  DDPM_GRID_STRIDE(i, total) {
    const int64_t n = i / per;
    const int step = static_cast<int>(t[n]);
    float d_out, d_var;
    dm::vlb_element(s.prediction, s.variance, s.clip, table.at(step), step == 0, load_f(x0, i), load_f(x_t, i),
                    load_f(out, i), var ? load_f(var, i) : 0.0f, &d_out, &d_var);
    const float weight = load_f(grad, n) / static_cast<float>(per);
    if (g_out) put_f(g_out, i, weight * d_out, acc_out);
    if (g_var) put_f(g_var, i, weight * d_var, acc_var);
  }
}
}  // namespace

void CudaBackend::q_sample(const q_sample_args& args) {
  cuda::dispatch_float("q_sample", args.x0.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands("q_sample", args.x0.dtype(), args.x0, args.x_t, args.noise, args.v_target);
    check_steps_tensor("q_sample", args.t);
    const int64_t total = args.x0.numel(), per = total / std::max<int64_t>(args.x0.dim(0), 1);
    if (total == 0) return;
    const int64_t threads = args.noise_given ? total : cuda::draw_blocks(total, args.offset).count;
    q_sample_kernel<T><<<launch_1d(threads), kThreads, 0, cuda::stream()>>>(
        cuda::ptr<T>(args.x0), cuda::ptr<float>(args.t), table_of(args.coefs), per, total, cuda::ptr<T>(args.x_t),
        cuda::ptr<T>(args.noise), optional_out<T>(args.v_target), args.noise_given, args.seed, args.stream,
        cuda::replay_offset(DrawKind::Noise), args.offset);
    DDPM_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::reverse_step(const reverse_step_args& args) {
  cuda::dispatch_float("reverse_step", args.x_t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands("reverse_step", args.x_t.dtype(), args.x_t, args.model_out, args.var_out, args.x_prev,
                         args.x0_pred, args.mean, args.log_var);
    const int64_t total = args.x_t.numel();
    if (total == 0) return;
    reverse_step_kernel<T><<<launch_1d(cuda::draw_blocks(total, 0).count), kThreads, 0, cuda::stream()>>>(
        dm::reverse_settings(args), cuda::ptr<T>(args.x_t), cuda::ptr<T>(args.model_out), optional<T>(args.var_out),
        table_of(args.coefs), total, cuda::ptr<T>(args.x_prev), optional_out<T>(args.x0_pred),
        optional_out<T>(args.mean), optional_out<T>(args.log_var), args.seed, args.stream,
        cuda::replay_offset(DrawKind::Noise));
    DDPM_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::vlb_term_forward(const vlb_term_fwd& args) {
  cuda::dispatch_float("vlb_term", args.x0.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands("vlb_term", args.x0.dtype(), args.x0, args.x_t, args.model_out, args.var_out, args.out);
    check_steps_tensor("vlb_term", args.t);
    const int64_t n = args.x0.dim(0), per = args.x0.numel() / std::max<int64_t>(n, 1);
    if (n == 0) return;
    vlb_forward_kernel<T><<<static_cast<unsigned>(n), kThreads, 0, cuda::stream()>>>(
        {args.prediction, args.variance, args.clip}, cuda::ptr<T>(args.x0), cuda::ptr<T>(args.x_t),
        cuda::ptr<T>(args.model_out), optional<T>(args.var_out), cuda::ptr<float>(args.t), table_of(args.coefs), per,
        cuda::ptr<T>(args.out));
    DDPM_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::vlb_term_backward(const vlb_term_bwd& args) {
  if (!args.grad_model_out.wanted() && !args.grad_var_out.wanted()) return;
  cuda::dispatch_float("vlb_term", args.x0.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cuda::check_operands("vlb_term", args.x0.dtype(), args.x0, args.x_t, args.model_out, args.var_out, args.grad_out,
                         args.grad_model_out.tensor, args.grad_var_out.tensor);
    check_steps_tensor("vlb_term", args.t);
    const int64_t total = args.x0.numel(), per = total / std::max<int64_t>(args.x0.dim(0), 1);
    if (total == 0) return;
    vlb_backward_kernel<T><<<launch_1d(total), kThreads, 0, cuda::stream()>>>(
        {args.prediction, args.variance, args.clip}, cuda::ptr<T>(args.x0), cuda::ptr<T>(args.x_t),
        cuda::ptr<T>(args.model_out), optional<T>(args.var_out), cuda::ptr<float>(args.t), table_of(args.coefs), per,
        total, cuda::ptr<T>(args.grad_out), optional_out<T>(args.grad_model_out.tensor), args.grad_model_out.accumulate,
        optional_out<T>(args.grad_var_out.tensor), args.grad_var_out.accumulate);
    DDPM_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace ddpm
