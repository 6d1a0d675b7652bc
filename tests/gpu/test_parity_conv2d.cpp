// CPU-versus-CUDA parity of conv2d: forward, and backward (dx, dW, db) in write and accumulate
// mode, float32 and bfloat16, for both CUDA implementations (custom implicit GEMM and cuDNN), at
// the DDPM UNet's shapes (batch 2) and at awkward ones (odd sizes, channel counts that defeat the
// 16-byte loads, stride 2 and 3, pad 0, 1x1 and non-square kernels, unaligned pointers) and at
// Inception-v3's 1x7 / 7x1 / 1x3 / 3x1 kernels and TF-style asymmetric (0, 1, 0, 1) pads, which
// the cuDNN setting routes to the custom kernels (cuDNN pads symmetrically only). The CPU
// runs in float64 on the inputs as the GPU sees them (test::as_seen); GPU outputs live in guarded
// buffers, and a written output starts as NaN so that a kernel reading it fails the finite check.
//
// Bounds on the normalized error (tests/gpu/parity.h), with K the length of the reduction behind
// an output (KH*KW*Cin forward, KH*KW*Cout for dx, N*OH*OW for dW and db):
//   float32: a float32 sum of K products of random sign drifts like sqrt(K) 2^-24 times the size
//     of its terms; the custom kernels' order (sequential per thread, split-K partials) gives
//     about 3e-6 at K = 4608 (3x3 over 512 channels), so 1e-5, growing with sqrt(K) beyond 4608.
//     cuDNN may choose transform algorithms (Winograd, FFT) that lose more in float32: 1e-4.
//   bfloat16: the accumulation is float32 and the inputs are compared as rounded, so the error is
//     the final rounding to bfloat16's 8-bit significand (2^-8 = 3.9e-3 of an element at most,
//     also for an accumulated sum); 1e-2 for the custom kernels. cuDNN may round split-K partials
//     as well: test::kBoundBF16 (2e-2) for it.
// An indexing or tail bug shows as an O(1) error, far above every bound.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "kernels/cuda/conv2d_impl.h"
#include "tests/gpu/parity.h"
#include "tests/support.h"

using namespace ddpm;
using cuda::ConvImpl;

