#include "diffusion/solvers.h"

#include <algorithm>
#include <cmath>

#include "engine/autograd.h"
#include "engine/backend.h"

namespace ddpm {

const char* solver_name(Solver s) {
  switch (s) {
    case Solver::DpmPP2M: return "dpm++2m";
    case Solver::DpmPP3M: return "dpm++3m";
    case Solver::Heun: return "heun";
    case Solver::EulerAncestral: return "euler_a";
  }
  return "?";
}

void validate(const SolverConfig& c) {
  DDPM_CHECK(c.s_churn >= 0, "heun: s_churn must be >= 0 (0 is the deterministic sampler), got ", c.s_churn);
  DDPM_CHECK(c.s_tmin >= 0 && c.s_tmin <= c.s_tmax, "heun: need 0 <= s_tmin <= s_tmax, got s_tmin ", c.s_tmin,
             ", s_tmax ", c.s_tmax);
  DDPM_CHECK(c.s_noise >= 0, "solver: s_noise must be >= 0, got ", c.s_noise);
  DDPM_CHECK(c.eta >= 0 && c.eta <= 1, "euler_a: eta must be in [0, 1] (0 deterministic, 1 full ancestral noise), got ",
             c.eta);
}

int solver_evaluations(const SolverConfig& config, const NoiseLevels& levels) {
  return config.method == Solver::Heun ? 2 * levels.count() - 1 : levels.count();
}

namespace {
// The step's coefficients (solver_step_args): x_next = c_x x + c_d0 d0 + c_d1 d1 + c_d2 d2 + c_z z.
struct Coefs {
  double c_x = 0, c_d0 = 0, c_d1 = 0, c_d2 = 0, c_z = 0;
  Coefs scaled(double f) const { return {f * c_x, f * c_d0, f * c_d1, f * c_d2, f * c_z}; }
};

// phi_1 = e^-h - 1, h phi_2 = h + phi_1 and -h^2 phi_3 = h^2/2 - h - phi_1: the integrals
// int_0^h e^-(h-u) u^k / k! du (k = 0, 1, 2) up to sign, by series where they would cancel.
struct Phi {
  double phi1, h_phi2, h2_phi3;
};
Phi phis(double h) {
  Phi p;
  p.phi1 = std::expm1(-h);
  if (h < 1e-2) {
    const double h2 = h * h, h3 = h2 * h;
    p.h_phi2 = h2 / 2 - h3 / 6 + h3 * h / 24 - h3 * h2 / 120;
    p.h2_phi3 = -(h3 / 6 - h3 * h / 24 + h3 * h2 / 120 - h3 * h3 / 720);
  } else {
    p.h_phi2 = h + p.phi1;
    p.h2_phi3 = -(h * h / 2 - h - p.phi1);
  }
  return p;
}

// DPM-Solver++ from sigma[i] to sigma[i + 1] with `order` (1..3) data predictions:
// d0 at sigma[i], d1 at sigma[i-1], d2 at sigma[i-2]. In lambda = -log sigma, with h the step,
//   x_t = (sigma_vp,t / sigma_vp,s) x_s - alpha_t phi_1 D + alpha_t h phi_2 D' - alpha_t h^2 phi_3 D''
// (Taylor expansion of the data prediction D in lambda; Lu et al. 2022, eq. 9 and App. B).
// Order 2 is the paper's 2M: D' h ~ (d0 - d1) / r with r = h_0 / h, weighted phi_1/2 instead of
// h phi_2 (Algorithm 2). Order 3 takes D' and D'' from the quadratic through the three points.
Coefs dpmpp_coefs(const std::vector<double>& sigma, size_t i, int order) {
  const double s = sigma[i], t = sigma[i + 1], alpha_t = alpha_of_sigma(t);
  Coefs c;
  if (t == 0) {  // h = infinity: x = d0, the data prediction
    c.c_d0 = 1;
    return c;
  }
  const double h = std::log(s / t);
  const Phi p = phis(h);
  c.c_x = vp_sigma_of_sigma(t) / vp_sigma_of_sigma(s);
  c.c_d0 = -alpha_t * p.phi1;
  if (order == 1) return c;
  const double h0 = std::log(sigma[i - 1] / s);
  if (order == 2) {
    const double r = h0 / h;
    c.c_d0 = -alpha_t * p.phi1 * (1 + 1 / (2 * r));
    c.c_d1 = alpha_t * p.phi1 / (2 * r);
    return c;
  }
  // Divided differences delta0 = (d0 - d1)/h0, delta1 = (d1 - d2)/h1; the quadratic's derivatives
  // at lambda_s: D' = delta0 + h0 (delta0 - delta1)/(h0 + h1), D'' = 2 (delta0 - delta1)/(h0 + h1).
  const double h1 = std::log(sigma[i - 2] / sigma[i - 1]), q = 1 / (h0 + h1);
  const double a = alpha_t * p.h_phi2, b = -alpha_t * p.h2_phi3;  // weights of D' and D''
  const double w0 = a * (1 + h0 * q) + 2 * b * q;                 // weight of delta0
  const double w1 = -a * h0 * q - 2 * b * q;                      // weight of delta1
  c.c_d0 += w0 / h0;
  c.c_d1 = -w0 / h0 + w1 / h1;
  c.c_d2 = -w1 / h1;
  return c;
}

class Stepper {
 public:
  Stepper(const GaussianDiffusion& d, const ModelFn& model, const SampleOptions& o) : d_(d), model_(model), o_(o) {}

