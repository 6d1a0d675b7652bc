// GroupNorm (+ fused SiLU) and attention on CUDA against the CPU reference: each op runs on the CPU
// in float64 on the inputs as the GPU sees them (test::as_seen) and on the GPU in float32 and
// bfloat16; GPU outputs live in guarded buffers. A written gradient slot starts as NaN on the GPU,
// so a kernel that reads a slot it should only write fails the finite check; an accumulated slot
// starts from the same random values on both sides.
//
// Bounds (normalized error max|gpu - cpu| / max|cpu|, tests/gpu/parity.h):
// - float32, 1e-5: every reduction is a float32 tree or blocked sum (GroupNorm: over at most
//   S * Cg = 4096 elements per group and N * S per channel; attention: dot products of d <= 256
//   terms and softmax sums of T <= 300 terms), whose relative error stays near sqrt(log2 n) eps ~
//   1e-6; the GroupNorm large-mean case is covered by the corrected two-pass statistics.
// - bfloat16, 2e-2: inputs are identical on both sides, math is float32, and every output or
//   gradient is rounded once to an 8-bit significand (2^-9 relative), plus the gradients' use of
//   the rounded forward output (attention's rowsum(dO * O)).
// - GroupNorm statistics (float32 for both dtypes, from identical inputs): 1e-5.
// - Where a gradient's terms cancel (GroupNorm grad_x over two-element groups, attention grad_q
//   and grad_k over one key), the error is divided by the terms' size instead (a floor:
//   tests/gpu/parity.h), since the exact result is zero or O(eps / var) of them.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/ops.h"
#include "kernels/cuda/attention_tc.h"
#include "kernels/cuda/attention_unfused.h"
#include "tests/gpu/parity.h"
#include "tests/support.h"

using namespace ddpm;

namespace {

Backend& cpu() { return cpu_backend(); }
Backend& gpu() { return cuda_backend(); }

const DType kDtypes[] = {DType::F32, DType::BF16};
const bool kModes[] = {false, true};  // GradSlot: write, accumulate
double bound_for(DType dt) { return dt == DType::F32 ? test::kBoundF32 : test::kBoundBF16; }

using test::In;
using test::input;
using test::Out;
using test::output;

void check(const Out& o, double bound, const std::string& what, double floor = 0) {
  test::require_parity(o.gpu, o.cpu, bound, what + (o.accumulate ? " (accumulate)" : " (write)"), floor);
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to_vector()) m = std::max(m, std::fabs(v));
  return m;
}

// A view of base's storage with `shape`, starting `first` elements in (an unaligned pointer).
Tensor view_at(const Tensor& base, int64_t first, const Shape& shape) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.impl().storage;
  impl->offset = base.impl().offset + static_cast<size_t>(first) * dtype_size(base.dtype());
  impl->shape = shape;
  impl->dtype = base.dtype();
  impl->device = base.device();
  return Tensor(std::move(impl));
}
// The GPU copy of `values` one element past an aligned address.
Tensor unaligned_cuda(const Tensor& values, DType dt) {
  const Tensor base = Tensor::empty({values.numel() + 1}, dt, Device::CUDA);
  const Tensor view = view_at(base, 1, values.shape());
  view.copy_from(values.to(dt).to(Device::CUDA));
  return view;
}

// ---------------------------------------------------------------------------------------------
// group_norm

struct NormCase {
  Shape shape;
  int groups;
  bool silu;
};

std::string norm_label(const NormCase& nc, DType dt) {
  return std::string("group_norm ") + dtype_name(dt) + " x " + shape_str(nc.shape) + ", " +
         std::to_string(nc.groups) + " groups" + (nc.silu ? " + SiLU" : "");
}

// x = shift + stddev * N(0, 1); gamma around 1 and beta around 0 so that every term matters.
struct NormInputs {
  Tensor x, gamma, beta, grad_out;
};
NormInputs norm_inputs(const Shape& shape, double shift, double stddev) {
  const int64_t c = shape.back();
  NormInputs in;
  in.x = add(test::randn(shape, 11, stddev), Tensor::full({c}, shift, DType::F64));
  in.gamma = add(test::randn({c}, 12, 0.5), Tensor::ones({c}, DType::F64));
  in.beta = test::randn({c}, 13, 0.5);
  in.grad_out = test::randn(shape, 14);
  return in;
}

