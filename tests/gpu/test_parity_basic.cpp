// CPU-versus-CUDA parity of the basic op families (elementwise, linear, resample, dropout and
// timestep embedding, reductions, fill/cast, Adam/EMA), the caching allocator's steady state, and
// dtype errors. Each op runs on the CPU in float64 on the inputs as the GPU sees them
// (test::as_seen) and on the GPU in float32 and bfloat16; GPU outputs live in guarded buffers.
//
// Bounds (normalized error, see tests/gpu/parity.h): float32 1e-5 (float32 math, double or
// float32 accumulation), bfloat16 2e-2 (the output's 8-bit significand). A written gradient slot
// starts as NaN on the GPU, so a kernel that reads a slot it should only write fails the finite
// check; an accumulated slot starts from the same random values on both sides.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/backend.h"
#include "engine/storage.h"
#include "kernels/cuda/allocator_stats.h"
#include "tests/gpu/parity.h"
#include "tests/support.h"

using namespace ddpm;

namespace {

Backend& cpu() { return cpu_backend(); }
Backend& gpu() { return cuda_backend(); }

const DType kDtypes[] = {DType::F32, DType::BF16};
double bound_for(DType dt) { return dt == DType::F32 ? test::kBoundF32 : test::kBoundBF16; }

std::string label(const std::string& op, DType dt, const Shape& shape) {
  return op + " " + dtype_name(dt) + " " + shape_str(shape);
}

using test::In;
using test::input;
using test::Out;
using test::output;

void check(const Out& o, DType dt, const std::string& what, double bound = -1) {
  test::require_parity(o.gpu, o.cpu, bound < 0 ? bound_for(dt) : bound,
                       what + (o.accumulate ? " (accumulate)" : " (write)"));
}

const bool kModes[] = {false, true};  // GradSlot: write, accumulate

void require_equal(const Tensor& got, const Tensor& want, const std::string& what) {
  INFO(what);
  const std::vector<double> g = got.to_vector(), w = want.to_vector();
  REQUIRE(g.size() == w.size());
  size_t mismatches = 0, first = 0;
  for (size_t i = 0; i < g.size(); ++i)
    if (!(g[i] == w[i]) && !(std::isnan(g[i]) && std::isnan(w[i])) && mismatches++ == 0) first = i;
  INFO(mismatches << " mismatches; first at " << first << ": got " << g[first] << ", want " << w[first]);
  REQUIRE(mismatches == 0);
}

// A view of `count` elements of base starting `first` elements in (to reach unaligned pointers).
Tensor view_at(const Tensor& base, int64_t first, int64_t count) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.impl().storage;
  impl->offset = base.impl().offset + static_cast<size_t>(first) * dtype_size(base.dtype());
  impl->shape = {count};
  impl->dtype = base.dtype();
  impl->device = base.device();
  return Tensor(std::move(impl));
}

// The DDPM UNet's NHWC maps at batch 2 plus awkward sizes.
const std::vector<Shape> kMaps = {{2, 32, 32, 128}, {2, 16, 16, 256}, {2, 8, 8, 512}, {2, 4, 4, 512},
                                  {3, 5, 7},        {2, 8, 8, 33},    {4, 4, 100},    {2, 3, 3, 3}};

struct BinaryOp {
  const char* name;
  void (Backend::*forward)(const BinaryFwd&);
  void (Backend::*backward)(const BinaryBwd&);
};
const BinaryOp kBinaryOps[] = {{"add", &Backend::add_forward, &Backend::add_backward},
                               {"sub", &Backend::sub_forward, &Backend::sub_backward},
                               {"mul", &Backend::mul_forward, &Backend::mul_backward}};

}  // namespace

