// Test helpers: random tensors, closeness checks and the float64 central-difference gradient check.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace ddpm::test {

// Normal(0, 1) float64 CPU tensor; `stream` picks an independent draw.
Tensor randn(const Shape& shape, uint64_t stream, double stddev = 1.0);

// Largest |a - b| / (atol + rtol |b|) over all elements; <= 1 means close.
double worst_ratio(const std::vector<double>& a, const std::vector<double>& b, double rtol, double atol);

// max |got - want| / max(max |want|, floor, 1e-30): the error relative to the result's scale. `floor`
// is the magnitude of the terms that cancel to form `want`: where the exact result is (near) zero
// while its terms are not (attention's grad_q over one key, GroupNorm's grad_x over two elements),
// rounding leaves an error of a few ulps of the terms, and the bound applies to that scale instead
// of a quotient by zero.
double normalized_error(const std::vector<double>& got, const std::vector<double>& want, double floor = 0);
// The same with got copied to the CPU as float64.
double normalized_error(const Tensor& got, const Tensor& want, double floor = 0);

// The float32 bit patterns of t (any device; other dtypes converted to float32 first), for
// bit-for-bit comparisons.
std::vector<uint32_t> float32_bits(const Tensor& t);

// No NaN or infinity in t (any dtype and device).
bool all_finite(const Tensor& t);

// REQUIREs a and b equal in size and elementwise close, naming `what` and the worst element.
void require_close(const std::vector<double>& a, const std::vector<double>& b, double rtol, double atol,
                   const std::string& what);

// Checks the gradient of every input of f by float64 central differences: L = sum(f(x) * R) for a
// random R; analytic dL/dx from backward() is compared with (L(x + h) - L(x - h)) / 2h.
// Inputs must be float64 CPU tensors; they are copied, so the caller's tensors are untouched.
void check_gradients(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                     const std::vector<Tensor>& inputs, double rtol = 1e-6, double atol = 1e-8,
                     double h = 1e-6);

}  // namespace ddpm::test
