// Classifier-free guidance (diffusion/guidance.h) and class-conditional models: w = 0 is the
// conditional model bit for bit, the one batched guided forward equals two separate forwards, the
// combination is the same for every parameterization and keeps the conditional variance, and on a
// two-class Gaussian mixture (an analytic conditional oracle) conditioning moves the samples onto
// the chosen component while guidance pushes them further from the other.
#include <catch2/catch.hpp>
#include <cmath>

#include "diffusion/guidance.h"
#include "diffusion/samplers.h"
#include "engine/autograd.h"
#include "engine/nn/parameters.h"
#include "engine/ops.h"
#include "models/mlp.h"
#include "models/unet.h"
#include "tests/support.h"

using namespace ddpm;

namespace {
void randomize(const ParameterSet& params, uint64_t stream) {
  params.values().copy_from(test::randn(params.values().shape(), stream, 0.2).to(params.values().dtype()));
}

LabeledModelFn net_of(Denoiser& model) {
  return [&model](const Tensor& x, const Tensor& t, const std::vector<int>& labels) {
    return model.forward(x, t, {}, labels);
  };
}

UNetConfig small_unet(int out_channels) {
  UNetConfig c;
  c.resolution = 8, c.in_channels = 1, c.out_channels = out_channels, c.base_channels = 8, c.channel_mult = {1, 2};
  c.num_res_blocks = 1, c.attention_resolutions = {4}, c.heads = 2, c.dropout = 0.1, c.groups = 4;
  c.num_classes = 3;
  return c;
}

// ---- the two-class Gaussian mixture oracle ----
// Class c: x0 ~ N(m_c, s^2) per dimension, equal weights. Given x_t, class c's optimal eps is
//   eps_c = sqrt(1 - abar) (x_t - sqrt(abar) m_c) / v,  v = abar s^2 + 1 - abar,
// and the mixture's is sum_c r_c eps_c with r_c the posterior of class c given x_t, proportional to
// N(x_t; sqrt(abar) m_c, v). Label 2 is "no class": the mixture.
constexpr double kMeans[2] = {-0.3, 0.3}, kS = 0.25;

double mixture_eps(double x, double abar, int label) {
  const double v = abar * kS * kS + 1 - abar, root = std::sqrt(1 - abar);
  double eps[2], logp[2];
  for (int c = 0; c < 2; ++c) {
    const double d = x - std::sqrt(abar) * kMeans[c];
    eps[c] = root * d / v;
    logp[c] = -0.5 * d * d / v;
  }
  if (label < 2) return eps[label];
  const double r0 = 1 / (1 + std::exp(logp[1] - logp[0]));
  return r0 * eps[0] + (1 - r0) * eps[1];
}

LabeledModelFn mixture_oracle(const Schedule& full, int* calls = nullptr, int64_t* rows = nullptr) {
  return [&full, calls, rows](const Tensor& x_t, const Tensor& t, const std::vector<int>& labels) {
    if (calls) ++*calls;
    if (rows) *rows = x_t.dim(0);
    REQUIRE(static_cast<int64_t>(labels.size()) == x_t.dim(0));
    const std::vector<double> x = x_t.to_vector(), steps = t.to_vector();
    const int64_t per_row = x_t.numel() / x_t.dim(0);
    std::vector<double> out(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      const size_t row = i / static_cast<size_t>(per_row);
      out[i] = mixture_eps(x[i], full.abar()[static_cast<size_t>(steps[row])], labels[row]);
    }
    return Tensor::from_vector(out, x_t.shape(), x_t.dtype());
  };
}

// The exact mean and variance of x_0 after the fixed-small ancestral chain with class c's
// (Gaussian, so affine) optimal eps, without clipping: each step x_{k-1} = P x_k + Q + sigma z with
// mu = coef1 x0_hat + coef2 x_k, x0_hat = (x_k - sqrt(1 - abar) eps) / sqrt(abar); no noise at k = 0.
std::pair<double, double> chain_moments(const Schedule& chain, int label) {
  double mean = 0, var = 1;
  for (size_t k = chain.abar().size(); k-- > 0;) {
    const double abar = chain.abar()[k], root = std::sqrt(1 - abar);
    const double a = root / (abar * kS * kS + 1 - abar), b = -std::sqrt(abar) * kMeans[label] * a;  // eps = a x + b
    const double x0_scale = (1 - root * a) / std::sqrt(abar), x0_shift = -root * b / std::sqrt(abar);
    const double p = chain.posterior_mean_coef1()[k] * x0_scale + chain.posterior_mean_coef2()[k];
    const double q = chain.posterior_mean_coef1()[k] * x0_shift;
    mean = p * mean + q;
    var = p * p * var + (k > 0 ? chain.posterior_variance()[k] : 0.0);
  }
  return {mean, var};
}

struct Moments {
  double mean = 0, var = 0, near_other = 0;  // near_other: fraction closer to the other component
};
Moments moments_of(const Tensor& samples, int label) {
  const std::vector<double> x = samples.to_vector();
  Moments m;
  for (double v : x) m.mean += v;
  m.mean /= static_cast<double>(x.size());
  for (double v : x) {
    m.var += (v - m.mean) * (v - m.mean);
    if (std::abs(v - kMeans[1 - label]) < std::abs(v - kMeans[label])) m.near_other += 1;
  }
  m.var /= static_cast<double>(x.size() - 1);
  m.near_other /= static_cast<double>(x.size());
  return m;
}
}  // namespace

