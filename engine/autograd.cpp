#include "engine/autograd.h"

#include <unordered_map>
#include <unordered_set>

#include "engine/backend.h"

namespace ddpm {

namespace {
thread_local bool g_grad_enabled = true;

Tensor new_like(const Tensor& t) { return Tensor::empty(t.shape(), t.dtype(), t.device()); }

// Nodes reachable from root, ordered so that every node comes after all nodes that consume it.
// Owning pointers: running a node releases its inputs, which may hold the last reference to a
// producer that is still to run.
std::vector<std::shared_ptr<Node>> reverse_topological(const std::shared_ptr<Node>& root) {
  std::vector<std::shared_ptr<Node>> post_order;
  std::unordered_set<Node*> visited;
  std::vector<std::pair<std::shared_ptr<Node>, size_t>> stack{{root, 0}};
  visited.insert(root.get());
  while (!stack.empty()) {
    auto& [node, next_input] = stack.back();
    if (next_input < node->inputs.size()) {
      const Tensor& input = node->inputs[next_input++];
      std::shared_ptr<Node> child = input.defined() ? input.impl().grad_fn : nullptr;
      if (child && visited.insert(child.get()).second) stack.push_back({child, 0});
    } else {
      post_order.push_back(node);
      stack.pop_back();
    }
  }
  return {post_order.rbegin(), post_order.rend()};
}
}  // namespace

bool grad_enabled() { return g_grad_enabled; }

NoGradGuard::NoGradGuard() : previous_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = previous_; }

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

Tensor record(OpKind op, Tensor out, std::vector<Tensor> inputs, BackwardFn backward) {
  if (!needs_grad(inputs)) return out;
  auto node = std::make_shared<Node>();
  node->op = op;
  node->inputs = std::move(inputs);
  node->backward = std::move(backward);
  out.impl().grad_fn = std::move(node);
  out.impl().requires_grad = true;
  return out;
}

void backward(const Tensor& root, Tensor grad) {
  DDPM_CHECK(root.requires_grad(), "backward: the tensor ", root.describe(),
             " does not require grad (no input of its graph has requires_grad set, or it was "
             "computed under NoGradGuard)");
  if (!grad.defined()) {
    DDPM_CHECK(root.numel() == 1, "backward: an implicit gradient needs a one-element tensor, got ",
               root.describe(), "; pass the upstream gradient explicitly");
    grad = Tensor::full(root.shape(), 1.0, root.dtype(), root.device());
  }
  check_shape("backward", "gradient", grad, root.shape());

  if (!root.impl().grad_fn) {  // a leaf: its gradient is just the seed
    Tensor g = root.grad();
    if (!g.defined()) {
      root.impl().grad = Tensor::zeros(root.shape(), root.dtype(), root.device()).impl_ptr();
      g = root.grad();
    }
    BinaryFwd add{g, grad, g};
    backend_for(g.device()).add_forward(add);
    return;
  }

  std::unordered_map<Node*, Tensor> pending;  // gradient of each node's output
  const std::shared_ptr<Node>& root_node = root.impl().grad_fn;
  pending[root_node.get()] = grad;
  for (const std::shared_ptr<Node>& node : reverse_topological(root_node)) {
    auto found = pending.find(node.get());
    if (found == pending.end()) continue;
    DDPM_CHECK(!node->consumed, "backward: the graph through '", op_name(node->op),
               "' was already consumed by an earlier backward(); run the forward again");
    Tensor grad_out = found->second;
    pending.erase(found);

    std::vector<GradSlot> slots(node->inputs.size());
    for (size_t i = 0; i < node->inputs.size(); ++i) {
      const Tensor& in = node->inputs[i];
      if (!in.defined() || !in.requires_grad()) continue;
      if (Node* producer = in.impl().grad_fn.get()) {
        auto [it, first] = pending.try_emplace(producer);
        if (first) it->second = new_like(in);
        slots[i] = {it->second, !first};
      } else {
        if (!in.impl().grad)
          in.impl().grad = Tensor::zeros(in.shape(), in.dtype(), in.device()).impl_ptr();
        slots[i] = {in.grad(), true};
      }
    }
    node->backward(grad_out, slots);
    node->backward = nullptr;  // release what the forward saved
    node->inputs.clear();
    node->consumed = true;
  }
}

void deposit(GradSlot& slot, const Tensor& value) {
  if (!slot.wanted()) return;
  Tensor v = value.reshape(slot.tensor.shape()).detach();
  if (slot.accumulate) {
    BinaryFwd add{slot.tensor, v, slot.tensor};
    backend_for(v.device()).add_forward(add);
  } else {
    slot.tensor.copy_from(v);
  }
}

}  // namespace ddpm