TEST_CASE("CUDA add, sub and mul match the CPU, b broadcast into a", "[gpu][parity][elementwise]") {
  // (a, b): bias-like, per-sample channels, same shape, per-sample scalar, scalar, and patterns
  // that alternate kept and broadcast axes.
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{2, 32, 32, 128}, {128}},     {{2, 16, 16, 256}, {2, 1, 1, 256}}, {{2, 8, 8, 512}, {2, 8, 8, 512}},
      {{2, 4, 4, 512}, {2, 1, 1, 1}}, {{3, 5, 7}, {5, 1}},               {{3, 5, 7}, {7}},
      {{3, 5, 7}, {3, 1, 7}},         {{3, 5, 7}, {}},                   {{2, 8, 8, 33}, {33}},
      {{4, 4, 100}, {4, 1, 100}},     {{2, 3, 4, 5}, {3, 1, 5}},         {{2, 16, 16, 3}, {1, 16, 1, 3}}};
  for (DType dt : kDtypes)
    for (const auto& [a_shape, b_shape] : cases)
      for (const BinaryOp& op : kBinaryOps) {
        const std::string what = label(op.name, dt, a_shape) + " b " + shape_str(b_shape);
        const In a = input(test::randn(a_shape, 1), dt), b = input(test::randn(b_shape, 2), dt);
        Out out = output(a_shape, dt);
        (cpu().*op.forward)({a.cpu, b.cpu, out.cpu});
        (gpu().*op.forward)({a.gpu, b.gpu, out.gpu.tensor});
        check(out, dt, what + " forward");

        const In g = input(test::randn(a_shape, 3), dt);
        for (bool acc : kModes) {
          Out ga = output(a_shape, dt, acc, 4), gb = output(b_shape, dt, acc, 5);
          (cpu().*op.backward)({g.cpu, a.cpu, b.cpu, ga.cpu_slot(), gb.cpu_slot()});
          (gpu().*op.backward)({g.gpu, a.gpu, b.gpu, ga.gpu_slot(), gb.gpu_slot()});
          check(ga, dt, what + " grad_a");
          check(gb, dt, what + " grad_b");
        }
        // Only b's gradient wanted: grad_a is skipped, not written.
        Out gb = output(b_shape, dt);
        (cpu().*op.backward)({g.cpu, a.cpu, b.cpu, GradSlot{}, gb.cpu_slot()});
        (gpu().*op.backward)({g.gpu, a.gpu, b.gpu, GradSlot{}, gb.gpu_slot()});
        check(gb, dt, what + " grad_b only");
      }
}

TEST_CASE("CUDA scale and silu match the CPU", "[gpu][parity][elementwise]") {
  for (DType dt : kDtypes)
    for (const Shape& shape : kMaps) {
      const In x = input(test::randn(shape, 10, 3.0), dt), g = input(test::randn(shape, 11), dt);

      Out scaled = output(shape, dt), act = output(shape, dt);
      cpu().scale_forward({x.cpu, scaled.cpu, -0.37});
      gpu().scale_forward({x.gpu, scaled.gpu.tensor, -0.37});
      check(scaled, dt, label("scale", dt, shape) + " forward");
      cpu().silu_forward({x.cpu, act.cpu});
      gpu().silu_forward({x.gpu, act.gpu.tensor});
      check(act, dt, label("silu", dt, shape) + " forward");

      for (bool acc : kModes) {
        Out gs = output(shape, dt, acc, 12), gx = output(shape, dt, acc, 13);
        cpu().scale_backward({g.cpu, 2.5, gs.cpu_slot()});
        gpu().scale_backward({g.gpu, 2.5, gs.gpu_slot()});
        check(gs, dt, label("scale", dt, shape) + " backward");
        cpu().silu_backward({g.cpu, x.cpu, gx.cpu_slot()});
        gpu().silu_backward({g.gpu, x.gpu, gx.gpu_slot()});
        check(gx, dt, label("silu", dt, shape) + " backward");
      }
    }
}

TEST_CASE("CUDA scale may write in place (gradient clipping)", "[gpu][parity][elementwise]") {
  for (DType dt : kDtypes) {
    const Shape shape{1000003};
    const In x = input(test::randn(shape, 14), dt);
    test::Guarded inplace = test::guarded_copy(test::randn(shape, 14), dt);
    Tensor want = Tensor::empty(shape, DType::F64);
    cpu().scale_forward({x.cpu, want, 0.125});
    gpu().scale_forward({inplace.tensor, inplace.tensor, 0.125});
    test::require_parity(inplace, want, bound_for(dt), label("scale in place", dt, shape));
  }
}

