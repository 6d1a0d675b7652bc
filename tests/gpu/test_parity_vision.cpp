// CPU-versus-CUDA parity of the vision ops (Inception-v3): relu, max_pool2d, avg_pool2d (both
// divisors) and resize_bilinear, forward and backward in write and accumulate mode, float32 and
// bfloat16, at Inception's shapes and at odd ones. The CPU runs in float64 on the inputs as the GPU
// sees them; GPU outputs live in guarded buffers, written slots start as NaN.
//
// Bounds (normalized error, tests/gpu/parity.h): float32 1e-5 (a sum of at most a few dozen
// float32 terms), bfloat16 2e-2 (the output's 8-bit significand). Max pooling picks the same
// element on both sides (the inputs are the same rounded values, ties resolved by the same first-max
// rule in kernels/pool_resize_math.h), so its forward is exact up to the output rounding.
#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "models/inception_v3.h"
#include "tests/gpu/parity.h"
#include "tests/support.h"

using namespace ddpm;

namespace {

const DType kDtypes[] = {DType::F32, DType::BF16};
const bool kModes[] = {false, true};
double bound_for(DType dt) { return dt == DType::F32 ? test::kBoundF32 : test::kBoundBF16; }

void check(const test::Out& o, DType dt, const std::string& what) {
  test::require_parity(o.gpu, o.cpu, bound_for(dt), what);
}

struct PoolCase {
  Shape x;
  int kernel, stride, pad;
  std::string label(const char* op, DType dt) const {
    return std::string(op) + " " + dtype_name(dt) + " " + shape_str(x) + " k" + std::to_string(kernel) + " s" +
           std::to_string(stride) + " p" + std::to_string(pad);
  }
  Shape out() const {
    return {x[0], (x[1] + 2 * pad - kernel) / stride + 1, (x[2] + 2 * pad - kernel) / stride + 1, x[3]};
  }
};

// Inception's stem pool (147 -> 73), its 3x3 stride-1 branch pools, and odd shapes.
const std::vector<PoolCase> kPoolCases = {
    {{2, 147, 147, 64}, 3, 2, 0}, {{2, 35, 35, 192}, 3, 1, 1}, {{2, 8, 8, 2048}, 3, 1, 1},
    {{2, 8, 8, 2048}, 8, 1, 0},   {{3, 7, 9, 5}, 2, 2, 1},      {{1, 10, 11, 33}, 4, 3, 2},
};

}  // namespace

TEST_CASE("CUDA max_pool2d and avg_pool2d match the CPU", "[gpu][parity][vision]") {
  Backend& cpu = cpu_backend();
  Backend& gpu = cuda_backend();
  for (DType dt : kDtypes)
    for (const PoolCase& c : kPoolCases) {
      const test::In x = test::input(test::randn(c.x, 60), dt), g = test::input(test::randn(c.out(), 61), dt);
      test::Out mx = test::output(c.out(), dt);
      cpu.max_pool2d_forward({x.cpu, mx.cpu, c.kernel, c.stride, c.pad});
      gpu.max_pool2d_forward({x.gpu, mx.gpu.tensor, c.kernel, c.stride, c.pad});
      check(mx, dt, c.label("max_pool2d", dt) + " forward");
      for (bool include : {true, false}) {
        test::Out avg = test::output(c.out(), dt);
        cpu.avg_pool2d_forward({x.cpu, avg.cpu, c.kernel, c.stride, c.pad, include});
        gpu.avg_pool2d_forward({x.gpu, avg.gpu.tensor, c.kernel, c.stride, c.pad, include});
        check(avg, dt, c.label("avg_pool2d", dt) + (include ? " include pad" : " exclude pad") + " forward");
      }
      for (bool acc : kModes) {
        test::Out gx = test::output(c.x, dt, acc, 62);
        cpu.max_pool2d_backward({g.cpu, x.cpu, c.kernel, c.stride, c.pad, gx.cpu_slot()});
        gpu.max_pool2d_backward({g.gpu, x.gpu, c.kernel, c.stride, c.pad, gx.gpu_slot()});
        check(gx, dt, c.label("max_pool2d", dt) + " backward");
        for (bool include : {true, false}) {
          test::Out ga = test::output(c.x, dt, acc, 63);
          cpu.avg_pool2d_backward({g.cpu, c.kernel, c.stride, c.pad, include, ga.cpu_slot()});
          gpu.avg_pool2d_backward({g.gpu, c.kernel, c.stride, c.pad, include, ga.gpu_slot()});
          check(ga, dt, c.label("avg_pool2d", dt) + (include ? " include pad" : " exclude pad") + " backward");
        }
      }
    }
}