// max over elements of rstd(sample, group) |grad_out gamma|: the size of grad_x's terms.
double grad_x_term_scale(const Shape& shape, int groups, const Tensor& grad_out, const Tensor& gamma,
                         const Tensor& rstd) {
  const std::vector<double> g = grad_out.to_vector(), w = gamma.to_vector(), r = rstd.to_vector();
  const int64_t c = shape.back(), per_sample = numel(shape) / shape.front(), cg = c / groups;
  double m = 0;
  for (size_t e = 0; e < g.size(); ++e) {
    const int64_t n = static_cast<int64_t>(e) / per_sample, ch = static_cast<int64_t>(e) % c;
    m = std::max(m, r[static_cast<size_t>(n * groups + ch / cg)] * std::fabs(g[e] * w[static_cast<size_t>(ch)]));
  }
  return m;
}

// Forward (output and statistics) and backward in every slot mode; `x_gpu` overrides the GPU's x
// (unaligned views).
void check_group_norm(const NormCase& nc, DType dt, const NormInputs& values, const Tensor& x_gpu = Tensor()) {
  const std::string what = norm_label(nc, dt);
  const double bound = bound_for(dt);
  const double eps = 1e-5;
  const int64_t n = nc.shape.front(), c = nc.shape.back();
  const In x = {test::as_seen(values.x, dt), x_gpu.defined() ? x_gpu : test::to_cuda(values.x, dt)};
  const In gamma = input(values.gamma, dt), beta = input(values.beta, dt), g = input(values.grad_out, dt);

  Out out = output(nc.shape, dt), mean = output({n, nc.groups}, DType::F32), rstd = output({n, nc.groups}, DType::F32);
  cpu().group_norm_forward({x.cpu, gamma.cpu, beta.cpu, out.cpu, mean.cpu, rstd.cpu, nc.groups, eps, nc.silu});
  gpu().group_norm_forward(
      {x.gpu, gamma.gpu, beta.gpu, out.gpu.tensor, mean.gpu.tensor, rstd.gpu.tensor, nc.groups, eps, nc.silu});
  check(out, bound, what + " forward");
  check(mean, test::kBoundF32, what + " mean");
  check(rstd, test::kBoundF32, what + " rstd");

  // grad_x = rstd (g gamma - mean(g gamma) - xhat mean(g gamma xhat)) (times SiLU' <= 1.1) cancels
  // to O(eps / var) of its terms when a group has two elements (xhat = +-sqrt(var / (var + eps)):
  // [3, 6] with 3 groups); its error is then a few float32 ulps of rstd |g gamma|, the floor.
  const double gx_floor = 1.1 * grad_x_term_scale(x.cpu.shape(), nc.groups, g.cpu, gamma.cpu, rstd.cpu);
  // Each backend's backward gets its own forward's statistics, as in training.
  for (bool acc : kModes) {
    Out gx = output(nc.shape, dt, acc, 21), ggamma = output({c}, dt, acc, 22), gbeta = output({c}, dt, acc, 23);
    cpu().group_norm_backward({g.cpu, x.cpu, gamma.cpu, beta.cpu, mean.cpu, rstd.cpu, nc.groups, nc.silu,
                               gx.cpu_slot(), ggamma.cpu_slot(), gbeta.cpu_slot()});
    gpu().group_norm_backward({g.gpu, x.gpu, gamma.gpu, beta.gpu, mean.gpu.tensor, rstd.gpu.tensor, nc.groups,
                               nc.silu, gx.gpu_slot(), ggamma.gpu_slot(), gbeta.gpu_slot()});
    check(gx, bound, what + " grad_x", gx_floor);
    check(ggamma, bound, what + " grad_gamma");
    check(gbeta, bound, what + " grad_beta");
  }
  // Some slots not wanted: they are skipped, the others still right.
  Out gx = output(nc.shape, dt), ggamma = output({c}, dt);
  cpu().group_norm_backward(
      {g.cpu, x.cpu, gamma.cpu, beta.cpu, mean.cpu, rstd.cpu, nc.groups, nc.silu, gx.cpu_slot(), {}, {}});
  gpu().group_norm_backward({g.gpu, x.gpu, gamma.gpu, beta.gpu, mean.gpu.tensor, rstd.gpu.tensor, nc.groups,
                             nc.silu, gx.gpu_slot(), {}, {}});
  check(gx, bound, what + " grad_x only", gx_floor);
  cpu().group_norm_backward(
      {g.cpu, x.cpu, gamma.cpu, beta.cpu, mean.cpu, rstd.cpu, nc.groups, nc.silu, {}, ggamma.cpu_slot(), {}});
  gpu().group_norm_backward({g.gpu, x.gpu, gamma.gpu, beta.gpu, mean.gpu.tensor, rstd.gpu.tensor, nc.groups,
                             nc.silu, {}, ggamma.gpu_slot(), {}});
  check(ggamma, bound, what + " grad_gamma only");
}

