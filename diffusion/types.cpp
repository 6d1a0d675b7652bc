#include "diffusion/types.h"

#include <initializer_list>

#include "engine/error.h"

namespace ddpm {

namespace {
template <class E>
E parse_enum(const char* what, const std::string& name, std::initializer_list<E> all, const char* (*to_name)(E)) {
  std::string valid;
  for (E e : all) {
    if (name == to_name(e)) return e;
    valid += (valid.empty() ? "" : ", ") + std::string(to_name(e));
  }
  detail::fail("diffusion: unknown ", what, " '", name, "'; valid: ", valid);
}
}  // namespace

BetaSchedule parse_beta_schedule(const std::string& name) {
  for (BetaSchedule k : {BetaSchedule::Linear, BetaSchedule::Cosine, BetaSchedule::Quadratic, BetaSchedule::Sigmoid})
    if (name == beta_schedule_name(k)) return k;
  detail::fail("schedule: unknown beta schedule '", name, "'; valid: linear, cosine, quadratic, sigmoid");
}
Prediction parse_prediction(const std::string& name) {
  return parse_enum("prediction", name, {Prediction::Epsilon, Prediction::X0, Prediction::V}, prediction_name);
}
VarianceType parse_variance(const std::string& name) {
  return parse_enum("variance", name,
                    {VarianceType::FixedSmall, VarianceType::FixedLarge, VarianceType::LearnedRange}, variance_name);
}
LossType parse_loss(const std::string& name) {
  return parse_enum("loss", name, {LossType::Mse, LossType::Kl, LossType::RescaledKl, LossType::Hybrid}, loss_name);
}

const char* beta_schedule_name(BetaSchedule kind) {
  switch (kind) {
    case BetaSchedule::Linear: return "linear";
    case BetaSchedule::Cosine: return "cosine";
    case BetaSchedule::Quadratic: return "quadratic";
    case BetaSchedule::Sigmoid: return "sigmoid";
  }
  return "?";
}
const char* prediction_name(Prediction p) {
  switch (p) {
    case Prediction::Epsilon: return "epsilon";
    case Prediction::X0: return "x0";
    case Prediction::V: return "v";
  }
  return "?";
}
const char* variance_name(VarianceType v) {
  switch (v) {
    case VarianceType::FixedSmall: return "fixed_small";
    case VarianceType::FixedLarge: return "fixed_large";
    case VarianceType::LearnedRange: return "learned_range";
  }
  return "?";
}
const char* loss_name(LossType l) {
  switch (l) {
    case LossType::Mse: return "mse";
    case LossType::Kl: return "kl";
    case LossType::RescaledKl: return "rescaled_kl";
    case LossType::Hybrid: return "hybrid";
  }
  return "?";
}

}  // namespace ddpm