TEST_CASE("CUDA linear matches the CPU (cuBLAS, float32 accumulation)", "[gpu][parity][linear]") {
  struct Case {
    Shape x;
    int64_t out_features;
    bool bias;
  };
  // attention projections at 32x32 and 16x16, the time-embedding MLP, awkward sizes
  const std::vector<Case> cases = {{{2, 32, 32, 128}, 128, true}, {{2, 16, 16, 256}, 256, true},
                                   {{2, 128}, 512, true},         {{2, 512}, 512, false},
                                   {{3, 5, 7}, 33, false},        {{2, 100}, 3, true}};
  for (DType dt : kDtypes)
    for (const Case& c : cases) {
      const int64_t in_features = c.x.back();
      Shape out_shape = c.x;
      out_shape.back() = c.out_features;
      const Shape w_shape{c.out_features, in_features};
      const std::string what = label("linear", dt, c.x) + " -> " + std::to_string(c.out_features);
      const In x = input(test::randn(c.x, 20), dt), w = input(test::randn(w_shape, 21, 0.1), dt);
      const In b = c.bias ? input(test::randn({c.out_features}, 22), dt) : In{};
      Out out = output(out_shape, dt);
      cpu().linear_forward({x.cpu, w.cpu, b.cpu, out.cpu});
      gpu().linear_forward({x.gpu, w.gpu, b.gpu, out.gpu.tensor});
      check(out, dt, what + " forward");

      const In g = input(test::randn(out_shape, 23), dt);
      for (bool acc : kModes) {
        Out gx = output(c.x, dt, acc, 24), gw = output(w_shape, dt, acc, 25);
        Out gb = output({c.out_features}, dt, acc, 26);
        const GradSlot cpu_gb = c.bias ? gb.cpu_slot() : GradSlot{};
        const GradSlot gpu_gb = c.bias ? gb.gpu_slot() : GradSlot{};
        cpu().linear_backward({g.cpu, x.cpu, w.cpu, gx.cpu_slot(), gw.cpu_slot(), cpu_gb});
        gpu().linear_backward({g.gpu, x.gpu, w.gpu, gx.gpu_slot(), gw.gpu_slot(), gpu_gb});
        check(gx, dt, what + " grad_x");
        check(gw, dt, what + " grad_weight");
        if (c.bias) check(gb, dt, what + " grad_bias");
      }
    }
}

TEST_CASE("CUDA upsample2x matches the CPU", "[gpu][parity][resample]") {
  const std::vector<Shape> shapes = {{2, 4, 4, 512}, {2, 8, 8, 256}, {2, 16, 16, 128}, {3, 5, 7, 3}, {1, 3, 2, 33}};
  for (DType dt : kDtypes)
    for (const Shape& shape : shapes) {
      const Shape up{shape[0], 2 * shape[1], 2 * shape[2], shape[3]};
      const In x = input(test::randn(shape, 30), dt), g = input(test::randn(up, 31), dt);
      Out out = output(up, dt);
      cpu().upsample2x_forward({x.cpu, out.cpu});
      gpu().upsample2x_forward({x.gpu, out.gpu.tensor});
      check(out, dt, label("upsample2x", dt, shape) + " forward");
      for (bool acc : kModes) {
        Out gx = output(shape, dt, acc, 32);
        cpu().upsample2x_backward({g.cpu, gx.cpu_slot()});
        gpu().upsample2x_backward({g.gpu, gx.gpu_slot()});
        check(gx, dt, label("upsample2x", dt, shape) + " backward");
      }
    }
}

TEST_CASE("CUDA concat matches the CPU", "[gpu][parity][resample]") {
  const std::vector<std::pair<Shape, Shape>> cases = {{{2, 16, 16, 256}, {2, 16, 16, 128}},
                                                      {{2, 4, 4, 512}, {2, 4, 4, 512}},
                                                      {{3, 5, 7, 3}, {3, 5, 7, 33}},
                                                      {{2, 8, 8, 100}, {2, 8, 8, 1}}};
  for (DType dt : kDtypes)
    for (const auto& [a_shape, b_shape] : cases) {
      Shape out_shape = a_shape;
      out_shape.back() += b_shape.back();
      const std::string what = label("concat", dt, a_shape) + " + " + shape_str(b_shape);
      const In a = input(test::randn(a_shape, 40), dt), b = input(test::randn(b_shape, 41), dt);
      const In g = input(test::randn(out_shape, 42), dt);
      Out out = output(out_shape, dt);
      cpu().concat_forward({a.cpu, b.cpu, out.cpu});
      gpu().concat_forward({a.gpu, b.gpu, out.gpu.tensor});
      check(out, dt, what + " forward");
      for (bool acc : kModes) {
        Out ga = output(a_shape, dt, acc, 43), gb = output(b_shape, dt, acc, 44);
        cpu().concat_backward({g.cpu, ga.cpu_slot(), gb.cpu_slot()});
        gpu().concat_backward({g.gpu, ga.gpu_slot(), gb.gpu_slot()});
        check(ga, dt, what + " grad_a");
        check(gb, dt, what + " grad_b");
      }
      Out gb = output(b_shape, dt);
      cpu().concat_backward({g.cpu, GradSlot{}, gb.cpu_slot()});
      gpu().concat_backward({g.gpu, GradSlot{}, gb.gpu_slot()});
      check(gb, dt, what + " grad_b only");
    }
}

