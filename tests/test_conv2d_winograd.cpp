// The CPU's Winograd F(2x2, 3x3) convolution (kernels/cpu/conv2d_winograd.*): forward (with bias),
// dx and dW, written and accumulated, against float64 loop nests on the float32-rounded inputs at
// every instruction-set level this machine runs, over awkward shapes (odd output sizes that leave
// half tiles, a 1x1 image, no pad, four-sided and oversized pads, channel counts that are not
// multiples of the vector width or of the transforms' 16-channel runs, one input or output
// channel, more tiles than one thread block); the same through conv2d's backend call under
// DDPM_CPU_CONV=winograd and under the default rule where it picks Winograd; and results that do not depend on
// the number of threads.
#include <catch2/catch.hpp>
#include <omp.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/pad2d.h"
#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/conv2d_winograd.h"
#include "tests/support.h"

namespace {

using ddpm::DType;
using ddpm::Pad2d;
using ddpm::Tensor;
using ddpm::cpu::ConvMethod;
using ddpm::cpu::CpuIsa;
using ddpm::cpu::DirectConvShape;

struct Case {
  int64_t n, h, w, cin, cout;
  Pad2d pad;
  int64_t oh() const { return h + pad.top + pad.bottom - 2; }
  int64_t ow() const { return w + pad.left + pad.right - 2; }
  DirectConvShape shape() const { return {n, h, w, cin, cout, 3, 3, oh(), ow(), 1, pad.top, pad.left}; }
  std::string name() const {
    return std::to_string(n) + "x" + std::to_string(h) + "x" + std::to_string(w) + "x" + std::to_string(cin) + " -> " +
           std::to_string(cout) + " pad (t " + std::to_string(pad.top) + ", b " + std::to_string(pad.bottom) + ", l " +
           std::to_string(pad.left) + ", r " + std::to_string(pad.right) + ")";
  }
};

std::vector<Case> cases() {
  return {
      {2, 7, 7, 32, 32, 1},              // the UNet's 7x7 level: a half tile in each direction
      {1, 9, 11, 17, 33, 1},             // two output blocks with a tail; 17 channels: a 1-channel run
      {2, 1, 1, 20, 24, 1},              // a 1x1 image: one tile, 15 of its 16 taps padding
      {2, 6, 5, 5, 3, 0},                // no pad (5 channels: a partial vector everywhere)
      {1, 6, 9, 8, 12, {2, 0, 1, 2}},    // asymmetric pads
      {1, 5, 6, 3, 4, {2, 2, 2, 2}},     // pads of 2 (dx of the direct rule's limit)
      {2, 5, 5, 1, 16, 1},               // one input channel
      {2, 6, 6, 16, 1, 1},               // one output channel
      {3, 14, 14, 35, 18, 1},            // 147 tiles: several thread blocks, the last one short
  };
}

// out = conv(x, w) + b, and dx and dw, the gradients of sum(out * g), in float64.
void reference(const Case& c, const std::vector<double>& x, const std::vector<double>& w, const std::vector<double>& b,
               const std::vector<double>& g, std::vector<double>& out, std::vector<double>& dx,
               std::vector<double>& dw) {
  const int64_t oh = c.oh(), ow = c.ow();
  out.assign(static_cast<size_t>(c.n * oh * ow * c.cout), 0.0);
  dx.assign(x.size(), 0.0);
  dw.assign(w.size(), 0.0);
  for (int64_t s = 0; s < c.n; ++s)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox)
        for (int64_t co = 0; co < c.cout; ++co) {
          const size_t o = static_cast<size_t>(((s * oh + oy) * ow + ox) * c.cout + co);
          double acc = b[static_cast<size_t>(co)];
          for (int64_t ky = 0; ky < 3; ++ky)
            for (int64_t kx = 0; kx < 3; ++kx) {
              const int64_t iy = oy - c.pad.top + ky, ix = ox - c.pad.left + kx;
              if (iy < 0 || iy >= c.h || ix < 0 || ix >= c.w) continue;
              for (int64_t ci = 0; ci < c.cin; ++ci) {
                const size_t xi = static_cast<size_t>(((s * c.h + iy) * c.w + ix) * c.cin + ci);
                const size_t wi = static_cast<size_t>(((co * 3 + ky) * 3 + kx) * c.cin + ci);
                acc += x[xi] * w[wi];
                dx[xi] += g[o] * w[wi];
                dw[wi] += g[o] * x[xi];
              }
            }
          out[o] = acc;
        }
}

