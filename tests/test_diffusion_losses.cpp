// Training losses, timestep samplers and the bits/dim loop (vlb_term's gradients and GradSlots:
// the op table, tests/op_cases.cpp).
#include <catch2/catch.hpp>
#include <cmath>

#include "diffusion/gaussian_diffusion.h"
#include "diffusion/timestep_sampler.h"
#include "engine/autograd.h"
#include "engine/ops.h"
#include "tests/support.h"

using namespace ddpm;

namespace {
const double kLn2 = std::log(2.0);

GaussianDiffusion make(Prediction p, VarianceType v, LossType l, int steps = 100) {
  DiffusionConfig c;
  c.prediction = p, c.variance = v, c.loss = l;
  return GaussianDiffusion(Schedule(BetaSchedule::Linear, steps), c);
}

// x0 on the 256-level grid of [-1, 1], [n, 2, 2, 3].
Tensor grid_images(int64_t n, uint64_t stream) {
  std::vector<double> v = Tensor::uniform({n, 2, 2, 3}, 9, stream, 0, 256, DType::F64).to_vector();
  for (double& e : v) e = -1 + 2 * std::floor(e) / 255;
  return Tensor::from_vector(v, {n, 2, 2, 3}, DType::F64);
}
}  // namespace

TEST_CASE("L_simple is the per-sample MSE between the model output and its target", "[diffusion][losses]") {
  for (Prediction p : {Prediction::Epsilon, Prediction::X0, Prediction::V}) {
    GaussianDiffusion d = make(p, VarianceType::FixedSmall, LossType::Mse);
    Tensor x0 = grid_images(3, 2);
    Tensor seen_x_t, seen_t;
    const Tensor prediction = test::randn(x0.shape(), 8);
    ModelFn model = [&](const Tensor& x_t, const Tensor& t) {
      seen_x_t = x_t, seen_t = t;
      return prediction;
    };
    auto losses = d.training_losses(model, x0, {5, 50, 99}, 11, 12);
    REQUIRE(seen_t.to_vector() == std::vector<double>{5, 50, 99});
    // The same noise, drawn independently from Philox (seed 11, stream 12), gives the target.
    const std::vector<double> eps = Tensor::normal(x0.shape(), 11, 12, 0, 1, DType::F64).to_vector();
    const std::vector<double> xv = x0.to_vector(), pv = prediction.to_vector(), xt = seen_x_t.to_vector();
    const Schedule& s = d.schedule();
    const int steps[3] = {5, 50, 99};
    std::vector<double> want(3, 0.0);
    for (size_t i = 0; i < xv.size(); ++i) {
      const size_t t = static_cast<size_t>(steps[i / 12]);
      REQUIRE(xt[i] == Approx(s.sqrt_abar()[t] * xv[i] + s.sqrt_one_minus_abar()[t] * eps[i]).epsilon(1e-13));
      const double target = p == Prediction::Epsilon ? eps[i]
                            : p == Prediction::X0    ? xv[i]
                                                     : s.sqrt_abar()[t] * eps[i] - s.sqrt_one_minus_abar()[t] * xv[i];
      want[i / 12] += (pv[i] - target) * (pv[i] - target) / 12;
    }
    test::require_close(losses.loss.to_vector(), want, 1e-12, 1e-14, std::string("mse, ") + prediction_name(p));
    REQUIRE_FALSE(losses.vb.defined());
  }
}