// Reference computed here, not by the CPU backend, so this test stands on its own.
TEST_CASE("CUDA channel_slice takes a channel range and scatters its gradient back", "[gpu][parity][resample]") {
  struct Case {
    Shape x;
    int64_t begin, end;
  };
  const std::vector<Case> cases = {
      {{2, 8, 8, 512}, 128, 384}, {{3, 5, 7, 33}, 3, 20}, {{2, 4, 4, 100}, 0, 100}, {{2, 4, 4, 100}, 99, 100}};
  for (DType dt : kDtypes)
    for (const Case& c : cases) {
      const int64_t channels = c.x.back(), width = c.end - c.begin, rows = numel(c.x) / channels;
      Shape out_shape = c.x;
      out_shape.back() = width;
      const std::string what = label("channel_slice", dt, c.x) + " [" + std::to_string(c.begin) + ", " +
                               std::to_string(c.end) + ")";
      const In x = input(test::randn(c.x, 50), dt), g = input(test::randn(out_shape, 51), dt);
      const std::vector<double> xv = x.cpu.to_vector(), gv = g.cpu.to_vector();

      Out out = output(out_shape, dt);
      std::vector<double> want(static_cast<size_t>(rows * width));
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t k = 0; k < width; ++k)
          want[static_cast<size_t>(r * width + k)] = xv[static_cast<size_t>(r * channels + c.begin + k)];
      out.cpu = Tensor::from_vector(want, out_shape, DType::F64);
      gpu().channel_slice_forward({x.gpu, out.gpu.tensor, c.begin, c.end});
      check(out, dt, what + " forward");

      for (bool acc : kModes) {
        Out gx = output(c.x, dt, acc, 52);
        std::vector<double> gxv = acc ? gx.cpu.to_vector() : std::vector<double>(static_cast<size_t>(numel(c.x)), 0.0);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t k = 0; k < width; ++k)
            gxv[static_cast<size_t>(r * channels + c.begin + k)] += gv[static_cast<size_t>(r * width + k)];
        gx.cpu = Tensor::from_vector(gxv, c.x, DType::F64);
        gpu().channel_slice_backward({g.gpu, c.begin, c.end, gx.gpu_slot()});
        check(gx, dt, what + " backward");
      }
    }
}

TEST_CASE("CUDA dropout draws the CPU's mask", "[gpu][parity][dropout]") {
  for (DType dt : kDtypes)
    for (const Shape& shape : {Shape{2, 32, 32, 128}, Shape{3, 5, 7}})
      for (double p : {0.1, 0.5}) {
        const std::string what = label("dropout", dt, shape) + " p " + std::to_string(p);
        // Inputs away from zero, so that a zero output means a dropped element.
        const In x = input(Tensor::uniform(shape, 60, 1, 0.5, 1.5, DType::F64), dt);
        const In g = input(Tensor::uniform(shape, 60, 2, 0.5, 1.5, DType::F64), dt);
        Out out = output(shape, dt);
        // Offset 5 (not a multiple of 4): the shard addressing used by data-parallel training.
        cpu().dropout_forward({x.cpu, out.cpu, p, 7, 3, 5});
        gpu().dropout_forward({x.gpu, out.gpu.tensor, p, 7, 3, 5});
        check(out, dt, what + " forward");
        const std::vector<double> got = out.gpu.tensor.to_vector(), want = out.cpu.to_vector();
        int64_t dropped = 0, disagreements = 0;
        for (size_t i = 0; i < got.size(); ++i) {
          dropped += want[i] == 0.0;
          disagreements += (got[i] == 0.0) != (want[i] == 0.0);
        }
        INFO(what);
        REQUIRE(disagreements == 0);
        REQUIRE(dropped > 0);
        for (bool acc : kModes) {
          Out gx = output(shape, dt, acc, 61);
          cpu().dropout_backward({g.cpu, p, 7, 3, 5, gx.cpu_slot()});
          gpu().dropout_backward({g.gpu, p, 7, 3, 5, gx.gpu_slot()});
          check(gx, dt, what + " backward");
        }
      }
}