  // The model's mean output (epsilon, x0 or v) at x, told step index t.
  Tensor evaluate(const Tensor& x, double t) {
    const DType real = x.dtype() == DType::F64 ? DType::F64 : DType::F32;
    const Tensor steps = Tensor::full({x.dim(0)}, t, real, x.device());
    Tensor out = d_.split_output(model_(x, steps), x).first;
    if (o_.progress) o_.progress(++evaluations_, total_);
    return out;
  }

  // One fused kernel; `sigma_in` is the noise level of the point the model saw (model_in, or x).
  void step(const Tensor& x, const Tensor& model_in, const Tensor& out, double sigma_in, const Tensor& d1,
            const Tensor& d2, const Coefs& c, const Tensor& x_next, const Tensor& d0_out) {
    solver_step_args a;
    a.x = x, a.model_in = model_in, a.model_out = out, a.d1 = d1, a.d2 = d2, a.x_next = x_next, a.d0_out = d0_out;
    a.prediction = d_.config().prediction;
    a.clip = o_.clip;
    a.in_alpha = alpha_of_sigma(sigma_in), a.in_sigma = vp_sigma_of_sigma(sigma_in);
    a.c_x = c.c_x, a.c_d0 = c.c_d0, a.c_d1 = c.c_d1, a.c_d2 = c.c_d2, a.c_z = c.c_z;
    a.seed = o_.seed;
    a.stream = o_.stream + 1 + calls_++;
    backend_for(x.device()).solver_step(a);
  }

  Tensor like(const Tensor& x) const { return Tensor::empty(x.shape(), x.dtype(), x.device()); }
  void set_total(int total) { total_ = total; }