namespace {

struct Case {
  std::string name;
  int n, h, w, cin, cout, kh, kw, stride;
  Pad2d pad;
  bool bias;
  int oh() const { return (h + pad.top + pad.bottom - kh) / stride + 1; }
  int ow() const { return (w + pad.left + pad.right - kw) / stride + 1; }
  Shape x_shape() const { return {n, h, w, cin}; }
  Shape w_shape() const { return {cout, kh, kw, cin}; }
  Shape out_shape() const { return {n, oh(), ow(), cout}; }
  std::string label() const {
    return name + " [" + std::to_string(n) + "," + std::to_string(h) + "," + std::to_string(w) + "," +
           std::to_string(cin) + "]->" + std::to_string(cout) + " " + std::to_string(kh) + "x" + std::to_string(kw) +
           " s" + std::to_string(stride) + " p" + std::to_string(pad.top) + "," + std::to_string(pad.bottom) + "," +
           std::to_string(pad.left) + "," + std::to_string(pad.right);
  }
};

// The DDPM CIFAR-10 UNet's convolutions at batch 2 (plus 512 channels at 8x8 and 4x4).
const std::vector<Case> kUnetCases = {
    {"res 3x3", 2, 32, 32, 128, 128, 3, 3, 1, 1, true},    {"res 3x3", 2, 16, 16, 256, 256, 3, 3, 1, 1, true},
    {"res 3x3", 2, 8, 8, 256, 256, 3, 3, 1, 1, true},      {"res 3x3", 2, 8, 8, 512, 512, 3, 3, 1, 1, true},
    {"res 3x3", 2, 4, 4, 512, 512, 3, 3, 1, 1, true},      {"res 3x3 128->256", 2, 16, 16, 128, 256, 3, 3, 1, 1, true},
    {"downsample", 2, 32, 32, 128, 128, 3, 3, 2, 1, true}, {"downsample", 2, 8, 8, 256, 256, 3, 3, 2, 1, true},
    {"skip 1x1", 2, 16, 16, 128, 256, 1, 1, 1, 0, true},   {"skip 1x1", 2, 8, 8, 512, 256, 1, 1, 1, 0, true},
    {"input conv", 2, 32, 32, 3, 128, 3, 3, 1, 1, true},   {"output conv", 2, 32, 32, 128, 3, 3, 3, 1, 1, true},
};

const std::vector<Case> kAwkwardCases = {
    {"odd map, 3->17", 2, 5, 7, 3, 17, 3, 3, 1, 1, true},
    {"stride 2 odd map, 33->1", 3, 5, 7, 33, 1, 3, 3, 2, 1, true},
    {"stride 2 pad 0, 100->17", 2, 7, 5, 100, 17, 3, 3, 2, 0, false},
    {"1x1 stride 2 (taps miss odd pixels)", 2, 9, 6, 16, 24, 1, 1, 2, 0, true},
    {"2x3 kernel stride 2", 2, 7, 9, 8, 40, 2, 3, 2, 1, true},
    {"5x5 pad 2, 40->48", 1, 11, 10, 40, 48, 5, 5, 1, 2, true},
    {"stride 3", 2, 10, 11, 24, 32, 3, 3, 3, 1, true},
    {"1x1 map, pad 1", 4, 1, 1, 12, 20, 3, 3, 1, 1, true},
    {"pad 0 3x3, 64->136", 3, 12, 10, 64, 136, 3, 3, 1, 0, true},
    {"split-K, 32 ch", 8, 16, 16, 32, 32, 3, 3, 1, 1, true},
};

// Inception-v3's factorized kernels (at 17x17 and 8x8) and TF-style "SAME" downsampling.
const std::vector<Case> kRectangularCases = {
    {"inception 1x7", 2, 17, 17, 128, 128, 1, 7, 1, {0, 0, 3, 3}, true},
    {"inception 7x1", 2, 17, 17, 128, 192, 7, 1, 1, {3, 3, 0, 0}, true},
    {"inception 1x3", 2, 8, 8, 384, 384, 1, 3, 1, {0, 0, 1, 1}, true},
    {"inception 3x1", 2, 8, 8, 384, 384, 3, 1, 1, {1, 1, 0, 0}, true},
    {"inception stem stride 2 pad 0", 2, 35, 35, 3, 32, 3, 3, 2, 0, true},
    {"TF SAME downsample (0,1,0,1)", 2, 16, 16, 64, 64, 3, 3, 2, {0, 1, 0, 1}, true},
    {"TF SAME odd map (0,1,0,1)", 2, 9, 7, 5, 12, 3, 3, 2, {0, 1, 0, 1}, true},
    {"asymmetric (2,0,1,3) stride 3", 2, 10, 11, 24, 16, 3, 2, 3, {2, 0, 1, 3}, false},
};

const DType kDtypes[] = {DType::F32, DType::BF16};
const ConvImpl kImpls[] = {ConvImpl::Custom, ConvImpl::Cudnn};
const char* impl_name(ConvImpl impl) { return impl == ConvImpl::Custom ? "custom" : "cudnn"; }

double bound(DType dt, ConvImpl impl, int64_t k) {
  if (dt == DType::BF16) return impl == ConvImpl::Custom ? 1e-2 : test::kBoundBF16;
  const double base = impl == ConvImpl::Custom ? 1e-5 : 1e-4;
  return base * std::max(1.0, std::sqrt(static_cast<double>(k) / 4608.0));
}

// Restores the process-wide conv2d settings when a test ends, passed or not.
struct SettingsGuard {
  ~SettingsGuard() {
    cuda::set_conv2d_impl(ConvImpl::Custom);
    cuda::set_conv2d_custom_tile(-1);
  }
};

// float64 CPU inputs, weights scaled by 1/sqrt(fan-in) so that outputs are O(1).
struct Inputs {
  Tensor x, w, b, g, dx0, dw0, db0;  // dx0, dw0, db0: starting values of accumulating slots
};
Inputs make_inputs(const Case& c) {
  const double w_scale = 1.0 / std::sqrt(static_cast<double>(std::max(1, c.kh * c.kw * c.cin)));
  return {test::randn(c.x_shape(), 11), test::randn(c.w_shape(), 12, w_scale), test::randn({c.cout}, 13),
          test::randn(c.out_shape(), 14),  test::randn(c.x_shape(), 15),       test::randn(c.w_shape(), 16),
          test::randn({c.cout}, 17)};
}

// The CPU's float64 results on the inputs rounded to dt.
struct Reference {
  Tensor out, dx, dw, db;
};
Reference reference(const Case& c, const Inputs& in, DType dt) {
  const Tensor x = test::as_seen(in.x, dt), w = test::as_seen(in.w, dt), g = test::as_seen(in.g, dt);
  const Tensor b = c.bias ? test::as_seen(in.b, dt) : Tensor();
  Reference r{Tensor::empty(c.out_shape(), DType::F64), Tensor::empty(c.x_shape(), DType::F64),
              Tensor::empty(c.w_shape(), DType::F64), c.bias ? Tensor::empty({c.cout}, DType::F64) : Tensor()};
  cpu_backend().conv2d_forward({x, w, b, r.out, c.stride, c.pad});
  cpu_backend().conv2d_backward(
      {g, x, w, c.stride, c.pad, {r.dx, false}, {r.dw, false}, c.bias ? GradSlot{r.db, false} : GradSlot{}});
  return r;
}

// a + b for float64 CPU tensors of one shape.
Tensor plus(const Tensor& a, const Tensor& b) {
  std::vector<double> va = a.to_vector();
  const std::vector<double> vb = b.to_vector();
  for (size_t i = 0; i < va.size(); ++i) va[i] += vb[i];
  return Tensor::from_vector(va, a.shape(), DType::F64);
}

// A GPU slot: NaN when written (a read of it shows), the starting values when accumulated.
test::Guarded slot(const Tensor& start, DType dt, bool accumulate) {
  if (accumulate) return test::guarded_copy(start, dt);
  return test::guarded_copy(Tensor::full(start.shape(), std::numeric_limits<double>::quiet_NaN(), DType::F64), dt);
}

// A copy of `cpu` in dt on the GPU whose data starts `shift` elements into its storage: shift 1
// makes every pointer miss 16-byte alignment, which must send the kernels down the element path.
Tensor to_cuda_shifted(const Tensor& cpu, DType dt, int64_t shift) {
  if (shift == 0) return test::to_cuda(cpu, dt);
  const Tensor base = Tensor::empty({cpu.numel() + shift}, dt, Device::CUDA);
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.impl().storage;
  impl->offset = base.impl().offset + static_cast<size_t>(shift) * dtype_size(dt);
  impl->shape = cpu.shape();
  impl->dtype = dt;
  impl->device = Device::CUDA;
  Tensor view(std::move(impl));
  view.copy_from(test::to_cuda(cpu, dt));
  return view;
}

// Forward, then the backward in write and in accumulate mode, on the GPU with `impl`, compared
// with the reference.
void check_case(const Case& c, DType dt, ConvImpl impl, const Inputs& in, const Reference& ref, int64_t shift = 0) {
  cuda::set_conv2d_impl(impl);
  Backend& gpu = cuda_backend();
  const std::string what = c.label() + " " + dtype_name(dt) + " " + impl_name(impl) + (shift ? " unaligned" : "");
  const Tensor x = to_cuda_shifted(in.x, dt, shift), w = to_cuda_shifted(in.w, dt, shift);
  const Tensor g = to_cuda_shifted(in.g, dt, shift);
  const Tensor b = c.bias ? to_cuda_shifted(in.b, dt, shift) : Tensor();
  const int64_t k_fwd = int64_t{c.kh} * c.kw * c.cin, k_dx = int64_t{c.kh} * c.kw * c.cout;
  const int64_t k_pixels = int64_t{c.n} * c.oh() * c.ow();

  const test::Guarded out = slot(ref.out, dt, false);
  gpu.conv2d_forward({x, w, b, out.tensor, c.stride, c.pad});
  test::require_parity(out, ref.out, bound(dt, impl, k_fwd), what + " forward");

  for (bool acc : {false, true}) {
    const std::string mode = acc ? " (accumulate)" : " (write)";
    const test::Guarded dx = slot(in.dx0, dt, acc), dw = slot(in.dw0, dt, acc);
    const test::Guarded db = slot(in.db0, dt, acc);
    gpu.conv2d_backward({g, x, w, c.stride, c.pad, {dx.tensor, acc}, {dw.tensor, acc},
                         c.bias ? GradSlot{db.tensor, acc} : GradSlot{}});
    const auto want = [&](const Tensor& grad, const Tensor& start) {
      return acc ? plus(test::as_seen(start, dt), grad) : grad;
    };
    test::require_parity(dx, want(ref.dx, in.dx0), bound(dt, impl, k_dx), what + " dx" + mode);
    test::require_parity(dw, want(ref.dw, in.dw0), bound(dt, impl, k_pixels), what + " dW" + mode);
    if (c.bias) test::require_parity(db, want(ref.db, in.db0), bound(dt, impl, k_pixels), what + " db" + mode);
  }
}

void check_cases(const std::vector<Case>& cases) {
  SettingsGuard restore;
  for (const Case& c : cases) {
    const Inputs in = make_inputs(c);
    for (DType dt : kDtypes) {
      const Reference ref = reference(c, in, dt);
      for (ConvImpl impl : kImpls) check_case(c, dt, impl, in, ref);
    }
  }
}

}  // namespace

