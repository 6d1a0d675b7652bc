// Modules: a tree of named children with parameters and buffers. Names are dotted paths
// ("down.0.conv.weight"). A module only declares its parameters (shape and initializer); a
// ParameterSet (parameters.h) later places all of them in one flat buffer.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace ddpm {

struct InitSpec {
  enum Kind { Zeros, Ones, Uniform, Normal } kind = Zeros;
  double scale = 0.0;  // Uniform: bound (draws in [-scale, scale]); Normal: standard deviation
};

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  using ParameterVisitor = std::function<void(const std::string& name, Tensor& tensor, const InitSpec& init)>;
  using BufferVisitor = std::function<void(const std::string& name, Tensor& tensor)>;
  // Walk this module and its children in registration order, with dotted names.
  void visit_parameters(const ParameterVisitor& visit, const std::string& prefix = "");
  void visit_buffers(const BufferVisitor& visit, const std::string& prefix = "");

  // Training mode (dropout on) versus evaluation; applies to the whole subtree.
  void train(bool on);
  bool training() const { return training_; }

 protected:
  // A parameter with no storage yet; the ParameterSet binds it.
  Tensor register_parameter(const std::string& name, const Shape& shape, InitSpec init);
  // Non-trainable state saved with the model but kept out of the parameter buffer (and so out of
  // the optimizer and the EMA).
  Tensor register_buffer(const std::string& name, Tensor value);
  template <class M, class... Args>
  M& add_module(const std::string& name, Args&&... args) {
    auto child = std::make_unique<M>(std::forward<Args>(args)...);
    M& ref = *child;
    adopt(name, std::move(child));
    return ref;
  }

 private:
  void adopt(const std::string& name, std::unique_ptr<Module> child);
  void check_new_name(const std::string& name) const;

  struct Parameter {
    std::string name;
    Tensor tensor;
    InitSpec init;
  };
  std::vector<Parameter> parameters_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::unique_ptr<Module>>> children_;
  bool training_ = true;
};

// An indexed list of child modules of one type: children are named "0", "1", ... so parameter
// names read like "down.1.block.0.conv1.weight".
template <class M>
class ModuleList : public Module {
 public:
  template <class... Args>
  M& append(Args&&... args) {
    M& item = add_module<M>(std::to_string(items_.size()), std::forward<Args>(args)...);
    items_.push_back(&item);
    return item;
  }
  M& operator[](size_t i) const { return *items_.at(i); }
  size_t size() const { return items_.size(); }

 private:
  std::vector<M*> items_;
};

}  // namespace ddpm