TEST_CASE("hybrid loss: no gradient through the mean for the bound; KL losses in bits", "[diffusion][losses]") {
  Tensor x0 = grid_images(2, 3);
  const std::vector<int> t{0, 40};
  Tensor leaf = test::randn({2, 2, 2, 6}, 9, 0.5);
  auto run = [&](LossType l) {
    GaussianDiffusion d = make(Prediction::Epsilon, VarianceType::LearnedRange, l);
    Tensor out = leaf.clone().set_requires_grad(true);
    auto losses = d.training_losses([&](const Tensor&, const Tensor&) { return out; }, x0, t, 4, 4);
    backward(sum(losses.loss));
    return std::make_pair(losses, out.grad().to_vector());
  };
  auto [hybrid, g_hybrid] = run(LossType::Hybrid);
  auto [kl, g_kl] = run(LossType::Kl);
  auto [rescaled, g_rescaled] = run(LossType::RescaledKl);
  const std::vector<double> vb = kl.vb.to_vector(), mse = hybrid.mse.to_vector(), h = hybrid.loss.to_vector();
  for (size_t i = 0; i < 2; ++i) {
    REQUIRE(h[i] == Approx(mse[i] + 0.001 * 100 * vb[i]).epsilon(1e-12));
    REQUIRE(rescaled.loss.to_vector()[i] == Approx(100 * vb[i]).epsilon(1e-12));
    REQUIRE(kl.loss.to_vector()[i] == vb[i]);
  }
  // Channels 0..2 are the mean part, 3..5 the variance part. In the hybrid loss the mean part's
  // gradient is exactly L_simple's, 2 (out - eps) / D; the variance part gets lambda T d(vb).
  const std::vector<double> eps = Tensor::normal(x0.shape(), 4, 4, 0, 1, DType::F64).to_vector();
  const std::vector<double> lv = leaf.to_vector();
  for (size_t i = 0; i < g_hybrid.size(); ++i) {
    const size_t c = i % 6, pixel = i / 6;
    if (c < 3) {
      REQUIRE(g_hybrid[i] == Approx(2 * (lv[i] - eps[pixel * 3 + c]) / 12).epsilon(1e-10));
      REQUIRE(g_kl[i] != 0.0);  // the KL loss does train the mean
    } else {
      REQUIRE(g_hybrid[i] == Approx(0.1 * g_kl[i]).epsilon(1e-10));
      REQUIRE(g_rescaled[i] == Approx(100 * g_kl[i]).epsilon(1e-10));
    }
  }
}

TEST_CASE("loss and variance choices are checked", "[diffusion][losses][errors]") {
  DiffusionConfig c;
  c.variance = VarianceType::LearnedRange;
  REQUIRE_THROWS_WITH(GaussianDiffusion(Schedule(BetaSchedule::Linear, 10), c), Catch::Contains("hybrid"));
  c = {};
  c.loss = LossType::Hybrid;
  REQUIRE_THROWS_WITH(GaussianDiffusion(Schedule(BetaSchedule::Linear, 10), c), Catch::Contains("learned_range"));
  REQUIRE_THROWS_WITH(parse_prediction("eps"), Catch::Contains("epsilon"));
  GaussianDiffusion d = make(Prediction::Epsilon, VarianceType::FixedSmall, LossType::Mse, 10);
  Tensor x0 = grid_images(2, 1);
  REQUIRE_THROWS_WITH(d.q_sample(x0, {1, 10}, 0, 0), Catch::Contains("timestep 10"));
  REQUIRE_THROWS_WITH(d.q_sample(x0, {1}, 0, 0), Catch::Contains("1 timesteps for a batch of 2"));
  auto wrong = [](const Tensor& x, const Tensor&) { return concat(x, x); };
  REQUIRE_THROWS_WITH(d.training_losses(wrong, x0, {1, 2}, 0, 0), Catch::Contains("[2, 2, 2, 6]") && Catch::Contains("[2, 2, 2, 3]"));
}

