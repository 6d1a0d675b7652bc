// The CPU's direct float32 convolution (kernels/cpu/conv2d_direct.*) at every instruction-set level
// this machine runs: forward, dx, dW and db against float64 loop nests on the float32-rounded
// inputs, and against the im2col + GEMM path, over awkward shapes (odd sizes, stride 2, four-sided
// and oversized pads, rectangular kernels, channel counts that are not multiples of the vector
// width, one input or output channel, batch 1); the write/accumulate rule; the timed choice.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/pad2d.h"
#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/conv2d_direct.h"
#include "tests/support.h"

namespace {

using ddpm::DType;
using ddpm::Pad2d;
using ddpm::Tensor;
using ddpm::cpu::ConvMethod;
using ddpm::cpu::CpuIsa;

struct Case {
  int64_t n, h, w, cin, cout, kh, kw;
  int stride;
  Pad2d pad;
  std::string name() const {
    return std::to_string(n) + "x" + std::to_string(h) + "x" + std::to_string(w) + "x" + std::to_string(cin) + " -> " +
           std::to_string(cout) + ", " + std::to_string(kh) + "x" + std::to_string(kw) + " stride " +
           std::to_string(stride) + " pad (t " + std::to_string(pad.top) + ", b " + std::to_string(pad.bottom) +
           ", l " + std::to_string(pad.left) + ", r " + std::to_string(pad.right) + ")";
  }
  int64_t oh() const { return (h + pad.top + pad.bottom - kh) / stride + 1; }
  int64_t ow() const { return (w + pad.left + pad.right - kw) / stride + 1; }
};

std::vector<Case> cases() {
  return {
      {2, 5, 7, 3, 4, 3, 3, 1, 1},                // small, odd
      {1, 9, 11, 17, 33, 3, 3, 1, 1},             // two output blocks with a tail, 17 channels, batch 1
      {3, 8, 8, 16, 20, 3, 3, 2, 1},              // stride 2
      {2, 7, 6, 5, 7, 3, 3, 2, {0, 1, 0, 1}},     // TF-style four-sided pad
      {2, 6, 9, 8, 12, 3, 3, 1, {2, 0, 1, 2}},    // asymmetric pads
      {1, 5, 6, 3, 4, 3, 3, 1, {3, 0, 0, 3}},     // a pad wider than the kernel: dx falls back to GEMM
      {1, 4, 31, 4, 3, 3, 3, 1, 0},               // a 29-pixel row: several tiles at every level
      {2, 5, 5, 1, 32, 3, 3, 1, 1},               // one input channel (the UNet's first conv)
      {2, 6, 6, 32, 1, 3, 3, 1, 1},               // one output channel (its last)
      {2, 6, 7, 6, 5, 1, 3, 1, {0, 0, 1, 1}},     // rectangular kernel
      {2, 4, 5, 3, 40, 1, 1, 1, 0},               // pointwise (the direct kernels when forced)
      {2, 7, 7, 35, 18, 3, 3, 1, 1},              // 35 input channels: three dW vectors at AVX-512
      {1, 5, 6, 3, 4, 3, 3, 1, {0, 3, 0, 3}},     // bottom/right pads past the kernel: dx crops g
      {2, 10, 10, 16, 8, 3, 3, 2, 0},             // unpadded input read in place, last row and column unused
  };
}

// out [N,OH,OW,Cout] = conv(x, w) + b in float64, and the gradients for upstream g.
struct Reference {
  std::vector<double> out, dx, dw, db;
};
Reference reference(const Case& c, const std::vector<double>& x, const std::vector<double>& w,
                    const std::vector<double>& b, const std::vector<double>& g) {
  const int64_t oh = c.oh(), ow = c.ow();
  Reference r{std::vector<double>(static_cast<size_t>(c.n * oh * ow * c.cout)),
              std::vector<double>(x.size()), std::vector<double>(w.size()), std::vector<double>(b.size())};
  for (int64_t s = 0; s < c.n; ++s)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox)
        for (int64_t co = 0; co < c.cout; ++co) {
          const size_t o = static_cast<size_t>(((s * oh + oy) * ow + ox) * c.cout + co);
          double acc = b[static_cast<size_t>(co)];
          r.db[static_cast<size_t>(co)] += g[o];
          for (int64_t ky = 0; ky < c.kh; ++ky)
            for (int64_t kx = 0; kx < c.kw; ++kx) {
              const int64_t iy = oy * c.stride - c.pad.top + ky, ix = ox * c.stride - c.pad.left + kx;
              if (iy < 0 || iy >= c.h || ix < 0 || ix >= c.w) continue;
              for (int64_t ci = 0; ci < c.cin; ++ci) {
                const size_t xi = static_cast<size_t>(((s * c.h + iy) * c.w + ix) * c.cin + ci);
                const size_t wi = static_cast<size_t>(((co * c.kh + ky) * c.kw + kx) * c.cin + ci);
                acc += x[xi] * w[wi];
                r.dx[xi] += g[o] * w[wi];
                r.dw[wi] += g[o] * x[xi];
              }
            }
          r.out[o] = acc;
        }
  return r;
}

