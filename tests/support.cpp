#include "tests/support.h"

#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "engine/autograd.h"
#include "engine/ops.h"

namespace ddpm::test {

Tensor randn(const Shape& shape, uint64_t stream, double stddev) {
  return Tensor::normal(shape, 20261122, stream, 0.0, stddev, DType::F64);
}

double worst_ratio(const std::vector<double>& a, const std::vector<double>& b, double rtol, double atol) {
  double worst = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    double r = std::fabs(a[i] - b[i]) / (atol + rtol * std::fabs(b[i]));
    if (!(r <= worst)) worst = std::isnan(r) ? INFINITY : r;
  }
  return worst;
}

double normalized_error(const std::vector<double>& got, const std::vector<double>& want, double floor) {
  double worst = 0, scale = std::max(1e-30, floor);
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    worst = std::max(worst, std::fabs(got[i] - want[i]));
    scale = std::max(scale, std::fabs(want[i]));
  }
  return worst / scale;
}

double normalized_error(const Tensor& got, const Tensor& want, double floor) {
  return normalized_error(got.to_vector(), want.to_vector(), floor);
}

bool all_finite(const Tensor& t) {
  for (double v : t.to_vector())
    if (!std::isfinite(v)) return false;
  return true;
}

void require_close(const std::vector<double>& a, const std::vector<double>& b, double rtol, double atol,
                   const std::string& what) {
  REQUIRE(a.size() == b.size());
  size_t worst_i = 0;
  double worst = -1;
  for (size_t i = 0; i < a.size(); ++i) {
    double r = std::fabs(a[i] - b[i]) / (atol + rtol * std::fabs(b[i]));
    if (std::isnan(r)) r = INFINITY;
    if (r > worst) worst = r, worst_i = i;
  }
  INFO(what << ": worst element " << worst_i << " got " << (a.empty() ? 0 : a[worst_i]) << ", expected "
            << (b.empty() ? 0 : b[worst_i]) << " (rtol " << rtol << ", atol " << atol << ")");
  REQUIRE(worst <= 1.0);
}

namespace {
double weighted_sum(const Tensor& out, const std::vector<double>& weights) {
  std::vector<double> v = out.to_vector();
  double total = 0;
  for (size_t i = 0; i < v.size(); ++i) total += v[i] * weights[i];
  return total;
}
}  // namespace

void check_gradients(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                     const std::vector<Tensor>& inputs, double rtol, double atol, double h) {
  std::vector<Tensor> leaves;
  for (const Tensor& t : inputs) {
    REQUIRE(t.dtype() == DType::F64);
    leaves.push_back(t.clone().set_requires_grad(true));
  }
  Tensor out = f(leaves);
  Tensor upstream = randn(out.shape(), 999);
  const std::vector<double> weights = upstream.to_vector();
  backward(out, upstream);

  NoGradGuard no_grad;
  for (size_t k = 0; k < leaves.size(); ++k) {
    Tensor& x = leaves[k];
    REQUIRE(x.grad().defined());
    const std::vector<double> analytic = x.grad().to_vector();
    std::vector<double> numeric(analytic.size());
    double* p = x.data<double>();
    for (size_t i = 0; i < numeric.size(); ++i) {
      const double saved = p[i];
      p[i] = saved + h;
      double plus = weighted_sum(f(leaves), weights);
      p[i] = saved - h;
      double minus = weighted_sum(f(leaves), weights);
      p[i] = saved;
      numeric[i] = (plus - minus) / (2 * h);
    }
    require_close(analytic, numeric, rtol, atol, "gradient of input " + std::to_string(k));
  }
}

std::vector<uint32_t> float32_bits(const Tensor& t) {
  const Tensor host = t.to(Device::CPU).to(DType::F32);
  std::vector<uint32_t> out(static_cast<size_t>(host.numel()));
  std::memcpy(out.data(), host.raw(), host.nbytes());
  return out;
}

}  // namespace ddpm::test
