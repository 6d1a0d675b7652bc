// The op table's CPU driver. One TEST_CASE per differentiable entry of engine/ops.def (DDPM_OP and
// DDPM_COMPOSITE, generated from the list: an op without a case in tests/op_cases.cpp fails), and
// for every configuration of its case:
//   forward   float64 against the plain-loop reference, the backend entry against the public
//             function, float32 against float64 on the same (float32-rounded) inputs;
//   gradients float64 central differences of every differentiable input through a non-leaf graph:
//             each input passes through scale(x, 1) and the output through scale(y, 1) before the
//             random-weight sum, so the op's slots are activation slots (written) as in a network;
//   slots     the GradSlot contract of the op's recorded node (engine/autograd.h), in every CPU
//             dtype: a written slot is stored without being read (it starts as NaN), an
//             accumulated one ends at its start plus the written gradient, a slot that is not
//             wanted is skipped and the wanted ones alone get the same values, nothing wanted is
//             a no-op; float32 gradients against float64 on the same inputs.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "tests/op_cases.h"
#include "tests/support.h"

using namespace ddpm;
using test::OpArgs;
using test::OpCase;
using test::OpConfig;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The inputs in `dtype`; `seen_as` (float64) gives instead what a `dtype` run sees, as float64.
OpArgs args_for(const OpConfig& c, DType dtype, bool seen_as_f64 = false) {
  OpArgs args;
  for (const test::OpInput& in : c.inputs) {
    Tensor t = test::as_run_input(in, dtype);
    if (seen_as_f64 && in.follows_dtype) t = t.to(DType::F64);
    args.push_back(t);
  }
  return args;
}

void check_forward(const OpCase& oc, const OpConfig& c) {
  NoGradGuard no_grad;
  const OpArgs args = args_for(c, DType::F64);
  const Tensor out = c.run(args);
  if (c.reference) {
    const std::vector<double> want = c.reference(args);
    REQUIRE(static_cast<size_t>(out.numel()) == want.size());
    const double error = test::normalized_error(out.to_vector(), want, oc.tol.floor);
    INFO("float64 forward against the reference: normalized error " << error << ", bound " << oc.tol.reference);
    REQUIRE(error <= oc.tol.reference);
  } else {
    INFO("a case without a reference must name the test that checks its forward");
    REQUIRE(oc.forward_checked_in != nullptr);
  }
  if (c.forward) {  // the entry the GPU driver calls with guarded outputs writes what the op returns
    const Tensor direct = Tensor::full(out.shape(), kNaN, out.dtype());
    c.forward(cpu_backend(), args, direct);
    REQUIRE(direct.to_vector() == out.to_vector());
  }
  for (DType dt : oc.cpu_dtypes) {
    if (dt == DType::F64) continue;
    const Tensor got = c.run(args_for(c, dt)), want = c.run(args_for(c, dt, true));
    const double error = test::normalized_error(got, want, oc.tol.floor);
    INFO(dtype_name(dt) << " forward against float64 on the same inputs: normalized error " << error << ", bound "
                        << oc.tol.cpu_f32);
    REQUIRE(got.shape() == want.shape());
    REQUIRE(error <= oc.tol.cpu_f32);
  }
}

void check_gradients_through_graph(const OpCase& oc, const OpConfig& c) {
  std::vector<Tensor> differentiable;
  for (const test::OpInput& in : c.inputs)
    if (in.differentiable) differentiable.push_back(in.value);
  REQUIRE_FALSE(differentiable.empty());
  test::check_gradients(
      [&](const std::vector<Tensor>& leaves) {
        OpArgs args;
        size_t k = 0;
        for (const test::OpInput& in : c.inputs) args.push_back(in.differentiable ? scale(leaves[k++], 1.0) : in.value);
        Tensor out = c.run(args);
        if (out.dtype() != DType::F64) out = convert(out, DType::F64);
        return scale(out, 1.0);
      },
      differentiable, oc.tol.grad_rtol, oc.tol.grad_atol, oc.tol.grad_step);
}

// The op run once with gradients on, and its node.
struct Recorded {
  Tensor out;
  std::shared_ptr<Node> node;
};

Recorded record_op(const OpCase& oc, const OpConfig& c, const OpArgs& inputs) {
  OpArgs args;
  for (size_t i = 0; i < inputs.size(); ++i)
    args.push_back(c.inputs[i].differentiable ? inputs[i].clone().set_requires_grad(true) : inputs[i]);
  Recorded r{c.run(args), nullptr};
  r.node = r.out.impl().grad_fn;
  REQUIRE(r.node != nullptr);
  INFO("the node records as '" << op_name(r.node->op) << "', expected '" << op_name(oc.kind) << "'");
  REQUIRE(r.node->op == oc.kind);
  // Every differentiable input is an input of the node (by identity), and only those want slots.
  size_t wanted = 0;
  for (const Tensor& in : r.node->inputs) wanted += in.defined() && in.requires_grad();
  size_t differentiable = 0;
  for (const test::OpInput& in : c.inputs) differentiable += in.differentiable;
  REQUIRE(wanted == differentiable);
  return r;
}

bool wants(const Node& node, size_t j) { return node.inputs[j].defined() && node.inputs[j].requires_grad(); }