struct Result {
  std::vector<double> out, dx, dw, db;
};

// Forward and backward of c through the CPU backend in float32; accumulate: the gradient slots
// start from `start` values and are added to (the results are returned minus those values).
Result run(const Case& c, const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& g, bool accumulate) {
  ddpm::Backend& cpu = ddpm::cpu_backend();
  Tensor out = Tensor::full({c.n, c.oh(), c.ow(), c.cout}, std::numeric_limits<double>::quiet_NaN(), DType::F32);
  cpu.conv2d_forward({x, w, b, out, c.stride, c.pad});
  auto slot = [&](const Tensor& like, uint64_t stream) {
    return accumulate ? ddpm::test::randn(like.shape(), stream).to(DType::F32)
                      : Tensor::full(like.shape(), std::numeric_limits<double>::quiet_NaN(), DType::F32);
  };
  Tensor dx = slot(x, 71), dw = slot(w, 72), db = slot(b, 73);
  const std::vector<double> dx0 = dx.to_vector(), dw0 = dw.to_vector(), db0 = db.to_vector();
  cpu.conv2d_backward({g, x, w, c.stride, c.pad, {dx, accumulate}, {dw, accumulate}, {db, accumulate}});
  auto minus = [&](std::vector<double> v, const std::vector<double>& v0) {
    if (accumulate)
      for (size_t i = 0; i < v.size(); ++i) v[i] -= v0[i];
    return v;
  };
  return {out.to_vector(), minus(dx.to_vector(), dx0), minus(dw.to_vector(), dw0), minus(db.to_vector(), db0)};
}

// Restores the process-wide method and level when a test ends.
struct MethodScope {
  ConvMethod method;
  CpuIsa isa;
  MethodScope(ConvMethod m, CpuIsa i)
      : method(ddpm::cpu::set_conv2d_method(m)), isa(ddpm::cpu::set_conv2d_direct_isa(i)) {}
  ~MethodScope() {
    ddpm::cpu::set_conv2d_method(method);
    ddpm::cpu::set_conv2d_direct_isa(isa);
  }
};

std::vector<CpuIsa> levels_here() {
  std::vector<CpuIsa> levels;
  for (CpuIsa isa : {CpuIsa::Generic, CpuIsa::Avx2, CpuIsa::Avx512})
    if (isa <= ddpm::cpu::best_cpu_isa()) levels.push_back(isa);
  return levels;
}

