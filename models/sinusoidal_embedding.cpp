#include "models/sinusoidal_embedding.h"

#include <cmath>
#include <vector>

#include "engine/error.h"

namespace ddpm {

namespace {
template <class T>
std::vector<T> features(const std::vector<double>& steps, int dim, bool flip, int shift) {
  const int half = dim / 2;
  std::vector<T> out(steps.size() * static_cast<size_t>(dim));
  for (size_t b = 0; b < steps.size(); ++b)
    for (int i = 0; i < half; ++i) {
      const T exponent = static_cast<T>(-std::log(10000.0)) * static_cast<T>(i) / static_cast<T>(half - shift);
      const T arg = static_cast<T>(steps[b]) * std::exp(exponent);
      const T s = std::sin(arg), c = std::cos(arg);
      out[b * static_cast<size_t>(dim) + static_cast<size_t>(i)] = flip ? c : s;
      out[b * static_cast<size_t>(dim) + static_cast<size_t>(half + i)] = flip ? s : c;
    }
  return out;
}
}  // namespace

Tensor sinusoidal_embedding(const Tensor& t, int dim, bool flip_sin_to_cos, int freq_shift, DType dtype) {
  DDPM_CHECK(t.rank() == 1, "sinusoidal_embedding: t must be [N], got ", shape_str(t.shape()));
  DDPM_CHECK(dim >= 2 && dim % 2 == 0 && dim / 2 != freq_shift, "sinusoidal_embedding: dim ", dim,
             " must be even, at least 2 and not 2 * freq_shift (", freq_shift, ")");
  const Tensor host = t.to(Device::CPU).to(DType::F64);
  const std::vector<double> steps(host.data<double>(), host.data<double>() + host.numel());
  const Shape shape{t.dim(0), dim};
  Tensor out = dtype == DType::F64
                   ? Tensor::from_vector(features<double>(steps, dim, flip_sin_to_cos, freq_shift), shape, DType::F64)
                   : Tensor::from_vector(features<float>(steps, dim, flip_sin_to_cos, freq_shift), shape).to(dtype);
  return out.to(t.device());
}

}  // namespace ddpm