Tensor nan_like(const Tensor& t) { return Tensor::full(t.shape(), kNaN, t.dtype()); }

// The written gradient of every slot (undefined where none is wanted).
std::vector<Tensor> written_gradients(Node& node, const Tensor& g) {
  std::vector<GradSlot> slots(node.inputs.size());
  for (size_t j = 0; j < slots.size(); ++j)
    if (wants(node, j)) slots[j] = {nan_like(node.inputs[j]), false};
  node.backward(g, slots);
  std::vector<Tensor> out;
  for (const GradSlot& s : slots) out.push_back(s.tensor);
  return out;
}

void check_slot_contract(const OpCase& oc, const OpConfig& c, DType dt) {
  INFO(dtype_name(dt) << " slots");
  const Recorded r = record_op(oc, c, args_for(c, dt));
  Node& node = *r.node;
  const size_t n = node.inputs.size();
  const Tensor g = test::randn(r.out.shape(), 300).to(r.out.dtype());
  // Rounding differences between two calls of a kernel are what the bound allows: none in float64
  // beyond summation order, float32's own for float32.
  const double same = dt == DType::F64 ? 1e-12 : 1e-6;

  // Written: every element stored, none read (a read of the NaN start would propagate).
  const std::vector<Tensor> written = written_gradients(node, g);
  for (size_t j = 0; j < n; ++j) {
    if (!wants(node, j)) continue;
    INFO("written slot " << j << " (" << shape_str(written[j].shape()) << ")");
    REQUIRE(test::all_finite(written[j]));
  }

  // Accumulated: start + written.
  std::vector<GradSlot> accumulated(n);
  std::vector<std::vector<double>> expected(n);
  for (size_t j = 0; j < n; ++j) {
    if (!wants(node, j)) continue;
    const Tensor start = test::randn(node.inputs[j].shape(), 310 + j).to(node.inputs[j].dtype());
    accumulated[j] = {start.clone(), true};
    expected[j] = start.to_vector();
    const std::vector<double> w = written[j].to_vector();
    for (size_t i = 0; i < w.size(); ++i) expected[j][i] += w[i];
  }
  node.backward(g, accumulated);
  for (size_t j = 0; j < n; ++j) {
    if (!wants(node, j)) continue;
    const double error = test::normalized_error(accumulated[j].tensor.to_vector(), expected[j], oc.tol.floor);
    INFO("accumulated slot " << j << ": normalized error against start + written " << error);
    REQUIRE(error <= same);
  }

  // One slot wanted, the others skipped: the same values.
  for (size_t j = 0; j < n; ++j) {
    if (!wants(node, j)) continue;
    std::vector<GradSlot> alone(n);
    alone[j] = {nan_like(node.inputs[j]), false};
    node.backward(g, alone);
    const double error = test::normalized_error(alone[j].tensor, written[j], oc.tol.floor);
    INFO("slot " << j << " alone: normalized error against all written " << error);
    REQUIRE(test::all_finite(alone[j].tensor));
    REQUIRE(error <= same);
  }
  std::vector<GradSlot> none(n);
  REQUIRE_NOTHROW(node.backward(g, none));

  // Narrower dtypes: the gradients against float64's on the same inputs.
  if (dt != DType::F64) {
    const Recorded wide = record_op(oc, c, args_for(c, dt, true));
    const std::vector<Tensor> want = written_gradients(*wide.node, g.to(wide.out.dtype()));
    for (size_t j = 0; j < n; ++j) {
      if (!wants(node, j)) continue;
      const double error = test::normalized_error(written[j], want[j], oc.tol.floor);
      INFO("slot " << j << " against float64: normalized error " << error << ", bound " << oc.tol.cpu_f32);
      REQUIRE(error <= oc.tol.cpu_f32);
    }
  }
}

void check_op(OpKind kind) {
  const OpCase* oc = test::find_op_case(kind);
  INFO("op " << op_name(kind) << ": its case in tests/op_cases.cpp");
  REQUIRE(oc != nullptr);
  REQUIRE_FALSE(oc->configs.empty());
  for (const OpConfig& c : oc->configs) {
    INFO("configuration " << c.name);
    check_forward(*oc, c);
    check_gradients_through_graph(*oc, c);
    for (DType dt : oc->cpu_dtypes) check_slot_contract(*oc, c, dt);
  }
}

const std::vector<OpKind> kDifferentiable = {
#define DDPM_OP(name) OpKind::name,
#define DDPM_COMPOSITE(name) OpKind::name,
#include "engine/ops.def"
};

}  // namespace

#define DDPM_OP(name) \
  TEST_CASE("op table: " #name, "[op_table][" #name "]") { check_op(OpKind::name); }
#define DDPM_COMPOSITE(name) DDPM_OP(name)
#include "engine/ops.def"

TEST_CASE("op table: one case per differentiable op, none for plain kernels", "[op_table]") {
  for (const OpCase& c : test::op_cases()) {
    INFO("case " << op_name(c.kind));
    REQUIRE(std::count(kDifferentiable.begin(), kDifferentiable.end(), c.kind) == 1);
    int copies = 0;
    for (const OpCase& other : test::op_cases()) copies += other.kind == c.kind;
    REQUIRE(copies == 1);
  }
  REQUIRE(test::op_cases().size() == kDifferentiable.size());
}