TEST_CASE("CUDA timestep embedding matches the CPU", "[gpu][parity][embedding]") {
  const Tensor t = Tensor::from_vector(std::vector<double>{0, 1, 17, 250, 999}, {5}, DType::F64);
  for (DType dt : kDtypes)
    for (int dim : {4, 6, 128, 512}) {
      const std::string what = label("timestep_embedding", dt, {5}) + " dim " + std::to_string(dim);
      const In tt = input(t, dt), g = input(test::randn({5, dim}, 70), dt);
      Out out = output({5, dim}, dt);
      cpu().timestep_embedding_forward({tt.cpu, out.cpu, dim});
      gpu().timestep_embedding_forward({tt.gpu, out.gpu.tensor, dim});
      check(out, dt, what + " forward");
      for (bool acc : kModes) {
        Out gt = output({5}, dt, acc, 71);
        cpu().timestep_embedding_backward({g.cpu, tt.cpu, dim, gt.cpu_slot()});
        gpu().timestep_embedding_backward({g.gpu, tt.gpu, dim, gt.gpu_slot()});
        check(gt, dt, what + " backward");
      }
    }
}

TEST_CASE("CUDA sum and mean match the CPU", "[gpu][parity][reduce]") {
  struct Case {
    Shape x;
    int keep;
  };
  // total, per sample, per pixel, no reduction, long rows (several chunks per row)
  const std::vector<Case> cases = {{{2, 32, 32, 128}, 0}, {{2, 32, 32, 128}, 1}, {{2, 16, 16, 256}, 3},
                                   {{2, 4, 4, 512}, 4},   {{3, 5, 7}, 0},        {{3, 5, 7}, 1},
                                   {{3, 5, 7}, 2},        {{2, 100003}, 1},      {{1048579}, 0}};
  for (DType dt : kDtypes)
    for (const Case& c : cases) {
      const Shape kept(c.x.begin(), c.x.begin() + c.keep);
      const double factor = 1.0 / static_cast<double>(numel(c.x) / numel(kept));  // mean
      const std::string what = label("sum", dt, c.x) + " keep " + std::to_string(c.keep);
      const In x = input(test::randn(c.x, 80), dt), g = input(test::randn(kept, 81), dt);
      for (double f : {1.0, factor}) {
        Out out = output(kept, dt);
        cpu().sum_forward({x.cpu, out.cpu, c.keep, f});
        gpu().sum_forward({x.gpu, out.gpu.tensor, c.keep, f});
        check(out, dt, what + " factor " + std::to_string(f) + " forward");
      }
      for (bool acc : kModes) {
        Out gx = output(c.x, dt, acc, 82);
        cpu().sum_backward({g.cpu, c.keep, factor, gx.cpu_slot()});
        gpu().sum_backward({g.gpu, c.keep, factor, gx.gpu_slot()});
        check(gx, dt, what + " backward");
      }
    }
}