TEST_CASE("guidance: w = 0 is the conditional model bit for bit, in one forward", "[conditioning]") {
  UNet model(small_unet(2));
  ParameterSet params(model, 1, Device::CPU, DType::F32);
  randomize(params, 2);
  model.train(false);
  NoGradGuard no_grad;
  const Tensor x = test::randn({3, 8, 8, 1}, 3).to(DType::F32);
  const Tensor t = Tensor::from_vector(std::vector<double>{5, 400, 999}, {3});
  const std::vector<int> labels{0, 2, 1};
  int calls = 0;
  int64_t rows = 0;
  LabeledModelFn counting = [&](const Tensor& xx, const Tensor& tt, const std::vector<int>& l) {
    ++calls, rows = xx.dim(0);
    return model.forward(xx, tt, {}, l);
  };
  const Tensor guided = classifier_free_guidance(counting, labels, 3, 0.0)(x, t);
  REQUIRE(calls == 1);
  REQUIRE(rows == 3);
  REQUIRE(guided.to_vector() == model.forward(x, t, {}, labels).to_vector());
  // The labels reach the output: another class gives another output.
  REQUIRE(model.forward(x, t, {}, {1, 2, 1}).to_vector() != guided.to_vector());
}

TEST_CASE("guidance: the batched guided forward equals two separate forwards", "[conditioning]") {
  for (const int out_channels : {1, 2}) {  // epsilon only, and with learned-range variance channels
    INFO("output channels " << out_channels);
    UNet model(small_unet(out_channels));
    ParameterSet params(model, 4, Device::CPU, DType::F64);
    randomize(params, 5);
    model.train(false);
    NoGradGuard no_grad;
    const Tensor x = test::randn({2, 8, 8, 1}, 6);
    const Tensor t = Tensor::from_vector(std::vector<double>{17, 640}, {2}, DType::F64);
    const std::vector<int> labels{2, 0};
    const double w = 1.5;
    int calls = 0;
    int64_t rows = 0;
    LabeledModelFn counting = [&](const Tensor& xx, const Tensor& tt, const std::vector<int>& l) {
      ++calls, rows = xx.dim(0);
      return model.forward(xx, tt, {}, l);
    };
    const std::vector<double> guided = classifier_free_guidance(counting, labels, 3, w)(x, t).to_vector();
    REQUIRE(calls == 1);
    REQUIRE(rows == 4);  // one forward over [x; x]
    const std::vector<double> cond = model.forward(x, t, {}, labels).to_vector();
    const std::vector<double> uncond = model.forward(x, t, {}, {3, 3}).to_vector();
    std::vector<double> expected(cond.size());
    for (size_t i = 0; i < cond.size(); ++i) {
      const bool variance_channel = out_channels == 2 && i % 2 == 1;
      expected[i] = variance_channel ? cond[i] : (1 + w) * cond[i] - w * uncond[i];
    }
    // float64; the tolerance only absorbs a GEMM over 4 rows summing in another order than over 2.
    test::require_close(guided, expected, 1e-12, 1e-14, "guided output");
  }
}

