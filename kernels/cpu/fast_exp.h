// exp for the float32 CPU kernels in a form the compiler vectorizes (std::exp is one libm call per
// element; SiLU and softmax spend most of their time there). float64 keeps std::exp: it is the
// reference the gradient checks run in.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace ddpm::cpu {

// x = n ln2 + r with |r| <= ln2 / 2 (ln2 split in two for an exact n ln2), e^r by its degree-6
// Taylor polynomial (truncation error r^7 / 7! < 7e-8 relative), 2^n from the exponent bits.
// Relative error below 3e-7 over the clamped range [-87, 88] (where e^x is a normal float).
// Branch-free, so loops over it vectorize (the file must not be built with -ffast-math: the
// rounding trick needs strict float addition).
inline float exp_vectorizable(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  // Round x / ln2 to the nearest integer without a branch: adding 1.5 * 2^23 leaves no fraction bits.
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = (x - n * 0.693145751953125f) - n * 1.428606765330187e-06f;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}
inline double exp_vectorizable(double x) { return std::exp(x); }

}  // namespace ddpm::cpu