TEST_CASE("CUDA mse matches the CPU", "[gpu][parity][reduce]") {
  struct Case {
    Shape x;
    int keep;
  };
  const std::vector<Case> cases = {{{2, 32, 32, 3}, 1}, {{2, 32, 32, 3}, 0}, {{2, 16, 16, 256}, 1}, {{3, 5, 7}, 2}};
  for (DType dt : kDtypes)
    for (const Case& c : cases) {
      const Shape kept(c.x.begin(), c.x.begin() + c.keep);
      const std::string what = label("mse", dt, c.x) + " keep " + std::to_string(c.keep);
      const In a = input(test::randn(c.x, 90), dt), b = input(test::randn(c.x, 91), dt);
      const In g = input(test::randn(kept, 92), dt);
      Out out = output(kept, dt);
      cpu().mse_forward({a.cpu, b.cpu, out.cpu, c.keep});
      gpu().mse_forward({a.gpu, b.gpu, out.gpu.tensor, c.keep});
      check(out, dt, what + " forward");
      for (bool acc : kModes) {
        Out ga = output(c.x, dt, acc, 93), gb = output(c.x, dt, acc, 94);
        cpu().mse_backward({g.cpu, a.cpu, b.cpu, c.keep, ga.cpu_slot(), gb.cpu_slot()});
        gpu().mse_backward({g.gpu, a.gpu, b.gpu, c.keep, ga.gpu_slot(), gb.gpu_slot()});
        check(ga, dt, what + " grad_a");
        check(gb, dt, what + " grad_b");
      }
      Out ga = output(c.x, dt);
      cpu().mse_backward({g.cpu, a.cpu, b.cpu, c.keep, ga.cpu_slot(), GradSlot{}});
      gpu().mse_backward({g.gpu, a.gpu, b.gpu, c.keep, ga.gpu_slot(), GradSlot{}});
      check(ga, dt, what + " grad_a only");
    }
}

TEST_CASE("CUDA sum_squares matches the CPU in double", "[gpu][parity][reduce]") {
  for (DType dt : kDtypes)
    for (const Shape& shape : {Shape{2, 32, 32, 128}, Shape{1000003}, Shape{3, 5, 7}}) {
      const In x = input(test::randn(shape, 100), dt);
      double want = 0, got = 0;
      cpu().sum_squares({x.cpu, &want});
      gpu().sum_squares({x.gpu, &got});
      INFO(label("sum_squares", dt, shape) << ": got " << got << ", want " << want);
      // Squares of float32 values are exact in double; only the summation order differs (n eps
      // relative at worst for positive terms).
      REQUIRE(std::fabs(got - want) <= 1e-10 * want);
    }
}

TEST_CASE("CUDA fill and fill_random give the CPU's values", "[gpu][parity][fill]") {
  const Shape shape{1 << 20};
  for (DType dt : kDtypes) {
    for (double value : {0.3, -2.5, 0.0}) {
      Tensor got = Tensor::empty(shape, dt, Device::CUDA);
      gpu().fill({got, value});
      require_equal(got, Tensor::full(shape, value, DType::F32).to(dt), label("fill", dt, shape));
    }
    // Uniform: integer Philox words and exact float arithmetic, so equal bit for bit.
    Tensor u = Tensor::uniform(shape, 5, 9, -1.0, 3.0, dt, Device::CUDA);
    require_equal(u, Tensor::uniform(shape, 5, 9, -1.0, 3.0, DType::F32).to(dt), label("uniform", dt, shape));
  }
  // Normal: Box-Muller through engine/philox.h's own log/cos/sin, built only from correctly
  // rounded operations with explicit fma (no libm, no contraction), so the device computes the
  // host's float bits, and bfloat16 rounds those once on both sides. (With CUDA's logf/cosf/sinf
  // a 1-ulp float difference crossed a bfloat16 boundary on 2026-11-30: element 135809.)
  for (DType dt : kDtypes) {
    const Tensor z_gpu = Tensor::normal(shape, 5, 10, 0.0, 1.0, dt, Device::CUDA);
    require_equal(z_gpu, Tensor::normal(shape, 5, 10, 0.0, 1.0, DType::F32).to(dt), label("normal", dt, shape));
  }
  // A shift and scale (a + b z in double, rounded once) too.
  const Tensor shifted = Tensor::normal(shape, 6, 11, 0.25, 3.0, DType::BF16, Device::CUDA);
  require_equal(shifted, Tensor::normal(shape, 6, 11, 0.25, 3.0, DType::F32).to(DType::BF16),
                label("normal(0.25, 3)", DType::BF16, shape));
}

TEST_CASE("CUDA cast converts like the CPU between float32, bfloat16 and float64", "[gpu][parity][fill]") {
  const Tensor x = test::randn({3, 5, 7, 33}, 110, 100.0);
  for (DType from : {DType::F32, DType::BF16, DType::F64})
    for (DType to : {DType::F32, DType::BF16, DType::F64}) {
      const Tensor src_cpu = x.to(from);
      const Tensor src_gpu = src_cpu.to(Device::CUDA);
      Tensor got = Tensor::empty(x.shape(), to, Device::CUDA);
      gpu().cast({src_gpu, got});
      require_equal(got, src_cpu.to(to), std::string("cast ") + dtype_name(from) + " -> " + dtype_name(to));
    }
}