// Checks every part of c under `method` at `isa` against the float64 reference and the GEMM path.
void check_case(const Case& c, ConvMethod method, CpuIsa isa, uint64_t stream) {
  INFO(c.name() << ", method " << static_cast<int>(method) << ", " << ddpm::cpu::isa_name(isa));
  const Tensor x = ddpm::test::randn({c.n, c.h, c.w, c.cin}, stream).to(DType::F32);
  const Tensor w = ddpm::test::randn({c.cout, c.kh, c.kw, c.cin}, stream + 1, 0.3).to(DType::F32);
  const Tensor b = ddpm::test::randn({c.cout}, stream + 2).to(DType::F32);
  const Tensor g = ddpm::test::randn({c.n, c.oh(), c.ow(), c.cout}, stream + 3).to(DType::F32);
  // The reference sees the float32-rounded inputs, so only float32 arithmetic separates them:
  // sums of at most a few hundred O(1) products (dW: up to 2 * 9 * 31 pixels).
  const Reference want = reference(c, x.to_vector(), w.to_vector(), b.to_vector(), g.to_vector());
  Result gemm;
  {
    MethodScope scope(ConvMethod::Gemm, isa);
    gemm = run(c, x, w, b, g, false);
  }
  MethodScope scope(method, isa);
  for (bool accumulate : {false, true}) {
    INFO((accumulate ? "accumulating slots" : "written slots"));
    const Result got = run(c, x, w, b, g, accumulate);
    const double tol = accumulate ? 2e-5 : 1e-5;  // + start - start rounds once more
    ddpm::test::require_close(got.out, want.out, tol, tol, "forward vs float64");
    ddpm::test::require_close(got.dx, want.dx, tol, tol, "dx vs float64");
    ddpm::test::require_close(got.dw, want.dw, tol, 4 * tol, "dW vs float64");
    ddpm::test::require_close(got.db, want.db, tol, 4 * tol, "db vs float64");
    ddpm::test::require_close(got.out, gemm.out, tol, tol, "forward vs im2col + GEMM");
    ddpm::test::require_close(got.dx, gemm.dx, tol, tol, "dx vs im2col + GEMM");
    ddpm::test::require_close(got.dw, gemm.dw, tol, 4 * tol, "dW vs im2col + GEMM");
  }
}

}  // namespace

TEST_CASE("direct conv2d matches float64 and im2col + GEMM at every instruction-set level", "[conv2d_direct]") {
  uint64_t stream = 100;
  for (CpuIsa isa : levels_here())
    for (const Case& c : cases()) check_case(c, ConvMethod::Direct, isa, stream += 10);
}

TEST_CASE("conv2d's default and timed choices give the same gradients as the definition", "[conv2d_direct]") {
  // Timed mode runs both methods into scratch at first use: the slots must see one result only.
  uint64_t stream = 500;
  for (ConvMethod method : {ConvMethod::Auto, ConvMethod::Timed})
    for (const Case& c : cases()) check_case(c, method, ddpm::cpu::best_cpu_isa(), stream += 10);
}

TEST_CASE("direct conv2d's level is clamped to the CPU's and the method parses by name", "[conv2d_direct]") {
  const CpuIsa best = ddpm::cpu::best_cpu_isa();
  const CpuIsa previous = ddpm::cpu::set_conv2d_direct_isa(CpuIsa::Avx512);
  REQUIRE(ddpm::cpu::set_conv2d_direct_isa(CpuIsa::Generic) == best);  // Avx512 asked, best granted
  REQUIRE(ddpm::cpu::set_conv2d_direct_isa(previous) == CpuIsa::Generic);
  REQUIRE(ddpm::cpu::parse_conv2d_method("timed") == ConvMethod::Timed);
  REQUIRE(ddpm::cpu::parse_conv2d_method("gemm") == ConvMethod::Gemm);
  REQUIRE_THROWS_WITH(ddpm::cpu::parse_conv2d_method("fast"),
                      Catch::Contains("DDPM_CPU_CONV") && Catch::Contains("fast") && Catch::Contains("auto"));
}