// ---------------------------------------------------------------------------------------------
// attention

struct AttnCase {
  int64_t n, t, c;
  int heads;
};

std::string attn_label(const char* path, const AttnCase& ac, DType dt) {
  return std::string(path) + " " + dtype_name(dt) + " [" + std::to_string(ac.n) + ", " + std::to_string(ac.t) +
         ", " + std::to_string(ac.c) + "], " + std::to_string(ac.heads) + " heads (d = " +
         std::to_string(ac.c / ac.heads) + ")";
}

// The DDPM UNet's attention (16x16 and 8x8 maps at batch 2) and awkward sizes: T not a multiple
// of any tile, d = 128, and d = 18 (no 4-element vectors; padded to 32).
const AttnCase kAttnCases[] = {{2, 256, 256, 1}, {2, 256, 256, 4}, {2, 64, 256, 1}, {2, 64, 256, 8},
                               {2, 6, 64, 2},    {2, 49, 64, 2},   {2, 100, 64, 2}, {2, 100, 256, 2},
                               {2, 49, 36, 2},   {1, 300, 64, 1},  {3, 1, 32, 1}};

// max over rows and heads of sum_c |a_ic b_ic| over the head's channels (a, b [N, T, C]).
double head_dot_scale(const Tensor& a, const Tensor& b, int heads) {
  const std::vector<double> x = a.to_vector(), y = b.to_vector();
  const int64_t c = a.shape().back(), d = c / heads;
  double m = 0;
  for (size_t row = 0; row < x.size(); row += static_cast<size_t>(d)) {
    double sum = 0;
    for (int64_t e = 0; e < d; ++e) sum += std::fabs(x[row + e] * y[row + e]);
    m = std::max(m, sum);
  }
  return m;
}

using AttnForward = std::function<void(const attention_fwd&)>;
using AttnBackward = std::function<void(const attention_bwd&)>;

void check_attention(const char* path, const AttnCase& ac, DType dt, const AttnForward& forward,
                     const AttnBackward& backward, const Tensor& q_gpu = Tensor()) {
  const std::string what = attn_label(path, ac, dt);
  const double bound = bound_for(dt);
  const Shape shape = {ac.n, ac.t, ac.c};
  const Tensor q_values = test::randn(shape, 31);
  const In q = {test::as_seen(q_values, dt), q_gpu.defined() ? q_gpu : test::to_cuda(q_values, dt)};
  const In k = input(test::randn(shape, 32), dt), v = input(test::randn(shape, 33), dt);
  const In g = input(test::randn(shape, 34), dt);

  Out out = output(shape, dt);
  cpu().attention_forward({q.cpu, k.cpu, v.cpu, out.cpu, ac.heads});
  forward({q.gpu, k.gpu, v.gpu, out.gpu.tensor, ac.heads});
  check(out, bound, what + " forward");

  // dQ_i = sum_j P_ij (dP_ij - D_i) k_j / sqrt(d), D_i = sum_c dO_ic O_ic = sum_j P_ij dP_ij: the
  // parentheses cancel exactly for one key (P = 1, O = v: dQ = 0), and to a few ulps of their
  // terms otherwise. The floor is the D term's size, max|k| max_i sum_c |dO_ic O_ic| / sqrt(d)
  // (max|q| for dK, whose dS^T q sum has the same parentheses).
  const double dsum_scale = head_dot_scale(g.cpu, out.cpu, ac.heads) / std::sqrt(static_cast<double>(ac.c / ac.heads));
  const double q_floor = max_abs(k.cpu) * dsum_scale, k_floor = max_abs(q.cpu) * dsum_scale;
  // Each backend's backward gets its own forward output.
  for (bool acc : kModes) {
    Out gq = output(shape, dt, acc, 41), gk = output(shape, dt, acc, 42), gv = output(shape, dt, acc, 43);
    cpu().attention_backward({g.cpu, q.cpu, k.cpu, v.cpu, out.cpu, ac.heads, gq.cpu_slot(), gk.cpu_slot(),
                              gv.cpu_slot()});
    backward({g.gpu, q.gpu, k.gpu, v.gpu, out.gpu.tensor, ac.heads, gq.gpu_slot(), gk.gpu_slot(), gv.gpu_slot()});
    check(gq, bound, what + " grad_q", q_floor);
    check(gk, bound, what + " grad_k", k_floor);
    check(gv, bound, what + " grad_v");
  }
  Out gq = output(shape, dt), gv = output(shape, dt);
  cpu().attention_backward({g.cpu, q.cpu, k.cpu, v.cpu, out.cpu, ac.heads, gq.cpu_slot(), {}, {}});
  backward({g.gpu, q.gpu, k.gpu, v.gpu, out.gpu.tensor, ac.heads, gq.gpu_slot(), {}, {}});
  check(gq, bound, what + " grad_q only", q_floor);
  cpu().attention_backward({g.cpu, q.cpu, k.cpu, v.cpu, out.cpu, ac.heads, {}, {}, gv.cpu_slot()});
  backward({g.gpu, q.gpu, k.gpu, v.gpu, out.gpu.tensor, ac.heads, {}, {}, gv.gpu_slot()});
  check(gv, bound, what + " grad_v only");
}

