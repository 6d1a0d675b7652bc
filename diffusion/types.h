// The diffusion layer's enums and their config names: the beta schedule and the training loss,
// and (from the fused ops' vocabulary, engine/diffusion_op_types.h) what the model predicts and
// how the reverse variance is chosen. Each parse_* refuses an unknown name with the valid ones;
// the ddpm program calls them once, when it parses its config (tools/typed_config.cpp).
#pragma once
#include <string>

#include "engine/diffusion_op_types.h"

namespace ddpm {

enum class BetaSchedule { Linear, Cosine, Quadratic, Sigmoid };
enum class LossType { Mse, Kl, RescaledKl, Hybrid };

BetaSchedule parse_beta_schedule(const std::string& name);  // "linear", "cosine", "quadratic", "sigmoid"
Prediction parse_prediction(const std::string& name);       // "epsilon", "x0", "v"
VarianceType parse_variance(const std::string& name);       // "fixed_small", "fixed_large", "learned_range"
LossType parse_loss(const std::string& name);               // "mse", "kl", "rescaled_kl", "hybrid"

const char* beta_schedule_name(BetaSchedule kind);
const char* prediction_name(Prediction p);
const char* variance_name(VarianceType v);
const char* loss_name(LossType l);

}  // namespace ddpm
