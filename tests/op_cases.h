// The op table: one OpCase per differentiable entry of engine/ops.def (DDPM_OP and DDPM_COMPOSITE),
// each a list of configurations (shapes, attributes) with inputs, the op's call, its backend
// forward entry and a float64 reference written independently of the backends. The drivers run
// every check on every case: tests/test_op_table.cpp on the CPU, tests/gpu/test_parity_op_table.cpp
// CPU against CUDA. Adding an op means adding its case in tests/op_cases.cpp.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/tensor.h"

namespace ddpm::test {

// One input of a configuration: a float64 CPU value that each run converts to its dtype (and device).
struct OpInput {
  Tensor value;
  bool differentiable = true;  // the op records a gradient slot for it
  bool follows_dtype = true;   // false: passed as given (labels stay float32 class indices)
};

// The inputs as one run sees them, in the order of OpConfig::inputs.
using OpArgs = std::vector<Tensor>;

struct OpConfig {
  std::string name;  // shapes and attributes, for failure messages
  std::vector<OpInput> inputs;
  // The op through its public function (checks, forward, recorded backward); its result must be
  // the output of one node of the op's OpKind.
  std::function<Tensor(const OpArgs&)> run;
  // The backend's forward entry writing into `out` (run's result shape and dtype); the GPU driver
  // hands it a guarded buffer. Empty for composites, which have no backend entry.
  std::function<void(Backend&, const OpArgs&, const Tensor& out)> forward;
  // The float64 result, computed by plain loops from the float64 inputs. Empty only where
  // OpCase::forward_checked_in names the test that checks the forward instead.
  std::function<std::vector<double>(const OpArgs&)> reference;
};

// Bounds, as normalized errors max|got - want| / max|want| (tests/support.h), except the gradient
// check's rtol / atol per element.
struct Tolerances {
  double reference = 1e-12;  // CPU float64 forward against the plain-loop reference
  double cpu_f32 = 1e-5;     // CPU float32 against CPU float64 on the float32-rounded inputs
  double cuda_f32 = 1e-5;    // CUDA float32 against CPU float64 (forward and gradients)
  double cuda_bf16 = 2e-2;   // CUDA bfloat16 against CPU float64
  // normalized_error's scale floor (tests/support.h) for every comparison: the size of the terms
  // that cancel where a result is exactly or nearly zero.
  double floor = 0;
  double grad_rtol = 1e-6, grad_atol = 1e-8, grad_step = 1e-6;  // float64 central differences
};

struct OpCase {
  OpKind kind = OpKind::add;
  std::vector<OpConfig> configs;
  Tolerances tol;
  std::vector<DType> cpu_dtypes{DType::F64, DType::F32};
  std::vector<DType> cuda_dtypes{DType::F32, DType::BF16};
  const char* forward_checked_in = nullptr;  // where the float64 forward is checked, when no reference
};

// Every case, built once. Configurations use small shapes with awkward sizes (size-1 axes, odd
// sizes, channel counts that are not multiples of vector widths) so that the float64 gradient
// checks stay fast.
const std::vector<OpCase>& op_cases();
// The case of `kind`, or nullptr when the table has none.
const OpCase* find_op_case(OpKind kind);

// A run's view of an input: converted to `dtype` (unless it keeps its own) on `device`.
Tensor as_run_input(const OpInput& input, DType dtype, Device device = Device::CPU);

}  // namespace ddpm::test