const AttnForward kFused = [](const attention_fwd& a) { gpu().attention_forward(a); };
const AttnBackward kFusedBackward = [](const attention_bwd& a) { gpu().attention_backward(a); };

}  // namespace

TEST_CASE("CUDA group_norm (+ SiLU) matches the CPU", "[gpu][parity][group_norm]") {
  // The UNet's maps at batch 2 (32 groups), awkward sizes (3 channels per group and a 5x7 map;
  // rank 2; one group; one channel per group) and a 128x128 map that takes several row chunks.
  const NormCase cases[] = {
      {{2, 32, 32, 128}, 32, false}, {{2, 32, 32, 128}, 32, true}, {{2, 16, 16, 256}, 32, false},
      {{2, 16, 16, 256}, 32, true},  {{2, 8, 8, 256}, 32, false},  {{2, 8, 8, 256}, 32, true},
      {{2, 4, 4, 512}, 32, false},   {{2, 4, 4, 512}, 32, true},   {{2, 5, 7, 96}, 32, false},
      {{2, 5, 7, 96}, 32, true},     {{3, 6}, 3, false},           {{2, 3, 5, 8}, 1, true},
      {{2, 2, 2, 4}, 4, true},       {{1, 128, 128, 64}, 32, true}};
  for (DType dt : kDtypes)
    for (const NormCase& nc : cases) check_group_norm(nc, dt, norm_inputs(nc.shape, 0.7, 2.0));
}

TEST_CASE("CUDA group_norm keeps float32 precision at a large mean", "[gpu][parity][group_norm]") {
  // mean 1e3, std 1: a naive float32 E[x^2] - E[x]^2 loses everything; the kernel's corrected
  // two-pass statistics (and the backward's mean correction) must still match float64. No SiLU:
  // its derivative is evaluated at y from the float32 saved mean (off by up to half an ulp of 1e3).
  const NormCase cases[] = {{{2, 16, 16, 256}, 32, false}, {{2, 32, 32, 128}, 32, false},
                            {{1, 128, 128, 64}, 32, false}};
  for (const NormCase& nc : cases) check_group_norm(nc, DType::F32, norm_inputs(nc.shape, 1e3, 1.0));
}

TEST_CASE("CUDA group_norm handles unaligned tensors", "[gpu][parity][group_norm]") {
  const NormCase nc = {{2, 8, 8, 256}, 32, true};
  const NormInputs values = norm_inputs(nc.shape, 0.7, 2.0);
  for (DType dt : kDtypes) check_group_norm(nc, dt, values, unaligned_cuda(values.x, dt));
}