TEST_CASE("guidance: the same combination in epsilon, x0 and v gives the same reverse mean", "[conditioning]") {
  const Schedule schedule(BetaSchedule::Linear, 100, true);
  const LabeledModelFn eps_net = mixture_oracle(schedule);
  NoGradGuard no_grad;
  const Tensor x = test::randn({4, 1, 1, 3}, 7);
  const std::vector<int> labels{0, 1, 0, 1};
  for (const int step : {3, 50, 99}) {
    const double abar = schedule.abar()[static_cast<size_t>(step)], a = std::sqrt(abar), b = std::sqrt(1 - abar);
    // The same oracle reparameterized: x0 = (x_t - b eps) / a, v = (eps - b x_t) / a... written as
    // v = a eps - b x0 (docs/math.md), which is the same number.
    auto reparam = [&](Prediction p) -> LabeledModelFn {
      return [&, p](const Tensor& x_t, const Tensor& t, const std::vector<int>& l) {
        const Tensor eps = eps_net(x_t, t, l);
        const Tensor x0 = scale(sub(x_t, scale(eps, b)), 1 / a);
        return p == Prediction::X0 ? x0 : sub(scale(eps, a), scale(x0, b));
      };
    };
    const Tensor t = Tensor::full({4}, step, DType::F64);
    std::vector<double> means[3];
    int k = 0;
    for (const Prediction p : {Prediction::Epsilon, Prediction::X0, Prediction::V}) {
      const GaussianDiffusion diffusion(schedule, {p, VarianceType::FixedSmall, LossType::Mse, 0.001});
      const LabeledModelFn net = p == Prediction::Epsilon ? eps_net : reparam(p);
      const Tensor out = classifier_free_guidance(net, labels, 2, 2.0)(x, t);
      means[k++] = diffusion.p_mean_variance(out, x, step, false).mean.to_vector();
    }
    INFO("step " << step);
    test::require_close(means[1], means[0], 1e-10, 1e-12, "x0 against epsilon");
    test::require_close(means[2], means[0], 1e-10, 1e-12, "v against epsilon");
  }
}

TEST_CASE("guidance: on a two-class Gaussian mixture, conditioning picks the component and guidance pushes "
          "away from the other", "[conditioning][oracle]") {
  const Schedule full(BetaSchedule::Linear, 1000, false);
  const GaussianDiffusion diffusion(full, {});
  const GaussianDiffusion chain = diffusion.respaced(spaced_steps(1000, 100));
  const int64_t n = 4000;
  const double se = kS / std::sqrt(static_cast<double>(n));  // about the standard error of a mean
  SampleOptions o;
  o.clip = false;
  o.seed = 11;
  auto draw = [&](int label, double w) {
    NoGradGuard no_grad;
    const std::vector<int> labels(static_cast<size_t>(n), label);
    return moments_of(sample_ancestral(chain, classifier_free_guidance(mixture_oracle(full), labels, 2, w),
                                       {n, 1, 1, 1}, DType::F64, Device::CPU, o),
                      label == 2 ? 1 : label);
  };
  const Moments mixture = draw(2, 0.0);
  // The mixture: mean 0, variance s^2 + m^2, half the samples on each side.
  CHECK(std::abs(mixture.mean) < 5 * std::sqrt(kS * kS + 0.09) / std::sqrt(double(n)));
  CHECK(mixture.var == Approx(kS * kS + 0.09).epsilon(0.15));
  CHECK(mixture.near_other == Approx(0.5).margin(0.05));
  for (const int label : {0, 1}) {
    INFO("class " << label);
    const Moments plain = draw(label, 0.0), guided = draw(label, 3.0);
    const double toward = kMeans[label] > 0 ? 1 : -1;
    // Conditioned: exactly the chain of class c's Gaussian alone, whose output moments are known
    // (its fixed-small variance lands under s^2 on a 100-step chain); within 5 standard errors.
    const auto [exact_mean, exact_var] = chain_moments(chain.schedule(), label);
    CHECK(std::abs(exact_mean - kMeans[label]) < 0.02);
    CHECK(std::abs(plain.mean - exact_mean) < 5 * std::sqrt(exact_var / double(n)));
    CHECK(std::abs(plain.var - exact_var) < 5 * exact_var * std::sqrt(2.0 / double(n - 1)));
    CHECK(plain.near_other < mixture.near_other - 0.2);
    // Guided (w = 3): the same noise, further from the other component.
    CHECK(toward * (guided.mean - plain.mean) > 5 * se);
    CHECK(guided.near_other < plain.near_other);
    std::printf("mixture oracle, class %d: conditional mean %.4f var %.4f (exact chain %.4f, %.4f; data %.4f, "
                "%.4f), %.3f nearer the other mean; guided w=3: mean %.4f var %.4f, %.3f nearer the other\n",
                label, plain.mean, plain.var, exact_mean, exact_var, kMeans[label], kS * kS, plain.near_other,
                guided.mean, guided.var, guided.near_other);
  }
}