TEST_CASE("timestep samplers: uniform, and importance sampling by the loss's second moment", "[diffusion][losses]") {
  UniformTimestepSampler uniform(10);
  auto draw = uniform.draw(20000, 3, 1);
  std::vector<int> counts(10, 0);
  for (size_t i = 0; i < draw.t.size(); ++i) {
    REQUIRE((draw.t[i] >= 0 && draw.t[i] < 10));
    REQUIRE(draw.weights[i] == Approx(1.0));
    counts[static_cast<size_t>(draw.t[i])]++;
  }
  for (int c : counts) REQUIRE(std::fabs(c - 2000) < 5 * std::sqrt(2000 * 0.9));

  LossSecondMomentSampler importance(4, 2, 0.001);
  REQUIRE(importance.probabilities() == std::vector<double>(4, 0.25));  // uniform until warmed up
  importance.update({0, 1, 2, 3, 0, 1, 2}, {1, 2, 3, 4, 1, 2, 3});
  REQUIRE_FALSE(importance.warmed_up());
  importance.update({3}, {4});
  REQUIRE(importance.warmed_up());
  // sqrt(E[L^2]) = 1, 2, 3, 4 -> p = (l / 10) (1 - 0.001) + 0.001 / 4; weights 1 / (T p).
  const std::vector<double> p = importance.probabilities();
  for (size_t t = 0; t < 4; ++t) REQUIRE(p[t] == Approx((t + 1) / 10.0 * 0.999 + 0.00025));
  auto d = importance.draw(40000, 5, 2);
  std::vector<int> seen(4, 0);
  for (size_t i = 0; i < d.t.size(); ++i) {
    seen[static_cast<size_t>(d.t[i])]++;
    REQUIRE(d.weights[i] == Approx(1 / (4 * p[static_cast<size_t>(d.t[i])])));
  }
  for (size_t t = 0; t < 4; ++t) REQUIRE(std::fabs(seen[t] / 40000.0 - p[t]) < 5 * std::sqrt(p[t] / 40000));
  // The history is the checkpointed state; newer losses push out the oldest.
  LossSecondMomentSampler restored(4, 2, 0.001);
  restored.restore(importance.state());
  REQUIRE(restored.probabilities() == p);
  importance.update({0, 0}, {5, 5});
  REQUIRE(importance.probabilities()[0] > p[0]);
}

TEST_CASE("bits/dim: the total is the prior plus every term, each term the vlb of that step", "[diffusion][bound]") {
  GaussianDiffusion d = make(Prediction::Epsilon, VarianceType::FixedSmall, LossType::Mse, 20);
  Tensor x0 = grid_images(3, 4);
  // Any callback will do: a crude denoiser that predicts part of x_t as noise.
  ModelFn model = [](const Tensor& x_t, const Tensor&) { return scale(x_t, 0.7); };
  int calls = 0;
  auto b = d.bits_per_dim(model, x0, 8, 100, true, [&](int done, int total) {
    REQUIRE(total == 20);
    REQUIRE(done == ++calls);
  });
  REQUIRE(calls == 20);
  double total = b.prior_bpd;
  for (double v : b.terms_bpd) total += v;
  REQUIRE(b.total_bpd == Approx(total).epsilon(1e-14));
  double per_sample = 0;
  for (double v : b.total_per_sample_bpd) per_sample += v / 3;
  REQUIRE(per_sample == Approx(b.total_bpd).epsilon(1e-12));
  // Step 7's term, recomputed by hand from the same noise (stream 100 + 7).
  auto noised = d.q_sample(x0, {7, 7, 7}, 8, 107);
  const double term = mean(vlb_term(scale(noised.x_t, 0.7), {}, x0, noised.x_t, Tensor::full({3}, 7, DType::F64),
                                    d.coefs(DType::F64, Device::CPU), Prediction::Epsilon, VarianceType::FixedSmall, true))
                          .item() / kLn2;
  REQUIRE(b.terms_bpd[7] == Approx(term).epsilon(1e-12));
  for (double v : b.terms_bpd) REQUIRE((std::isfinite(v) && v >= 0));
}

TEST_CASE("the prior term L_T matches MATH.md's oracle values", "[diffusion][bound]") {
  GaussianDiffusion d = make(Prediction::Epsilon, VarianceType::FixedSmall, LossType::Mse, 1000);
  const auto ones = d.prior_nats(Tensor::ones({1, 4}, DType::F64));
  REQUIRE(ones[0] == Approx(2.017956e-05).epsilon(1e-6));
  REQUIRE(ones[0] / kLn2 == Approx(2.911295e-05).epsilon(1e-6));
  REQUIRE(d.prior_nats(Tensor::zeros({1, 4}, DType::F64))[0] == Approx(4.072090e-10).epsilon(1e-5));
}
