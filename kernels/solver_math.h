// The per-element formula of the solver_step kernel (engine/op_args.h), shared by the CPU and CUDA
// kernels: the data prediction from the model output, then a linear combination with earlier data
// predictions and noise. The step coefficients are computed on the host (diffusion/solvers.cpp).
#pragma once
#include "engine/op_args.h"
#include "engine/philox.h"  // DDPM_HOST_DEVICE

namespace ddpm::dm {

// The scalar settings of solver_step_args, as a plain struct a CUDA kernel can take by value.
struct SolverStep {
  Prediction prediction;
  bool clip;
  double in_alpha, in_sigma, c_x, c_d0, c_d1, c_d2, c_z;
};
inline SolverStep solver_settings(const solver_step_args& a) {
  return {a.prediction, a.clip, a.in_alpha, a.in_sigma, a.c_x, a.c_d0, a.c_d1, a.c_d2, a.c_z};
}

// x0_hat at a point y of noise level (alpha, sigma) from the model output there.
template <class T>
DDPM_HOST_DEVICE T data_prediction(Prediction p, bool clip, T alpha, T sigma, T y, T out) {
  T x0;
  switch (p) {
    case Prediction::Epsilon: x0 = (y - sigma * out) / alpha; break;
    case Prediction::V: x0 = alpha * y - sigma * out; break;
    default: x0 = out; break;  // Prediction::X0
  }
  if (clip) x0 = x0 < T(-1) ? T(-1) : (x0 > T(1) ? T(1) : x0);
  return x0;
}

// One element: returns x_next; *d0 receives the data prediction (0 without a model output).
template <class T>
DDPM_HOST_DEVICE T solver_element(const SolverStep& s, T x, T y, const T* out, T d1, T d2, T z, T* d0) {
  *d0 = out ? data_prediction(s.prediction, s.clip, T(s.in_alpha), T(s.in_sigma), y, *out) : T(0);
  return T(s.c_x) * x + T(s.c_d0) * *d0 + T(s.c_d1) * d1 + T(s.c_d2) * d2 + T(s.c_z) * z;
}

}  // namespace ddpm::dm