TEST_CASE("CUDA conv2d matches the CPU at the DDPM UNet's shapes", "[gpu][parity][conv2d]") { check_cases(kUnetCases); }

TEST_CASE("CUDA conv2d matches the CPU at awkward shapes", "[gpu][parity][conv2d]") { check_cases(kAwkwardCases); }

TEST_CASE("CUDA conv2d matches the CPU with rectangular kernels and asymmetric pads", "[gpu][parity][conv2d]") {
  check_cases(kRectangularCases);
}

TEST_CASE("CUDA conv2d custom kernels match the CPU with every tile configuration", "[gpu][parity][conv2d]") {
  // Small problems pick the smallest tile by themselves; force each one, on a vectorized shape
  // with partial tiles in M and N, a stride-2 one and an element-path one.
  SettingsGuard restore;
  const std::vector<Case> cases = {
      {"tiles, partial M and N", 3, 12, 10, 64, 136, 3, 3, 1, 1, true},
      {"tiles, stride 2", 3, 9, 11, 24, 40, 3, 3, 2, 1, true},
      {"tiles, element path", 2, 8, 8, 5, 7, 3, 3, 1, 1, true},
  };
  for (const Case& c : cases) {
    const Inputs in = make_inputs(c);
    for (DType dt : kDtypes) {
      const Reference ref = reference(c, in, dt);
      for (int tile = 0; tile <= 2; ++tile) {
        INFO("tile configuration " << tile);
        cuda::set_conv2d_custom_tile(tile);
        check_case(c, dt, ConvImpl::Custom, in, ref);
      }
    }
  }
}