TEST_CASE("CUDA fused Adam + EMA matches the CPU", "[gpu][parity][optim]") {
  // float32 math on the GPU against the CPU's double: a few float32 ulps of each result.
  constexpr double kBound = 1e-6;
  const int64_t n = 1000003;  // not a multiple of 4: the vector kernel leaves a tail
  struct Config {
    bool decoupled;
    double weight_decay;
    int64_t step;
    double grad_scale;
    bool ema;
    int64_t offset;  // elements into the buffers: 1 makes every pointer unaligned (scalar path)
  };
  const std::vector<Config> configs = {{false, 0.0, 1, 1.0, true, 0},  {false, 0.01, 10, 0.5, true, 0},
                                       {true, 0.1, 1000, 1.0, true, 0}, {true, 0.1, 3, 0.25, false, 0},
                                       {false, 0.0, 2, 1.0, true, 1},   {true, 0.05, 7, 1.0, false, 1}};
  for (const Config& c : configs) {
    const std::string what = std::string(c.decoupled ? "AdamW" : "Adam") + " wd " + std::to_string(c.weight_decay) +
                             " step " + std::to_string(c.step) + (c.ema ? " +EMA" : "") +
                             (c.offset ? " unaligned" : "");
    INFO(what);
    std::vector<Tensor> init = {test::randn({n}, 120), test::randn({n}, 121), test::randn({n}, 122, 0.1),
                                Tensor::uniform({n}, 123, 0, 0.0, 0.01, DType::F64), test::randn({n}, 124)};
    // CPU: float64 copies of the float32 values; GPU: float32 buffers at `offset`.
    std::vector<Tensor> ref, dev;
    for (const Tensor& t : init) {
      ref.push_back(test::as_seen(t, DType::F32));
      Tensor base = Tensor::empty({n + c.offset}, DType::F32, Device::CUDA);
      Tensor view = view_at(base, c.offset, n);
      view.copy_from(t.to(DType::F32).to(Device::CUDA));
      dev.push_back(view);
    }
    auto args_for = [&](const std::vector<Tensor>& b) {
      adam_step_args a;
      a.params = b[0];
      a.grads = b[1];
      a.m = b[2];
      a.v = b[3];
      if (c.ema) a.ema = b[4];
      a.ema_decay = 0.999;
      a.lr = 2e-4;
      a.weight_decay = c.weight_decay;
      a.decoupled_weight_decay = c.decoupled;
      a.step = c.step;
      a.grad_scale = c.grad_scale;
      return a;
    };
    cpu().adam_step(args_for(ref));
    gpu().adam_step(args_for(dev));
    const char* names[] = {"params", "grads", "m", "v", "ema"};
    for (size_t k = 0; k < ref.size(); ++k) {
      const double error = test::normalized_error(dev[k], ref[k]);
      INFO(names[k] << ": normalized error " << error);
      REQUIRE(test::all_finite(dev[k]));
      REQUIRE(error <= kBound);
    }
  }
}

TEST_CASE("CUDA ema_update matches the CPU", "[gpu][parity][optim]") {
  const int64_t n = 1000003;
  const In p = input(test::randn({n}, 130), DType::F32);
  const Tensor e0 = test::randn({n}, 131);
  Tensor want = test::as_seen(e0, DType::F32).clone();
  test::Guarded got = test::guarded_copy(e0, DType::F32);
  cpu().ema_update({want, p.cpu, 0.9999});
  gpu().ema_update({got.tensor, p.gpu, 0.9999});
  test::require_parity(got, want, 1e-6, "ema_update float32");
}

