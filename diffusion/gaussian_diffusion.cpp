#include "diffusion/gaussian_diffusion.h"

#include <cmath>

#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/ops.h"

namespace ddpm {

namespace {
const double kLn2 = std::log(2.0);

// One value per sample, shaped [N, 1, ..., 1] to broadcast against a tensor like `like`.
Tensor per_sample(const std::vector<double>& values, const Tensor& like) {
  Shape shape(static_cast<size_t>(like.rank()), 1);
  shape[0] = static_cast<int64_t>(values.size());
  return Tensor::from_vector(values, shape, like.dtype(), like.device());
}

// Tables and step indices stay float32 next to bfloat16 data (step 999 is not a bfloat16).
DType real_dtype(DType data) { return data == DType::F64 ? DType::F64 : DType::F32; }

template <class F>
std::vector<double> gather(const std::vector<int>& t, F table_value) {
  std::vector<double> out;
  for (int s : t) out.push_back(table_value(static_cast<size_t>(s)));
  return out;
}
}  // namespace

GaussianDiffusion::GaussianDiffusion(Schedule schedule, DiffusionConfig config)
    : schedule_(std::move(schedule)), config_(config) {
  const bool learned = config.variance == VarianceType::LearnedRange;
  DDPM_CHECK(!(learned && config.loss == LossType::Mse), "diffusion: a learned_range variance is trained through "
             "the bound; use loss hybrid, kl or rescaled_kl (or a fixed variance with mse)");
  DDPM_CHECK(!(config.loss == LossType::Hybrid && !learned), "diffusion: the hybrid loss trains a learned_range "
             "variance; with a fixed variance use loss mse");
  DDPM_CHECK(config.hybrid_lambda >= 0, "diffusion: hybrid_lambda must be >= 0, got ", config.hybrid_lambda);
}

GaussianDiffusion GaussianDiffusion::respaced(const std::vector<int>& keep) const {
  return GaussianDiffusion(schedule_.respaced(keep), config_);
}

const Tensor& GaussianDiffusion::coefs(DType data_dtype, Device device) const {
  const DType dtype = real_dtype(data_dtype);
  auto key = std::make_pair(static_cast<int>(dtype), static_cast<int>(device));
  auto found = coefs_.find(key);
  if (found == coefs_.end()) found = coefs_.emplace(key, schedule_.coefficient_table(dtype, device)).first;
  return found->second;
}

void GaussianDiffusion::check_steps(const char* what, const std::vector<int>& t, int64_t batch) const {
  DDPM_CHECK(static_cast<int64_t>(t.size()) == batch, what, ": ", t.size(), " timesteps for a batch of ", batch);
  for (int s : t)
    DDPM_CHECK(s >= 0 && s < steps(), what, ": timestep ", s, " is outside [0, ", steps(), ")");
}

Tensor GaussianDiffusion::step_tensor(const std::vector<int>& t, const Tensor& like) const {
  return Tensor::from_vector(std::vector<double>(t.begin(), t.end()), {static_cast<int64_t>(t.size())},
                             real_dtype(like.dtype()), like.device());
}

Tensor GaussianDiffusion::model_timesteps(const std::vector<int>& t, DType dtype, Device device) const {
  std::vector<double> mapped;
  for (int s : t) mapped.push_back(schedule_.timesteps()[static_cast<size_t>(s)]);
  return Tensor::from_vector(mapped, {static_cast<int64_t>(t.size())}, real_dtype(dtype), device);
}

// ---- forward process ----

GaussianDiffusion::Noised GaussianDiffusion::q_sample(const Tensor& x0, const std::vector<int>& t, uint64_t seed,
                                                      uint64_t stream, uint64_t first_example) const {
  DDPM_CHECK(x0.rank() >= 2, "q_sample: expected x0 [N, ...], got ", shape_str(x0.shape()));
  check_steps("q_sample", t, x0.dim(0));
  return q_sample_steps(x0, step_tensor(t, x0), seed, stream, first_example);
}

GaussianDiffusion::Noised GaussianDiffusion::q_sample_steps(const Tensor& x0, const Tensor& steps, uint64_t seed,
                                                            uint64_t stream, uint64_t first_example) const {
  Noised r{Tensor::empty(x0.shape(), x0.dtype(), x0.device()), Tensor::empty(x0.shape(), x0.dtype(), x0.device()), {}};
  if (config_.prediction == Prediction::V) r.v_target = Tensor::empty(x0.shape(), x0.dtype(), x0.device());
  q_sample_args args{x0, steps, coefs(x0.dtype(), x0.device()), r.x_t, r.noise, r.v_target, false, seed, stream,
                     first_example * static_cast<uint64_t>(x0.numel() / x0.dim(0))};
  backend_for(x0.device()).q_sample(args);
  return r;
}

GaussianDiffusion::Noised GaussianDiffusion::q_sample(const Tensor& x0, const std::vector<int>& t,
                                                      const Tensor& noise) const {
  DDPM_CHECK(x0.rank() >= 2, "q_sample: expected x0 [N, ...], got ", shape_str(x0.shape()));
  check_steps("q_sample", t, x0.dim(0));
  check_shape("q_sample", "noise", noise, x0.shape());
  check_same_device_dtype("q_sample", x0, noise);
  Noised r{Tensor::empty(x0.shape(), x0.dtype(), x0.device()), noise, {}};
  if (config_.prediction == Prediction::V) r.v_target = Tensor::empty(x0.shape(), x0.dtype(), x0.device());
  q_sample_args args{x0, step_tensor(t, x0), coefs(x0.dtype(), x0.device()), r.x_t, noise, r.v_target, true, 0, 0};
  backend_for(x0.device()).q_sample(args);
  return r;
}

GaussianMoments GaussianDiffusion::q_mean_variance(const Tensor& x0, const std::vector<int>& t) const {
  check_steps("q_mean_variance", t, x0.dim(0));
  const auto& s = schedule_;
  return {mul(x0, per_sample(gather(t, [&](size_t i) { return s.sqrt_abar()[i]; }), x0)),
          per_sample(gather(t, [&](size_t i) { return std::log(1 - s.abar()[i]); }), x0).reshape({x0.dim(0)})};
}

GaussianMoments GaussianDiffusion::q_posterior(const Tensor& x0, const Tensor& x_t, const std::vector<int>& t) const {
  check_shape("q_posterior", "x_t", x_t, x0.shape());
  check_steps("q_posterior", t, x0.dim(0));
  const auto& s = schedule_;
  Tensor mean = add(mul(x0, per_sample(gather(t, [&](size_t i) { return s.posterior_mean_coef1()[i]; }), x0)),
                    mul(x_t, per_sample(gather(t, [&](size_t i) { return s.posterior_mean_coef2()[i]; }), x0)));
  Tensor log_var = per_sample(gather(t, [&](size_t i) { return s.posterior_log_variance_clipped()[i]; }), x0);
  return {mean, log_var.reshape({x0.dim(0)})};
}

// ---- reverse process ----

std::pair<Tensor, Tensor> GaussianDiffusion::split_output(const Tensor& out, const Tensor& x_t) const {
  const int64_t c = x_t.dim(-1);
  Shape expected = x_t.shape();
  if (config_.variance == VarianceType::LearnedRange) {
    expected.back() = 2 * c;
    check_shape("diffusion model output (learned_range: mean and variance channels)", "output", out, expected);
    return {channel_slice(out, 0, c), channel_slice(out, c, 2 * c)};
  }
  check_shape("diffusion model output", "output", out, expected);
  return {out, Tensor()};
}

GaussianDiffusion::PMeanVariance GaussianDiffusion::p_mean_variance(const Tensor& model_out, const Tensor& x_t,
                                                                    int step, bool clip) const {
  check_steps("p_mean_variance", {step}, 1);
  NoGradGuard no_grad;
  auto [mean_part, var_part] = split_output(model_out, x_t);
  return reverse_moments(mean_part, var_part, x_t, step, clip);
}

GaussianDiffusion::PMeanVariance GaussianDiffusion::reverse_moments(const Tensor& mean_part, const Tensor& var_part,
                                                                    const Tensor& x_t, int step, bool clip) const {
  auto like = [&] { return Tensor::empty(x_t.shape(), x_t.dtype(), x_t.device()); };
  PMeanVariance r{like(), like(), like()};
  reverse_step_args args;
  args.x_t = x_t;
  args.model_out = mean_part;
  args.var_out = var_part;
  args.coefs = coefs(x_t.dtype(), x_t.device());
  args.x_prev = like();
  args.x0_pred = r.pred_x0;
  args.mean = r.mean;
  args.log_var = r.log_variance;
  args.step = step;
  args.prediction = config_.prediction;
  args.variance = config_.variance;
  args.clip = clip;
  backend_for(x_t.device()).reverse_step(args);
  return r;
}

// ---- training ----

GaussianDiffusion::StepTensors GaussianDiffusion::step_tensors(const std::vector<int>& t, DType data_dtype,
                                                               Device device) const {
  check_steps("training_losses", t, static_cast<int64_t>(t.size()));
  return {Tensor::from_vector(std::vector<double>(t.begin(), t.end()), {static_cast<int64_t>(t.size())},
                              real_dtype(data_dtype), device),
          model_timesteps(t, data_dtype, device)};
}

GaussianDiffusion::Losses GaussianDiffusion::training_losses(const ModelFn& model, const Tensor& x0,
                                                             const std::vector<int>& t, uint64_t seed,
                                                             uint64_t stream, uint64_t first_example) const {
  check_steps("training_losses", t, x0.dim(0));
  return training_losses(model, x0, step_tensors(t, x0.dtype(), x0.device()), seed, stream, first_example);
}

GaussianDiffusion::Losses GaussianDiffusion::training_losses(const ModelFn& model, const Tensor& x0,
                                                             const StepTensors& t, uint64_t seed, uint64_t stream,
                                                             uint64_t first_example) const {
  DDPM_CHECK(x0.rank() >= 2, "training_losses: expected x0 [N, ...], got ", shape_str(x0.shape()));
  check_shape("training_losses", "timesteps", t.steps, {x0.dim(0)});
  check_shape("training_losses", "model timesteps", t.model_t, {x0.dim(0)});
  DDPM_CHECK(t.steps.dtype() == real_dtype(x0.dtype()) && t.steps.device() == x0.device(), "training_losses: ",
             "timesteps must be ", dtype_name(real_dtype(x0.dtype())), " on x0's device, got ", t.steps.describe());
  Noised noised = q_sample_steps(x0, t.steps, seed, stream, first_example);
  Tensor out = model(noised.x_t, t.model_t);
  auto [mean_part, var_part] = split_output(out, noised.x_t);
  const Tensor& target = config_.prediction == Prediction::Epsilon ? noised.noise
                         : config_.prediction == Prediction::X0    ? x0
                                                                   : noised.v_target;
  Losses r;
  r.mse = mse(mean_part, target, 1);
  if (config_.loss == LossType::Mse) {
    r.loss = r.mse;
    return r;
  }
  // The bound's term; for hybrid the mean is detached so only the variance learns from it.
  const Tensor bound_mean = config_.loss == LossType::Hybrid ? mean_part.detach() : mean_part;
  r.vb = scale(vlb_term(bound_mean, var_part, x0, noised.x_t, t.steps, coefs(x0.dtype(), x0.device()),
                        config_.prediction, config_.variance, false),
               1.0 / kLn2);
  switch (config_.loss) {
    case LossType::Kl: r.loss = r.vb; break;
    case LossType::RescaledKl: r.loss = scale(r.vb, steps()); break;
    case LossType::Hybrid: r.loss = add(r.mse, scale(r.vb, config_.hybrid_lambda * this->steps())); break;
    case LossType::Mse: break;
  }
  return r;
}

// ---- the bound ----

std::vector<double> GaussianDiffusion::prior_nats(const Tensor& x0) const {
  // KL(N(sqrt(abar) x0, 1 - abar) || N(0, 1)) = 0.5 (-1 - lv + e^lv) + 0.5 abar x0^2, lv = log(1 - abar)
  const double abar = schedule_.abar().back(), lv = std::log1p(-abar);
  const double constant = 0.5 * (-1 - lv + std::exp(lv));
  const std::vector<double> x = x0.to_vector();
  const int64_t n = x0.dim(0), per = x0.numel() / n;
  std::vector<double> out;
  for (int64_t s = 0; s < n; ++s) {
    double squares = 0;
    for (int64_t i = s * per; i < (s + 1) * per; ++i) squares += x[static_cast<size_t>(i)] * x[static_cast<size_t>(i)];
    out.push_back(constant + 0.5 * abar * squares / static_cast<double>(per));
  }
  return out;
}

GaussianDiffusion::Bound GaussianDiffusion::bits_per_dim(const ModelFn& model, const Tensor& x0, uint64_t seed,
                                                         uint64_t stream, bool clip,
                                                         const std::function<void(int, int)>& progress) const {
  NoGradGuard no_grad;
  const int64_t n = x0.dim(0);
  Bound b;
  b.terms_bpd.assign(static_cast<size_t>(steps()), 0.0);
  b.mse.assign(static_cast<size_t>(steps()), 0.0);
  b.total_per_sample_bpd.assign(static_cast<size_t>(n), 0.0);
  const Tensor& table = coefs(x0.dtype(), x0.device());
  for (int t = steps() - 1; t >= 0; --t) {
    const std::vector<int> ts(static_cast<size_t>(n), t);
    Noised noised = q_sample(x0, ts, seed, stream + static_cast<uint64_t>(t));
    auto [mean_part, var_part] = split_output(model(noised.x_t, model_timesteps(ts, x0.dtype(), x0.device())), noised.x_t);
    const std::vector<double> term = vlb_term(mean_part, var_part, x0, noised.x_t, step_tensor(ts, x0), table,
                                              config_.prediction, config_.variance, clip)
                                         .to_vector();
    // Epsilon MSE as a diagnostic, whatever the model predicts: eps_hat = (x_t - sqrt(abar) x0_hat) / sqrt(1 - abar).
    const Tensor x0_hat = reverse_moments(mean_part, var_part, noised.x_t, t, clip).pred_x0;
    const size_t i = static_cast<size_t>(t);
    const Tensor eps_hat = scale(sub(noised.x_t, scale(x0_hat, schedule_.sqrt_abar()[i])), 1 / schedule_.sqrt_one_minus_abar()[i]);
    b.mse[i] = mse(eps_hat, noised.noise).item();
    for (int64_t s = 0; s < n; ++s) {
      const double bits = term[static_cast<size_t>(s)] / kLn2;
      b.terms_bpd[static_cast<size_t>(t)] += bits / static_cast<double>(n);
      b.total_per_sample_bpd[static_cast<size_t>(s)] += bits;
    }
    if (progress) progress(steps() - t, steps());
  }
  const std::vector<double> prior = prior_nats(x0);
  for (int64_t s = 0; s < n; ++s) {
    const double bits = prior[static_cast<size_t>(s)] / kLn2;
    b.prior_bpd += bits / static_cast<double>(n);
    b.total_per_sample_bpd[static_cast<size_t>(s)] += bits;
  }
  b.total_bpd = b.prior_bpd;
  for (double v : b.terms_bpd) b.total_bpd += v;
  return b;
}

// ---- the bound's term as an op ----

Tensor vlb_term(const Tensor& model_out, const Tensor& var_out, const Tensor& x0, const Tensor& x_t, const Tensor& t,
                const Tensor& coefs, Prediction prediction, VarianceType variance, bool clip) {
  check_shape("vlb_term", "model_out", model_out, x0.shape());
  check_shape("vlb_term", "x_t", x_t, x0.shape());
  check_shape("vlb_term", "t", t, {x0.dim(0)});
  check_same_device_dtype("vlb_term", x0, model_out);
  const bool learned = variance == VarianceType::LearnedRange;
  DDPM_CHECK(learned == var_out.defined(), "vlb_term: var_out is ",
             var_out.defined() ? "given" : "missing", " but the variance is ", variance_name(variance));
  if (learned) check_shape("vlb_term", "var_out", var_out, x0.shape());
  Tensor out = Tensor::empty({x0.dim(0)}, x0.dtype(), x0.device());
  vlb_term_fwd args{model_out, var_out, x0, x_t, t, coefs, out, prediction, variance, clip};
  backend_for(x0.device()).vlb_term_forward(args);
  return record(OpKind::vlb_term, out, {model_out, var_out},
                [m = model_out.detach(), v = var_out.defined() ? var_out.detach() : Tensor(), x0 = x0.detach(),
                 x_t = x_t.detach(), t, coefs, prediction, variance, clip](const Tensor& g, std::vector<GradSlot>& s) {
                  backend_for(g.device()).vlb_term_backward({g, m, v, x0, x_t, t, coefs, prediction, variance, clip, s[0], s[1]});
                });
}

}  // namespace ddpm