struct Inputs {
  Tensor x, w, b, g;
  std::vector<double> want_out, want_dx, want_dw;
};
Inputs inputs(const Case& c, uint64_t stream) {
  Inputs in{ddpm::test::randn({c.n, c.h, c.w, c.cin}, stream).to(DType::F32),
            ddpm::test::randn({c.cout, 3, 3, c.cin}, stream + 1, 0.3).to(DType::F32),
            ddpm::test::randn({c.cout}, stream + 2).to(DType::F32),
            ddpm::test::randn({c.n, c.oh(), c.ow(), c.cout}, stream + 3).to(DType::F32), {}, {}, {}};
  reference(c, in.x.to_vector(), in.w.to_vector(), in.b.to_vector(), in.g.to_vector(), in.want_out, in.want_dx,
            in.want_dw);
  return in;
}

std::vector<float> floats(const Tensor& t) {
  const float* p = t.data<float>();
  return std::vector<float>(p, p + t.numel());
}
std::vector<double> doubles(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

// Forward, dx and dW straight through the Winograd kernels; accumulate: the gradients start from
// random values and are added to (returned minus those values, in float64).
struct Got {
  std::vector<double> out, dx, dw;
};
std::vector<double> gradient(const Tensor& like, uint64_t stream, bool accumulate,
                             const std::function<void(float*)>& write) {
  const std::vector<float> start = floats(ddpm::test::randn(like.shape(), stream).to(DType::F32));
  std::vector<float> d = accumulate ? start : std::vector<float>(start.size(), std::nanf(""));
  write(d.data());
  std::vector<double> result = doubles(d);
  if (accumulate)
    for (size_t i = 0; i < result.size(); ++i) result[i] -= start[i];
  return result;
}
Got run_kernels(const Case& c, const Inputs& in, bool accumulate) {
  std::vector<float> o(static_cast<size_t>(c.n * c.oh() * c.ow() * c.cout), std::nanf(""));
  ddpm::cpu::winograd_conv2d_forward(c.shape(), in.x.data<float>(), in.w.data<float>(), in.b.data<float>(), o.data());
  Got got{doubles(o), {}, {}};
  got.dx = gradient(in.x, 77, accumulate, [&](float* dx) {
    ddpm::cpu::winograd_conv2d_backward_x(c.shape(), in.g.data<float>(), in.w.data<float>(), dx, accumulate);
  });
  got.dw = gradient(in.w, 78, accumulate, [&](float* dw) {
    ddpm::cpu::winograd_conv2d_backward_w(c.shape(), in.x.data<float>(), in.g.data<float>(), dw, accumulate);
  });
  return got;
}

struct IsaScope {
  CpuIsa previous;
  explicit IsaScope(CpuIsa isa) : previous(ddpm::cpu::set_conv2d_direct_isa(isa)) {}
  ~IsaScope() { ddpm::cpu::set_conv2d_direct_isa(previous); }
};
struct MethodScope {
  ConvMethod previous;
  explicit MethodScope(ConvMethod m) : previous(ddpm::cpu::set_conv2d_method(m)) {}
  ~MethodScope() { ddpm::cpu::set_conv2d_method(previous); }
};

// F(2x2, 3x3)'s transforms add at most a few terms of each sign before and after the products,
// so its error stays within a few times the direct sum's: 1e-5 relative to O(1) results here.
constexpr double kTol = 2e-5;

TEST_CASE("Winograd conv2d forward, dx and dW match float64 at every instruction-set level", "[conv2d_winograd]") {
  uint64_t stream = 900;
  for (CpuIsa isa : {CpuIsa::Generic, CpuIsa::Avx2, CpuIsa::Avx512}) {
    if (isa > ddpm::cpu::best_cpu_isa()) continue;
    IsaScope scope(isa);
    for (const Case& c : cases()) {
      INFO(c.name() << ", " << ddpm::cpu::isa_name(isa));
      REQUIRE(ddpm::cpu::winograd_supported(c.shape()));
      const Inputs in = inputs(c, stream += 10);
      for (bool accumulate : {false, true}) {
        INFO((accumulate ? "accumulating gradients" : "written gradients"));
        const Got got = run_kernels(c, in, accumulate);
        ddpm::test::require_close(got.out, in.want_out, kTol, kTol, "forward vs float64");
        ddpm::test::require_close(got.dx, in.want_dx, kTol, 2 * kTol, "dx vs float64");
        // dW sums over every pixel of the batch (up to 588 here): a larger absolute scale.
        ddpm::test::require_close(got.dw, in.want_dw, kTol, 8 * kTol, "dW vs float64");
      }
    }
  }
}

// Forward and backward through conv2d's backend calls, under the method in force, into buffers
// filled with NaN (so an output the call leaves unwritten fails the comparisons).
struct BackendGot {
  std::vector<double> out, dx, dw, db;
};
BackendGot run_backend(const Case& c, const Inputs& in) {
  ddpm::Backend& cpu = ddpm::cpu_backend();
  Tensor out = Tensor::full({c.n, c.oh(), c.ow(), c.cout}, std::nan(""), DType::F32);
  cpu.conv2d_forward({in.x, in.w, in.b, out, 1, c.pad});
  Tensor dx = Tensor::full(in.x.shape(), std::nan(""), DType::F32);
  Tensor dw = Tensor::full(in.w.shape(), std::nan(""), DType::F32);
  Tensor db = Tensor::full(in.b.shape(), std::nan(""), DType::F32);
  cpu.conv2d_backward({in.g, in.x, in.w, 1, c.pad, {dx, false}, {dw, false}, {db, false}});
  return {out.to_vector(), dx.to_vector(), dw.to_vector(), db.to_vector()};
}

// The backend under `method` against float64.
void check_backend(const Case& c, ConvMethod method, uint64_t stream) {
  MethodScope scope(method);
  INFO(c.name() << ", method " << static_cast<int>(method));
  const Inputs in = inputs(c, stream);
  const BackendGot got = run_backend(c, in);
  ddpm::test::require_close(got.out, in.want_out, kTol, kTol, "forward vs float64");
  ddpm::test::require_close(got.dx, in.want_dx, kTol, 2 * kTol, "dx vs float64");
  ddpm::test::require_close(got.dw, in.want_dw, kTol, 8 * kTol, "dW vs float64");
  std::vector<double> want_db(static_cast<size_t>(c.cout), 0.0);
  const std::vector<double> gv = in.g.to_vector();
  for (size_t i = 0; i < gv.size(); ++i) want_db[i % static_cast<size_t>(c.cout)] += gv[i];
  ddpm::test::require_close(got.db, want_db, kTol, 8 * kTol, "db vs float64");
}

}  // namespace

