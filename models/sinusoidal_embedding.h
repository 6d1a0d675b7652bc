// The sinusoidal time embedding in the general form published checkpoints use (diffusers'
// Timesteps: flip_sin_to_cos, downscale_freq_shift). The engine's own time_features is the special
// case flip = false, shift = 1 (DDPM's); this one serves the other settings.
#pragma once
#include "engine/tensor.h"

namespace ddpm {

// t [N] step indices (any device) -> [N, dim] in `dtype` on t's device, no gradient (t is data):
// f_i = exp(-ln(10000) i / (dim/2 - freq_shift)), features [sin(t f), cos(t f)], or
// [cos(t f), sin(t f)] when flip_sin_to_cos. Computed in float32 the way PyTorch does it (the
// exponent, exp, the product and sin/cos each rounded to float32), so imported models see the
// features they were trained with; float64 models get float64 features.
Tensor sinusoidal_embedding(const Tensor& t, int dim, bool flip_sin_to_cos, int freq_shift, DType dtype);

}  // namespace ddpm
