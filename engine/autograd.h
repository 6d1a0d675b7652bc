// Reverse-mode autograd.
//
// THE GRADIENT RULE
//   * Leaf gradients (parameters, and any leaf tensor with requires_grad) ACCUMULATE: backward
//     kernels add (+=) into the leaf's grad, so gradients of several backward passes sum until
//     zero_grad. Parameter grads are slices of one flat buffer (engine/nn/parameters.h).
//   * Activation gradients are WRITTEN: the first consumer's backward writes (=) a fresh buffer;
//     when a tensor feeds several ops, the later consumers add (+=) into that same buffer.
//   Kernels see this as GradSlot{tensor, accumulate}; they never zero anything themselves.
//
// Each op records a Node with its inputs and a backward closure that captures what the forward
// saved. backward() walks the nodes in reverse topological order and consumes the graph (closures
// and saved tensors are released as soon as they have run).
#pragma once
#include <functional>
#include <vector>

#include "engine/op_args.h"
#include "engine/op_kind.h"
#include "engine/tensor.h"

namespace ddpm {

using BackwardFn = std::function<void(const Tensor& grad_out, std::vector<GradSlot>& grads)>;

struct Node {
  OpKind op;
  std::vector<Tensor> inputs;
  BackwardFn backward;
  bool consumed = false;
};

bool grad_enabled();

// Disables graph recording in its scope (sampling, evaluation, optimizer updates).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// True when recording is on and some input requires a gradient.
bool needs_grad(const std::vector<Tensor>& inputs);

// Makes `out` the result of a recorded op when needs_grad(inputs); returns out.
Tensor record(OpKind op, Tensor out, std::vector<Tensor> inputs, BackwardFn backward);

// Back-propagates from `root`. With no `grad`, root must hold one element and the seed is 1.
void backward(const Tensor& root, Tensor grad = {});

// Writes or adds `value` (same shape) into a slot, following the slot's accumulate flag.
void deposit(GradSlot& slot, const Tensor& value);

}  // namespace ddpm