TEST_CASE("class-conditional UNet and MLP: a class embedding of num_classes + 1 rows, gradients reach it",
          "[conditioning]") {
  UNetConfig c = small_unet(1);
  UNet unconditional([&] { UNetConfig u = c; u.num_classes = 0; return u; }());
  UNet conditional(c);
  ParameterSet pu(unconditional, 1), pc(conditional, 1);
  // 4 * base_channels = 32 wide time embedding, 3 classes + "no class".
  REQUIRE(pc.count() - pu.count() == 32 * 4);
  REQUIRE(pc.find("class_emb.table.weight").value.shape() == Shape{32, 4});
  MlpConfig m{2, 2, 16, 2, 8};
  MlpDenoiser mlp_u(m);
  m.num_classes = 5;
  MlpDenoiser mlp_counted(m), mlp_c(m);
  ParameterSet qu(mlp_u, 1), qc(mlp_counted, 1);
  REQUIRE(qc.count() - qu.count() == 16 * 6);

  // d out / d embedding by float64 central differences, through the MLP (small enough to probe all).
  ParameterSet params(mlp_c, 2, Device::CPU, DType::F64);
  randomize(params, 3);
  const Tensor x = test::randn({3, 1, 1, 2}, 4), t = Tensor::from_vector(std::vector<double>{1, 30, 900}, {3}, DType::F64);
  const std::vector<int> labels{4, 5, 0};
  const Tensor w = test::randn({3, 1, 1, 2}, 5);
  auto loss = [&] { return sum(mul(mlp_c.forward(x, t, {}, labels), w)); };
  params.zero_grad();
  backward(loss());
  const NamedParameter& table = params.find("class_emb.table.weight");
  const std::vector<double> grads = params.grads().to_vector();
  double* values = params.values().data<double>();
  NoGradGuard no_grad;
  for (int64_t i = 0; i < table.value.numel(); ++i) {
    const int64_t at = table.offset + i;
    const double saved = values[at], h = 1e-6;
    values[at] = saved + h;
    const double plus = loss().item();
    values[at] = saved - h;
    const double minus = loss().item();
    values[at] = saved;
    INFO("element " << i);
    REQUIRE(grads[static_cast<size_t>(at)] == Approx((plus - minus) / (2 * h)).epsilon(1e-6).margin(1e-9));
    // Columns of classes absent from the batch (1, 2, 3) get no gradient.
    const int64_t column = i % 6;
    if (column >= 1 && column <= 3) REQUIRE(grads[static_cast<size_t>(at)] == 0.0);
  }
}

TEST_CASE("class-conditional models refuse missing, extra or out-of-range labels", "[conditioning][errors]") {
  UNet conditional(small_unet(1));
  UNetConfig u = small_unet(1);
  u.num_classes = 0;
  UNet unconditional(u);
  ParameterSet pc(conditional, 1), pu(unconditional, 1);
  NoGradGuard no_grad;
  const Tensor x = Tensor::zeros({2, 8, 8, 1}), t = Tensor::zeros({2});
  REQUIRE_THROWS_WITH(conditional.forward(x, t, {}), Catch::Contains("one label per example") &&
                                                         Catch::Contains("got 0 labels for 2"));
  REQUIRE_THROWS_WITH(conditional.forward(x, t, {}, {0, 4}), Catch::Contains("label 4") && Catch::Contains("0..3"));
  REQUIRE_THROWS_WITH(unconditional.forward(x, t, {}, {0, 1}), Catch::Contains("unconditional"));
  REQUIRE_THROWS_WITH(classifier_free_guidance(net_of(conditional), {0, 1}, 3, -1.0), Catch::Contains(">= 0"));
  REQUIRE_THROWS_WITH(condition_on(net_of(conditional), {0, 1, 2})(x, t), Catch::Contains("2 rows") &&
                                                                             Catch::Contains("3 labels"));
}
