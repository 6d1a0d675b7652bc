// The op table's CUDA driver: every configuration of every case in tests/op_cases.cpp (one
// TEST_CASE per differentiable entry of engine/ops.def), CPU float64 against CUDA in each of the
// case's CUDA dtypes, on the inputs as the GPU sees them (test::as_seen):
//   forward   the backend entry writes into a guarded buffer (guards intact, finite, within the
//             case's bound); the public function's result too (the only check for composites);
//   slots     the op's recorded node on each device gets the same slots: all written (the GPU's
//             start as NaN in guarded buffers, so a read or a skipped element shows), all
//             accumulated (the same random start on both), and each alone with the others skipped.
// The UNet-sized shapes and kernel-path choices (cuDNN, tensor cores, multi-block reductions) stay
// in the per-family parity tests next to this file.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/backend.h"
#include "tests/gpu/parity.h"
#include "tests/op_cases.h"
#include "tests/support.h"

using namespace ddpm;
using test::OpArgs;
using test::OpCase;
using test::OpConfig;

namespace {

OpArgs gpu_args(const OpConfig& c, DType dt) {
  OpArgs args;
  for (const test::OpInput& in : c.inputs) args.push_back(test::as_run_input(in, dt, Device::CUDA));
  return args;
}

// What the GPU sees, as float64 on the CPU (inputs that keep their dtype are passed as given).
OpArgs cpu_args(const OpConfig& c, DType dt) {
  OpArgs args;
  for (const test::OpInput& in : c.inputs) args.push_back(in.follows_dtype ? test::as_seen(in.value, dt) : in.value);
  return args;
}

double bound_for(const OpCase& oc, DType dt) { return dt == DType::F32 ? oc.tol.cuda_f32 : oc.tol.cuda_bf16; }

std::shared_ptr<Node> record_op(const OpCase& oc, const OpConfig& c, const OpArgs& inputs, Tensor& out) {
  OpArgs args;
  for (size_t i = 0; i < inputs.size(); ++i)
    args.push_back(c.inputs[i].differentiable ? inputs[i].clone().set_requires_grad(true) : inputs[i]);
  out = c.run(args);
  std::shared_ptr<Node> node = out.impl().grad_fn;
  REQUIRE(node != nullptr);
  REQUIRE(node->op == oc.kind);
  return node;
}

bool wants(const Node& node, size_t j) { return node.inputs[j].defined() && node.inputs[j].requires_grad(); }

void check_config(const OpCase& oc, const OpConfig& c, DType dt) {
  const std::string what = std::string(op_name(oc.kind)) + " " + c.name + " " + dtype_name(dt);
  const double bound = bound_for(oc, dt);
  const OpArgs on_cpu = cpu_args(c, dt), on_gpu = gpu_args(c, dt);
  {
    NoGradGuard no_grad;
    const Tensor want = c.run(on_cpu);
    if (c.forward) {
      const test::Guarded got = test::guarded_empty(want.shape(), dt);
      c.forward(cuda_backend(), on_gpu, got.tensor);
      test::require_parity(got, want, bound, what + " forward (backend entry)", oc.tol.floor);
    }
    const Tensor got = c.run(on_gpu);
    INFO(what << " forward (public function)");
    REQUIRE(got.device() == Device::CUDA);
    REQUIRE(got.shape() == want.shape());
    REQUIRE(test::all_finite(got));
    REQUIRE(test::normalized_error(got, want, oc.tol.floor) <= bound);
  }

  Tensor out_cpu, out_gpu;
  const std::shared_ptr<Node> node_cpu = record_op(oc, c, on_cpu, out_cpu);
  const std::shared_ptr<Node> node_gpu = record_op(oc, c, on_gpu, out_gpu);
  const size_t n = node_cpu->inputs.size();
  REQUIRE(node_gpu->inputs.size() == n);
  const Tensor g = test::randn(out_cpu.shape(), 300);
  const Tensor g_cpu = test::as_seen(g, out_gpu.dtype()).to(out_cpu.dtype()), g_gpu = test::to_cuda(g, out_gpu.dtype());
  // Slot j in `mode`: both sides, the CPU's in float64, the GPU's guarded in the input's dtype.
  auto run = [&](const std::vector<int>& mode, const std::string& label) {  // mode: 0 skip, 1 write, 2 accumulate
    std::vector<test::Out> outs;
    std::vector<GradSlot> cpu_slots(n), gpu_slots(n);
    for (size_t j = 0; j < n; ++j)
      outs.push_back(mode[j] ? test::output(node_cpu->inputs[j].shape(), node_gpu->inputs[j].dtype(), mode[j] == 2, 320 + j)
                             : test::Out{});
    for (size_t j = 0; j < n; ++j)
      if (mode[j]) cpu_slots[j] = outs[j].cpu_slot(), gpu_slots[j] = outs[j].gpu_slot();
    node_cpu->backward(g_cpu, cpu_slots);
    node_gpu->backward(g_gpu, gpu_slots);
    for (size_t j = 0; j < n; ++j)
      if (mode[j])
        test::require_parity(outs[j].gpu, outs[j].cpu, bound,
                             what + " slot " + std::to_string(j) + (mode[j] == 2 ? " accumulated" : " written") + label,
                             oc.tol.floor);
  };
  std::vector<int> all_written(n, 0), all_accumulated(n, 0);
  for (size_t j = 0; j < n; ++j)
    if (wants(*node_cpu, j)) all_written[j] = 1, all_accumulated[j] = 2;
  run(all_written, "");
  run(all_accumulated, "");
  for (size_t j = 0; j < n; ++j) {
    if (!wants(*node_cpu, j)) continue;
    std::vector<int> alone(n, 0);
    alone[j] = 1;
    run(alone, " alone (the others skipped)");
  }
}

void check_op(OpKind kind) {
  const OpCase* oc = test::find_op_case(kind);
  INFO("op " << op_name(kind) << ": its case in tests/op_cases.cpp");
  REQUIRE(oc != nullptr);
  for (const OpConfig& c : oc->configs)
    for (DType dt : oc->cuda_dtypes) check_config(*oc, c, dt);
}

}  // namespace

#define DDPM_OP(name) \
  TEST_CASE("op table on CUDA: " #name, "[gpu][parity][op_table][" #name "]") { check_op(OpKind::name); }
#define DDPM_COMPOSITE(name) DDPM_OP(name)
#include "engine/ops.def"