TEST_CASE("CUDA fused attention matches the CPU", "[gpu][parity][attention]") {
  for (DType dt : kDtypes)
    for (const AttnCase& ac : kAttnCases) check_attention("attention", ac, dt, kFused, kFusedBackward);
}

TEST_CASE("CUDA fused attention handles unaligned tensors", "[gpu][parity][attention]") {
  const AttnCase ac = {2, 49, 64, 2};
  for (DType dt : kDtypes)
    check_attention("attention (unaligned q)", ac, dt, kFused, kFusedBackward,
                    unaligned_cuda(test::randn({ac.n, ac.t, ac.c}, 31), dt));
}

TEST_CASE("CUDA tensor-core attention (bfloat16) matches the CPU", "[gpu][parity][attention]") {
  // The UNet's shapes, T not a multiple of the 32-row tiles or the 64-row blocks, one token, and
  // head sizes padded to 64 (d = 24, 32), 128 and 256 (d = 192, zero columns). Bound kBoundBF16:
  // beyond the SIMT kernels' roundings, P and dS are rounded to bfloat16 (2^-9 relative) as the
  // A operand of the second product, so each output or gradient carries about 2 x 2^-9 = 4e-3 of
  // its terms' size, 5x inside 2e-2.
  const AttnCase cases[] = {{2, 256, 256, 1}, {2, 64, 256, 1}, {2, 256, 256, 4}, {2, 100, 64, 2},
                            {2, 49, 128, 1},  {3, 1, 32, 1},   {1, 300, 192, 1}, {2, 6, 48, 2}};
  const AttnForward forward = [](const attention_fwd& a) {
    REQUIRE(cuda::attention_tc_supported(a.q, a.heads, {&a.k, &a.v, &a.out}));
    cuda::attention_tc_forward(a);
  };
  const AttnBackward backward = [](const attention_bwd& a) { cuda::attention_tc_backward(a); };
  for (const AttnCase& ac : cases) check_attention("attention (tensor cores)", ac, DType::BF16, forward, backward);
}

TEST_CASE("tensor-core attention declines what it cannot run", "[gpu][attention]") {
  const Tensor q = Tensor::zeros({2, 6, 36}, DType::BF16, Device::CUDA);  // d = 18: not a multiple of 8
  REQUIRE_FALSE(cuda::attention_tc_supported(q, 2, {}));
  REQUIRE(cuda::attention_tc_supported(q.to(DType::F32).to(DType::BF16), 3, {}) == false);  // d = 12
  REQUIRE_FALSE(cuda::attention_tc_supported(Tensor::zeros({2, 6, 64}, DType::F32, Device::CUDA), 1, {}));
  REQUIRE(cuda::attention_tc_supported(Tensor::zeros({2, 6, 64}, DType::BF16, Device::CUDA), 1, {}));
}

TEST_CASE("the unfused cuBLAS attention (benchmark baseline) matches the CPU", "[gpu][parity][attention]") {
  const AttnForward forward = [](const attention_fwd& a) { cuda::attention_unfused_forward(a); };
  const AttnBackward backward = [](const attention_bwd& a) { cuda::attention_unfused_backward(a); };
  for (DType dt : kDtypes)
    for (const AttnCase& ac : kAttnCases) check_attention("attention (unfused)", ac, dt, forward, backward);
}

TEST_CASE("CUDA group_norm and attention reject float64", "[gpu][group_norm][attention]") {
  const Tensor x = Tensor::zeros({2, 4, 4, 8}, DType::F64, Device::CUDA);
  const Tensor c8 = Tensor::zeros({8}, DType::F64, Device::CUDA);
  const Tensor stats = Tensor::zeros({2, 4}, DType::F32, Device::CUDA);
  const Tensor out = Tensor::empty({2, 4, 4, 8}, DType::F64, Device::CUDA);
  REQUIRE_THROWS_WITH(gpu().group_norm_forward({x, c8, c8, out, stats, stats, 4, 1e-5, false}),
                      Catch::Contains("group_norm") && Catch::Contains("float64"));
  const Tensor q = Tensor::zeros({2, 6, 8}, DType::F64, Device::CUDA);
  REQUIRE_THROWS_WITH(gpu().attention_forward({q, q, q, Tensor::empty({2, 6, 8}, DType::F64, Device::CUDA), 2}),
                      Catch::Contains("attention") && Catch::Contains("float64"));
}
