// The vocabulary of the fused diffusion ops (q_sample, reverse_step, solver_step, vlb_term in
// engine/ops.def): which table row holds which coefficient, and how a model output is read. These
// are the ops' own argument types, so they live in the engine; the diffusion layer re-exports them
// with their config names and the diffusion-only enums in diffusion/types.h.
#pragma once
#include <cstdint>

namespace ddpm {

// Per-step coefficient tables: a [kCoefCount, T] tensor, row r = DiffusionCoef r, column = step.
enum DiffusionCoef : int {
  kSqrtAbar,              // sqrt(abar_t)
  kSqrtOneMinusAbar,      // sqrt(1 - abar_t)
  kSqrtRecipAbar,         // 1 / sqrt(abar_t)
  kSqrtRecipm1Abar,       // sqrt(1 / abar_t - 1)
  kPosteriorCoef1,        // x_0 coefficient of mu_tilde
  kPosteriorCoef2,        // x_t coefficient of mu_tilde
  kPosteriorLogVar,       // log beta_tilde_t, clipped at t = 0 (fixed-small and learned-range floor)
  kLargeLogVar,           // log [beta_tilde_1, beta_1, beta_2, ...] (fixed-large)
  kLogBeta,               // log beta_t (learned-range ceiling)
  kAbar,                  // abar_t
  kAbarPrev,              // abar_{t-1}, 1 at t = 0
  kCoefCount
};
enum class Prediction : uint8_t { Epsilon, X0, V };
enum class VarianceType : uint8_t { FixedSmall, FixedLarge, LearnedRange };

}  // namespace ddpm