 private:
  const GaussianDiffusion& d_;
  const ModelFn& model_;
  const SampleOptions& o_;
  int evaluations_ = 0, total_ = 0;
  uint64_t calls_ = 0;
};

Tensor solve_dpmpp(Stepper& run, const Tensor& x_T, const NoiseLevels& levels, int order, bool lower_order_final) {
  Tensor x = x_T.clone();
  std::vector<Tensor> history;  // data predictions, newest first
  const int k = levels.count();
  for (int i = 0; i < k; ++i) {
    // Warm-up: only as many earlier predictions as exist; Lu et al.'s lower_order_final for short chains.
    int o = std::min(order, i + 1);
    if (lower_order_final && k < 15) o = std::min(o, k - i);
    const Coefs c = dpmpp_coefs(levels.sigma, static_cast<size_t>(i), o);
    const Tensor out = run.evaluate(x, levels.model_t[static_cast<size_t>(i)]);
    Tensor d0 = run.like(x);
    run.step(x, {}, out, levels.sigma[static_cast<size_t>(i)], o >= 2 ? history[0] : Tensor(),
             o >= 3 ? history[1] : Tensor(), c, x, d0);
    history.insert(history.begin(), d0);
    if (history.size() > 2) history.pop_back();
  }
  return x;
}

// Karras et al.'s Algorithm 2 on VP-scaled states: with x_e = x / alpha (their state) and
// D the data prediction, the Euler step from s to t is x_e' = (t/s) x_e + (1 - t/s) D_1 and the
// Heun correction averages the slopes (x_e - D_1)/s and (x_e' - D_2)/t:
//   x_e'' = (t/s) x_e + (t - s)/2 (1/t - 2/s) D_1 - (t - s)/(2t) D_2.
// Churn raises level i to s_hat = s (1 + gamma) by adding noise of sigma sqrt(s_hat^2 - s^2) to x_e;
// it is fused into the previous step's kernel (and capped at the schedule's largest sigma, so the
// model is never told a level it was not trained on).
Tensor solve_heun(Stepper& run, const GaussianDiffusion& d, const Tensor& x_T, const NoiseLevels& levels,
                  const SolverConfig& cfg) {
  const Schedule& schedule = d.schedule();
  const double sigma_max = sigma_at_step(schedule, schedule.steps() - 1);
  const int k = levels.count();
  auto raised = [&](size_t i) {
    const double s = levels.sigma[i];
    const bool churn = cfg.s_churn > 0 && s >= cfg.s_tmin && s <= cfg.s_tmax;
    return churn ? std::min(s * (1 + std::min(cfg.s_churn / k, std::sqrt(2.0) - 1)), std::max(sigma_max, s)) : s;
  };
  // x_e at level s, noised to level s_hat: VP coefficients of x and z.
  auto churn = [&](double s, double s_hat) {
    Coefs c;
    c.c_x = alpha_of_sigma(s_hat) / alpha_of_sigma(s);
    c.c_z = alpha_of_sigma(s_hat) * std::sqrt(s_hat * s_hat - s * s) * cfg.s_noise;
    return c;
  };
  Tensor x = x_T.clone(), x1 = run.like(x_T), d1 = run.like(x_T);
  double s = raised(0);
  if (s > levels.sigma[0]) run.step(x, {}, {}, s, {}, {}, churn(levels.sigma[0], s), x, {});
  for (int i = 0; i < k; ++i) {
    const size_t n = static_cast<size_t>(i) + 1;
    const double t = levels.sigma[n], alpha_t = alpha_of_sigma(t), alpha_s = alpha_of_sigma(s);
    const double t_model = s == levels.sigma[n - 1] ? levels.model_t[n - 1]
                                                    : model_step_at(schedule, step_of_sigma(schedule, s));
    const Tensor out1 = run.evaluate(x, t_model);
    if (t == 0) {  // the last step is Euler's: x = D_1
      Coefs c;
      c.c_d0 = 1;
      run.step(x, {}, out1, s, {}, {}, c, x, {});
      break;
    }
    Coefs euler;
    euler.c_x = alpha_t * t / (s * alpha_s);
    euler.c_d0 = alpha_t * (1 - t / s);
    run.step(x, {}, out1, s, {}, {}, euler, x1, d1);
    const Tensor out2 = run.evaluate(x1, levels.model_t[n]);
    Coefs heun;
    heun.c_x = euler.c_x;
    heun.c_d1 = alpha_t * (t - s) / 2 * (1 / t - 2 / s);
    heun.c_d0 = -alpha_t * (t - s) / (2 * t);
    const double s_next = raised(n);
    if (s_next > t) {  // churn for the next level in the same pass
      const Coefs noise = churn(t, s_next);
      heun = heun.scaled(noise.c_x);
      heun.c_z = noise.c_z;
    }
    run.step(x, x1, out2, t, d1, {}, heun, x, {});
    s = s_next;
  }
  return x;
}

// k-diffusion's ancestral Euler: sigma_up = min(t, eta t sqrt(1 - t^2/s^2)), sigma_down =
// sqrt(t^2 - sigma_up^2); x_e' = x_e + (sigma_down - s)(x_e - D)/s + s_noise sigma_up z.
Tensor solve_euler_ancestral(Stepper& run, const Tensor& x_T, const NoiseLevels& levels, const SolverConfig& cfg) {
  Tensor x = x_T.clone();
  for (int i = 0; i < levels.count(); ++i) {
    const size_t n = static_cast<size_t>(i);
    const double s = levels.sigma[n], t = levels.sigma[n + 1], alpha_t = alpha_of_sigma(t);
    const double up = std::min(t, cfg.eta * t * std::sqrt(std::max(0.0, 1 - t * t / (s * s))));
    const double down = std::sqrt(std::max(0.0, t * t - up * up));
    Coefs c;
    c.c_x = alpha_t * down / (s * alpha_of_sigma(s));
    c.c_d0 = alpha_t * (1 - down / s);
    c.c_z = alpha_t * up * cfg.s_noise;
    run.step(x, {}, run.evaluate(x, levels.model_t[n]), s, {}, {}, c, x, {});
  }
  return x;
}
}  // namespace

Tensor solve(const GaussianDiffusion& diffusion, const ModelFn& model, const Tensor& x_T, const NoiseLevels& levels,
             const SolverConfig& config, const SampleOptions& options) {
  DDPM_CHECK(x_T.rank() >= 2, "sampling: expected x_T [N, ...], got ", shape_str(x_T.shape()));
  DDPM_CHECK(levels.count() >= 1 && levels.sigma.size() == levels.model_t.size() + 1 && levels.sigma.back() == 0,
             "sampling: noise levels must be K > 0 positive levels followed by 0");
  for (size_t i = 0; i + 1 < levels.sigma.size(); ++i)
    DDPM_CHECK(levels.sigma[i] > levels.sigma[i + 1], "sampling: noise levels must decrease strictly, got ",
               levels.sigma[i], " then ", levels.sigma[i + 1]);
  validate(config);
  NoGradGuard no_grad;
  Stepper run(diffusion, model, options);
  run.set_total(solver_evaluations(config, levels));
  switch (config.method) {
    case Solver::DpmPP2M: return solve_dpmpp(run, x_T, levels, 2, config.lower_order_final);
    case Solver::DpmPP3M: return solve_dpmpp(run, x_T, levels, 3, config.lower_order_final);
    case Solver::Heun: return solve_heun(run, diffusion, x_T, levels, config);
    case Solver::EulerAncestral: return solve_euler_ancestral(run, x_T, levels, config);
  }
  return x_T;
}

}  // namespace ddpm
