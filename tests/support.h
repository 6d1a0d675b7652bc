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
