#include "engine/nn/module.h"

namespace ddpm {

void Module::visit_parameters(const ParameterVisitor& visit, const std::string& prefix) {
  for (Parameter& p : parameters_) visit(prefix + p.name, p.tensor, p.init);
  for (auto& [name, child] : children_) child->visit_parameters(visit, prefix + name + ".");
}

void Module::visit_buffers(const BufferVisitor& visit, const std::string& prefix) {
  for (auto& [name, tensor] : buffers_) visit(prefix + name, tensor);
  for (auto& [name, child] : children_) child->visit_buffers(visit, prefix + name + ".");
}

void Module::train(bool on) {
  training_ = on;
  for (auto& entry : children_) entry.second->train(on);
}

void Module::check_new_name(const std::string& name) const {
  DDPM_CHECK(!name.empty() && name.find('.') == std::string::npos, "module: invalid name '", name,
             "' (names are non-empty and dot-free; dots join the path)");
  auto taken = [&](const std::string& n) { return n == name; };
  for (const Parameter& p : parameters_) DDPM_CHECK(!taken(p.name), "module: name '", name, "' registered twice");
  for (const auto& b : buffers_) DDPM_CHECK(!taken(b.first), "module: name '", name, "' registered twice");
  for (const auto& c : children_) DDPM_CHECK(!taken(c.first), "module: name '", name, "' registered twice");
}

Tensor Module::register_parameter(const std::string& name, const Shape& shape, InitSpec init) {
  check_new_name(name);
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->requires_grad = true;
  Tensor t(std::move(impl));
  parameters_.push_back({name, t, init});
  return t;
}

Tensor Module::register_buffer(const std::string& name, Tensor value) {
  check_new_name(name);
  buffers_.emplace_back(name, value);
  return value;
}

void Module::adopt(const std::string& name, std::unique_ptr<Module> child) {
  check_new_name(name);
  children_.emplace_back(name, std::move(child));
}

}  // namespace ddpm
