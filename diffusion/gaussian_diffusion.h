// The DDPM forward process, posterior, reverse-process parameterization, training losses and the
// variational bound (docs/math.md). The diffusion code never sees the network: it calls a ModelFn, so
// analytic "oracle" models can stand in for a trained one.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "diffusion/schedule.h"
#include "diffusion/types.h"
#include "engine/op_args.h"

namespace ddpm {

// model(x_t [N, ..., C], t [N]) -> [N, ..., C] (the mean part: epsilon, x0 or v), or [N, ..., 2C]
// with the learned-range variance output in the last C channels. t holds the step index the model
// is trained on (the original index even in a respaced chain), as reals.
using ModelFn = std::function<Tensor(const Tensor& x_t, const Tensor& t)>;

struct DiffusionConfig {
  Prediction prediction = Prediction::Epsilon;
  VarianceType variance = VarianceType::FixedSmall;
  LossType loss = LossType::Mse;
  double hybrid_lambda = 0.001;  // hybrid = L_simple + lambda * T * L_t (bits), Nichol and Dhariwal
};

struct GaussianMoments {
  Tensor mean, log_variance;  // log_variance broadcasts: [N, ...] or one value per sample
};

class GaussianDiffusion {
 public:
  GaussianDiffusion(Schedule schedule, DiffusionConfig config);

  const Schedule& schedule() const { return schedule_; }
  const DiffusionConfig& config() const { return config_; }
  int steps() const { return schedule_.steps(); }
  // The same process over a subset of steps (respaced sampling or evaluation).
  GaussianDiffusion respaced(const std::vector<int>& keep) const;
  // The coefficient table for the fused kernels next to data of `data_dtype`, built once per
  // (dtype, device): float64 for float64 data, float32 otherwise (bfloat16 data included).
  const Tensor& coefs(DType data_dtype, Device device) const;
  // t [N] as reals on `device` (float32, or float64 for float64 data): the model's step index for
  // each table index in `steps`.
  Tensor model_timesteps(const std::vector<int>& steps, DType dtype, Device device) const;

  // ---- forward process ----
  struct Noised {
    Tensor x_t, noise, v_target;  // v_target only for v prediction
  };
  // x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps in one fused pass, eps from Philox (seed, stream).
  // x0 may be a shard of a larger batch whose row 0 is row `first_example` of the whole: it then
  // draws exactly the noise those rows draw in the whole batch (data-parallel training).
  Noised q_sample(const Tensor& x0, const std::vector<int>& t, uint64_t seed, uint64_t stream,
                  uint64_t first_example = 0) const;
  Noised q_sample(const Tensor& x0, const std::vector<int>& t, const Tensor& noise) const;
  // q(x_t | x_0): mean sqrt(abar_t) x0, log variance log(1 - abar_t) (one value per sample [N]).
  GaussianMoments q_mean_variance(const Tensor& x0, const std::vector<int>& t) const;
  // q(x_{t-1} | x_t, x_0): mean mu_tilde, log variance log beta_tilde clipped ([N]).
  GaussianMoments q_posterior(const Tensor& x0, const Tensor& x_t, const std::vector<int>& t) const;

  // ---- reverse process ----
  struct PMeanVariance {
    Tensor mean, log_variance, pred_x0;  // all [N, ..., C]
  };
  // p(x_{t-1} | x_t) at table step `step` for every sample, from the raw model output.
  PMeanVariance p_mean_variance(const Tensor& model_out, const Tensor& x_t, int step, bool clip) const;

  // ---- training ----
  struct Losses {
    Tensor loss;  // [N], differentiable: what to minimize (per sample, before t weighting)
    Tensor mse;   // [N], L_simple: mean over dims of the squared error of the mean output
    Tensor vb;    // [N], L_t in bits/dim (undefined for the mse loss with fixed variance)
  };
  // Noise as q_sample draws it (first_example places a shard in its whole batch).
  Losses training_losses(const ModelFn& model, const Tensor& x0, const std::vector<int>& t, uint64_t seed,
                         uint64_t stream, uint64_t first_example = 0) const;
  // A batch's timesteps as tensors on the data's device: `steps` the table indices as reals (the
  // real dtype of the data), `model_t` the model's timestep values. A captured training step
  // uploads them before its replay (tools/train_step_graph.h); same numbers as the vector form.
  struct StepTensors {
    Tensor steps, model_t;  // [N] each
  };
  StepTensors step_tensors(const std::vector<int>& t, DType data_dtype, Device device) const;  // checks the range
  Losses training_losses(const ModelFn& model, const Tensor& x0, const StepTensors& t, uint64_t seed,
                         uint64_t stream, uint64_t first_example = 0) const;

  // ---- the bound ----
  struct Bound {
    std::vector<double> terms_bpd;       // [T]: L_0 (decoder) at index 0, L_{t-1}... per step, batch mean
    std::vector<double> mse;             // [T]: epsilon MSE per step, batch mean (a diagnostic)
    double prior_bpd = 0;                // L_T, batch mean
    double total_bpd = 0;                // prior + sum of terms
    std::vector<double> total_per_sample_bpd;  // [N]
  };
  // The full bound in bits/dim: every step's term from x_t = q_sample(x0, t) with noise from
  // Philox (seed, stream + t), the model called without gradients. progress(done, total).
  Bound bits_per_dim(const ModelFn& model, const Tensor& x0, uint64_t seed, uint64_t stream, bool clip = true,
                     const std::function<void(int, int)>& progress = {}) const;
  // L_T per sample in nats/dim (closed form from x0; no model).
  std::vector<double> prior_nats(const Tensor& x0) const;

  // The model output split into its mean part and (learned range) variance part; checks shapes.
  std::pair<Tensor, Tensor> split_output(const Tensor& out, const Tensor& x_t) const;

 private:
  PMeanVariance reverse_moments(const Tensor& mean_part, const Tensor& var_part, const Tensor& x_t, int step,
                                bool clip) const;
  Tensor step_tensor(const std::vector<int>& t, const Tensor& like) const;  // table indices as reals
  // q_sample's draw with the table indices already a tensor (steps [N], the data's real dtype).
  Noised q_sample_steps(const Tensor& x0, const Tensor& steps, uint64_t seed, uint64_t stream,
                        uint64_t first_example) const;
  void check_steps(const char* what, const std::vector<int>& t, int64_t batch) const;

  Schedule schedule_;
  DiffusionConfig config_;
  mutable std::map<std::pair<int, int>, Tensor> coefs_;  // (dtype, device) -> table
};

// The bound's term as a differentiable op (nats per dim, [N]): see vlb_term_fwd in op_args.h.
Tensor vlb_term(const Tensor& model_out, const Tensor& var_out, const Tensor& x0, const Tensor& x_t,
                const Tensor& t, const Tensor& coefs, Prediction prediction, VarianceType variance, bool clip);

}  // namespace ddpm
