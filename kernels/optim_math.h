// The step-dependent optimizer values that a captured training step reads on the device
// (engine/op_args.h adam_step_args::scalars, grad_sum_squares), shared by the CPU and CUDA Adam
// kernels and by the host's uncaptured path, so that both forms round the same way.
#pragma once
#include <cmath>

#include "engine/philox.h"  // DDPM_HOST_DEVICE

namespace ddpm::om {

// Layout of adam_step_args::scalars (float64).
enum AdamScalar : int { kLr = 0, kBias1 = 1, kBias2 = 2, kAdamScalarCount = 3 };

// clip_grad_norm's factor (engine/optim/adam.cpp): max_norm / norm when the norm sqrt(sum_squares)
// exceeds max_norm, else 1 (the gradients are left alone). Double precision, IEEE sqrt and
// division on both sides, so host and device agree bit for bit.
DDPM_HOST_DEVICE double clip_factor(double sum_squares, double max_norm) {
  const double norm = sqrt(sum_squares);
  return norm > max_norm ? max_norm / norm : 1.0;
}

}  // namespace ddpm::om
