// CPU-versus-CUDA parity of the classifier's ops: global_avg_pool and softmax_cross_entropy
// (forward, saved log-sum-exp, backward in write and accumulate mode). The CPU runs in float64 on
// the inputs as the GPU sees them; the GPU in float32 and bfloat16, outputs in guarded buffers.
// Bounds as in test_parity_basic.cpp: float32 1e-5, bfloat16 2e-2 (the stored outputs' 8 bits).
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "tests/gpu/parity.h"
#include "tests/support.h"

using namespace ddpm;

namespace {
const DType kDtypes[] = {DType::F32, DType::BF16};
double bound_for(DType dt) { return dt == DType::F32 ? test::kBoundF32 : test::kBoundBF16; }
std::string label(const std::string& op, DType dt, const Shape& shape) {
  return op + " " + dtype_name(dt) + " " + shape_str(shape);
}
void check(const test::Out& o, DType dt, const std::string& what) {
  test::require_parity(o.gpu, o.cpu, bound_for(dt), what + (o.accumulate ? " (accumulate)" : " (write)"));
}
}  // namespace

TEST_CASE("CUDA global_avg_pool matches the CPU", "[gpu][parity][classification]") {
  // The classifier's last map, Inception's 8x8x2048, a 1x1 map and awkward sizes.
  const std::vector<Shape> shapes = {{64, 7, 7, 128}, {2, 8, 8, 2048}, {3, 1, 1, 5}, {2, 5, 3, 33}};
  for (DType dt : kDtypes)
    for (const Shape& s : shapes) {
      const std::string what = label("global_avg_pool", dt, s);
      const test::In x = test::input(test::randn(s, 100), dt), g = test::input(test::randn({s[0], s[3]}, 101), dt);
      test::Out out = test::output({s[0], s[3]}, dt);
      cpu_backend().global_avg_pool_forward({x.cpu, out.cpu});
      cuda_backend().global_avg_pool_forward({x.gpu, out.gpu.tensor});
      check(out, dt, what + " forward");
      for (bool acc : {false, true}) {
        test::Out gx = test::output(s, dt, acc, 102);
        cpu_backend().global_avg_pool_backward({g.cpu, gx.cpu_slot()});
        cuda_backend().global_avg_pool_backward({g.gpu, gx.gpu_slot()});
        check(gx, dt, what + " backward");
      }
    }
}

TEST_CASE("CUDA softmax_cross_entropy matches the CPU", "[gpu][parity][classification]") {
  struct Case {
    int64_t n, k;
  };
  // 10 classes (Fashion-MNIST, CIFAR-10), more classes than a warp's lanes, one class, a big batch.
  const std::vector<Case> cases = {{128, 10}, {5, 1008}, {3, 1}, {1000, 37}};
  for (DType dt : kDtypes)
    for (const Case& c : cases) {
      const std::string what = label("softmax_cross_entropy", dt, {c.n, c.k});
      const test::In logits = test::input(test::randn({c.n, c.k}, 110, 3.0), dt);
      const test::In g = test::input(test::randn({c.n}, 111), dt);
      std::vector<float> classes;
      for (int64_t i = 0; i < c.n; ++i) classes.push_back(static_cast<float>((7 * i + 3) % c.k));
      const Tensor labels_cpu = Tensor::from_vector(classes, {c.n});
      const Tensor labels_gpu = labels_cpu.to(Device::CUDA);
      test::Out out = test::output({c.n}, dt), lse = test::output({c.n}, DType::F32);
      cpu_backend().softmax_cross_entropy_forward({logits.cpu, labels_cpu, out.cpu, lse.cpu});
      cuda_backend().softmax_cross_entropy_forward({logits.gpu, labels_gpu, out.gpu.tensor, lse.gpu.tensor});
      check(out, dt, what + " forward");
      // The log-sum-exp is float32 on the GPU whatever the logits' dtype; its error reflects the
      // float32 sum only (the inputs are the same on both sides).
      test::require_parity(lse.gpu, lse.cpu, test::kBoundF32, what + " lse");
      for (bool acc : {false, true}) {
        test::Out gx = test::output({c.n, c.k}, dt, acc, 112);
        cpu_backend().softmax_cross_entropy_backward({g.cpu, logits.cpu, labels_cpu, lse.cpu, gx.cpu_slot()});
        cuda_backend().softmax_cross_entropy_backward(
            {g.gpu, logits.gpu, labels_gpu, lse.gpu.tensor, gx.gpu_slot()});
        check(gx, dt, what + " backward");
      }
    }
}