TEST_CASE("conv2d under DDPM_CPU_CONV=winograd matches float64 through the backend", "[conv2d_winograd]") {
  uint64_t stream = 1300;
  for (const Case& c : cases()) check_backend(c, ConvMethod::Winograd, stream += 10);
}

TEST_CASE("conv2d's default rule takes Winograd at 32+ channels and 8x8+, bit for bit", "[conv2d_winograd]") {
  // Auto must pick Winograd for every part here: the same bits as the kernels called directly.
  const Case c{2, 9, 10, 32, 40, 1};
  check_backend(c, ConvMethod::Auto, 1500);
  const Inputs in = inputs(c, 1500);
  const Got direct_call = run_kernels(c, in, false);
  MethodScope scope(ConvMethod::Auto);
  const BackendGot got = run_backend(c, in);
  REQUIRE(got.out == direct_call.out);
  REQUIRE(got.dx == direct_call.dx);
  REQUIRE(got.dw == direct_call.dw);
}

TEST_CASE("Winograd conv2d gives the same bits with one thread as with several", "[conv2d_winograd]") {
  // 196 tiles: several forward blocks for each thread. 800 tiles: dW in 3 slabs summed apart, of
  // 3 chunks each at 100 input channels.
  for (const Case& c : {Case{4, 14, 14, 32, 40, 1}, Case{2, 40, 40, 100, 20, 1}}) {
    INFO(c.name());
    const Inputs in = inputs(c, 1700);
    const int team = omp_get_max_threads();
    omp_set_num_threads(1);
    const Got one = run_kernels(c, in, false);
    omp_set_num_threads(4);
    const Got four = run_kernels(c, in, false);
    omp_set_num_threads(team);
    REQUIRE(one.out == four.out);
    REQUIRE(one.dx == four.dx);
    REQUIRE(one.dw == four.dw);
    ddpm::test::require_close(four.out, in.want_out, kTol, kTol, "forward vs float64");
    ddpm::test::require_close(four.dx, in.want_dx, kTol, 2 * kTol, "dx vs float64");
    // dW sums 3200 pixels here: the float32 sum's own error grows with the count.
    ddpm::test::require_close(four.dw, in.want_dw, kTol, 40 * kTol, "dW vs float64");
  }
}

TEST_CASE("Winograd applies to 3x3 stride-1 convolutions only, and parses by name", "[conv2d_winograd]") {
  REQUIRE(ddpm::cpu::winograd_supported({1, 5, 5, 4, 4, 3, 3, 5, 5, 1, 1, 1}));
  REQUIRE_FALSE(ddpm::cpu::winograd_supported({1, 5, 5, 4, 4, 3, 3, 3, 3, 2, 1, 1}));  // stride 2
  REQUIRE_FALSE(ddpm::cpu::winograd_supported({1, 5, 5, 4, 4, 1, 1, 5, 5, 1, 0, 0}));  // 1x1
  REQUIRE_FALSE(ddpm::cpu::winograd_supported({1, 5, 5, 4, 4, 1, 3, 5, 3, 1, 0, 0}));  // 1x3
  REQUIRE(ddpm::cpu::parse_conv2d_method("winograd") == ConvMethod::Winograd);
}