TEST_CASE("CUDA resize_bilinear matches the CPU (up to 299x299 and down)", "[gpu][parity][vision]") {
  Backend& cpu = cpu_backend();
  Backend& gpu = cuda_backend();
  const std::vector<std::pair<Shape, std::pair<int64_t, int64_t>>> cases = {
      {{2, 28, 28, 1}, {299, 299}}, {{2, 32, 32, 3}, {299, 299}}, {{1, 64, 64, 3}, {299, 299}},
      {{2, 9, 7, 5}, {4, 3}},       {{3, 5, 6, 33}, {13, 1}},
  };
  for (DType dt : kDtypes)
    for (const auto& [shape, size] : cases) {
      const Shape out_shape{shape[0], size.first, size.second, shape[3]};
      const std::string what = std::string("resize_bilinear ") + dtype_name(dt) + " " + shape_str(shape) + " -> " +
                               shape_str(out_shape);
      const test::In x = test::input(test::randn(shape, 70), dt), g = test::input(test::randn(out_shape, 71), dt);
      test::Out out = test::output(out_shape, dt);
      cpu.resize_bilinear_forward({x.cpu, out.cpu});
      gpu.resize_bilinear_forward({x.gpu, out.gpu.tensor});
      check(out, dt, what + " forward");
      for (bool acc : kModes) {
        test::Out gx = test::output(shape, dt, acc, 72);
        cpu.resize_bilinear_backward({g.cpu, gx.cpu_slot()});
        gpu.resize_bilinear_backward({g.gpu, gx.gpu_slot()});
        check(gx, dt, what + " backward");
      }
    }
}

TEST_CASE("CUDA relu matches the CPU", "[gpu][parity][vision]") {
  Backend& cpu = cpu_backend();
  Backend& gpu = cuda_backend();
  for (DType dt : kDtypes)
    for (const Shape& shape : std::vector<Shape>{{2, 35, 35, 288}, {3, 5, 7, 3}}) {
      const std::string what = std::string("relu ") + dtype_name(dt) + " " + shape_str(shape);
      const test::In x = test::input(test::randn(shape, 80), dt), g = test::input(test::randn(shape, 81), dt);
      test::Out out = test::output(shape, dt);
      cpu.relu_forward({x.cpu, out.cpu});
      gpu.relu_forward({x.gpu, out.gpu.tensor});
      check(out, dt, what + " forward");
      for (bool acc : kModes) {
        test::Out gx = test::output(shape, dt, acc, 82);
        cpu.relu_backward({g.cpu, x.cpu, gx.cpu_slot()});
        gpu.relu_backward({g.gpu, x.gpu, gx.gpu_slot()});
        check(gx, dt, what + " backward");
      }
    }
}

TEST_CASE("CUDA Inception-v3 forward matches the CPU in float32", "[gpu][parity][vision][inception]") {
  // Random weights in the converted layout (BatchNorm statistics in a range that keeps
  // activations O(1)), one 32x32 RGB image and one 28x28 grayscale one.
  NamedTensors file;
  uint64_t stream = 0;
  for (const auto& [name, shape] : inception_expected_tensors()) {
    const bool conv = shape.size() == 4, var = name.find("running_var") != std::string::npos;
    const bool gamma = name.find(".bn.weight") != std::string::npos;
    const double a = conv ? std::sqrt(6.0 / static_cast<double>(shape[1] * shape[2] * shape[3])) : 0.2;
    const double low = var ? 0.5 : gamma ? 0.8 : -a, high = var ? 1.5 : gamma ? 1.2 : a;
    file.tensors.push_back({name, Tensor::uniform(shape, 11, stream++, low, high)});
  }
  const InceptionV3 on_cpu(file, "random", Device::CPU), on_gpu(file, "random", Device::CUDA);
  for (const Shape& shape : std::vector<Shape>{{1, 32, 32, 3}, {1, 28, 28, 1}}) {
    const Tensor images = Tensor::uniform(shape, 12, 0, -1.0, 1.0);
    const InceptionV3::Output want = on_cpu.forward(images), got = on_gpu.forward(images.to(Device::CUDA));
    const double fe = test::normalized_error(got.features, want.features.to(DType::F64));
    const double le = test::normalized_error(got.logits, want.logits.to(DType::F64));
    INFO(shape_str(shape) << ": features " << fe << ", logits " << le);
    REQUIRE(fe <= 1e-4);
    REQUIRE(le <= 1e-4);
  }
}