TEST_CASE("the caching allocator makes no cudaMalloc once an op sequence is warm", "[gpu][allocator]") {
  // A small forward/backward in both dtypes, sizes on both sides of the 1 MiB bin boundary.
  auto iteration = [] {
    for (DType dt : kDtypes) {
      const Device cuda = Device::CUDA;
      Tensor x = Tensor::normal({2, 32, 32, 128}, 1, 1, 0.0, 1.0, dt, cuda);
      Tensor w = Tensor::normal({256, 128}, 1, 2, 0.0, 0.1, dt, cuda);
      Tensor b = Tensor::zeros({256}, dt, cuda);
      Tensor y = Tensor::empty({2, 32, 32, 256}, dt, cuda);
      gpu().linear_forward({x, w, b, y});
      Tensor a = Tensor::empty(y.shape(), dt, cuda);
      gpu().silu_forward({y, a});
      Tensor loss = Tensor::empty({2}, dt, cuda);
      gpu().sum_forward({a, loss, 1, 1e-3});

      Tensor g = Tensor::full({2}, 1.0, dt, cuda);
      Tensor ga = Tensor::empty(a.shape(), dt, cuda), gy = Tensor::empty(y.shape(), dt, cuda);
      gpu().sum_backward({g, 1, 1e-3, GradSlot{ga, false}});
      gpu().silu_backward({ga, y, GradSlot{gy, false}});
      Tensor gx = Tensor::empty(x.shape(), dt, cuda), gw = Tensor::zeros(w.shape(), dt, cuda);
      Tensor gb = Tensor::zeros(b.shape(), dt, cuda);
      gpu().linear_backward({gy, x, w, GradSlot{gx, false}, GradSlot{gw, true}, GradSlot{gb, true}});
      Tensor gb2 = Tensor::empty({2, 1, 1, 128}, dt, cuda);
      gpu().mul_backward({gx, x, Tensor::normal({2, 1, 1, 128}, 1, 3, 0.0, 1.0, dt, cuda), GradSlot{},
                          GradSlot{gb2, false}});
      double norm = 0;
      gpu().sum_squares({gw, &norm});
      REQUIRE(std::isfinite(norm));
    }
  };
  iteration();  // warm-up: fills the cache
  const CudaAllocatorStats before = cuda_allocator_stats();
  iteration();
  const CudaAllocatorStats after = cuda_allocator_stats();
  INFO("cudaMalloc calls: " << before.device_allocations << " -> " << after.device_allocations << "; in use "
                            << before.bytes_in_use << " -> " << after.bytes_in_use << ", cached "
                            << after.bytes_cached);
  REQUIRE(after.device_allocations == before.device_allocations);
  REQUIRE(after.bytes_in_use == before.bytes_in_use);  // every block of the iteration came back

  // empty_cache hands the free blocks back; what is in use stays.
  cuda_empty_cache();
  const CudaAllocatorStats emptied = cuda_allocator_stats();
  REQUIRE(emptied.bytes_cached == 0);
  REQUIRE(emptied.bytes_in_use == after.bytes_in_use);
}

TEST_CASE("CUDA ops reject float64 tensors with an error naming the op", "[gpu][errors]") {
  using Catch::Matchers::Contains;
  const Tensor a = Tensor::zeros({4, 8}, DType::F64, Device::CUDA);
  const Tensor w = Tensor::zeros({3, 8}, DType::F64, Device::CUDA);
  const Tensor out = Tensor::zeros({4, 8}, DType::F64, Device::CUDA);
  const Tensor out3 = Tensor::zeros({4, 3}, DType::F64, Device::CUDA);
  const Tensor sums = Tensor::zeros({4}, DType::F64, Device::CUDA);
  REQUIRE_THROWS_WITH((gpu().add_forward({a, a, out})), Contains("add") && Contains("float64"));
  REQUIRE_THROWS_WITH((gpu().silu_forward({a, out})), Contains("silu") && Contains("float64"));
  REQUIRE_THROWS_WITH((gpu().linear_forward({a, w, Tensor{}, out3})), Contains("linear") && Contains("float64"));
  REQUIRE_THROWS_WITH((gpu().sum_forward({a, sums, 1, 1.0})), Contains("sum") && Contains("float64"));
  REQUIRE_THROWS_WITH((gpu().fill({a, 1.0})), Contains("fill") && Contains("float64"));
  adam_step_args adam;
  adam.params = adam.grads = adam.m = adam.v = a;
  REQUIRE_THROWS_WITH((gpu().adam_step(adam)), Contains("adam_step") && Contains("float32"));
  // A float64 tensor on CUDA may still be cast.
  Tensor f = Tensor::empty({4, 8}, DType::F32, Device::CUDA);
  REQUIRE_NOTHROW((gpu().cast({a, f})));
}