TEST_CASE("CUDA conv2d handles unaligned tensors (element path for channels that allow 16-byte loads)",
          "[gpu][parity][conv2d]") {
  SettingsGuard restore;
  const Case c{"unaligned", 2, 8, 8, 64, 32, 3, 3, 1, 1, true};
  const Inputs in = make_inputs(c);
  for (DType dt : kDtypes) {
    const Reference ref = reference(c, in, dt);
    for (ConvImpl impl : kImpls) check_case(c, dt, impl, in, ref, 1);
  }
}

TEST_CASE("CUDA conv2d backward computes only the wanted gradients", "[gpu][parity][conv2d]") {
  SettingsGuard restore;
  const Case c{"partial slots", 2, 8, 8, 16, 24, 3, 3, 2, 1, true};
  const Inputs in = make_inputs(c);
  for (DType dt : kDtypes) {
    const Reference ref = reference(c, in, dt);
    const Tensor x = test::to_cuda(in.x, dt), w = test::to_cuda(in.w, dt), g = test::to_cuda(in.g, dt);
    for (ConvImpl impl : kImpls) {
      cuda::set_conv2d_impl(impl);
      const std::string what = c.label() + " " + dtype_name(dt) + " " + impl_name(impl);
      const double tol = bound(dt, impl, 4608);
      {  // weights and bias only (the input convolution of a network)
        const test::Guarded dw = slot(in.dw0, dt, false), db = slot(in.db0, dt, false);
        cuda_backend().conv2d_backward({g, x, w, c.stride, c.pad, {}, {dw.tensor, false}, {db.tensor, false}});
        test::require_parity(dw, ref.dw, tol, what + " dW only");
        test::require_parity(db, ref.db, tol, what + " db only");
      }
      {  // the input only
        const test::Guarded dx = slot(in.dx0, dt, false);
        cuda_backend().conv2d_backward({g, x, w, c.stride, c.pad, {dx.tensor, false}, {}, {}});
        test::require_parity(dx, ref.dx, tol, what + " dx only");
      }
    }
  }
}

TEST_CASE("CUDA conv2d rejects float64 with an error naming conv2d", "[gpu][errors][conv2d]") {
  using Catch::Matchers::Contains;
  const Tensor x = Tensor::zeros({1, 4, 4, 2}, DType::F64, Device::CUDA);
  const Tensor w = Tensor::zeros({3, 3, 3, 2}, DType::F64, Device::CUDA);
  const Tensor out = Tensor::zeros({1, 4, 4, 3}, DType::F64, Device::CUDA);
  REQUIRE_THROWS_WITH((cuda_backend().conv2d_forward({x, w, Tensor(), out, 1, 1})),
                      Contains("conv2d") && Contains("float64"));
  REQUIRE_THROWS_WITH((cuda_backend().conv2d_backward({out, x, w, 1, 1, {x, false}, {}, {}})),
                      Contains("conv2d") && Contains("float64"));
  // Mixed dtypes are refused too (the kernels reinterpret raw memory).
  const Tensor xf = Tensor::zeros({1, 4, 4, 2}, DType::F32, Device::CUDA);
  const Tensor wb = Tensor::zeros({3, 3, 3, 2}, DType::BF16, Device::CUDA);
  const Tensor outf = Tensor::zeros({1, 4, 4, 3}, DType::F32, Device::CUDA);
  REQUIRE_THROWS_WITH((cuda_backend().conv2d_forward({xf, wb, Tensor(), outf, 1, 1})), Contains("conv2d"));
}
