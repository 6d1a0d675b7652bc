// ParameterSet: every parameter of a module tree in one contiguous buffer, and every gradient in
// another, so zeroing, the optimizer step, EMA and checkpoints are each one pass over one tensor.
// Each parameter tensor of the modules becomes a view into the buffer (its grad a view into the
// gradient buffer); offsets are padded to 16 elements (64 bytes in float32) for vector loads.
#pragma once
#include <string>
#include <vector>

#include "engine/nn/module.h"

namespace ddpm {

struct NamedParameter {
  std::string name;
  Tensor value;  // view into ParameterSet::values()
  Tensor grad;   // view into ParameterSet::grads()
  int64_t offset = 0;
};

class ParameterSet {
 public:
  // Binds and initializes every parameter of `root`: parameter k (in visiting order) draws its
  // initial values from Philox stream k of `seed`, so a model's initialization is reproducible.
  ParameterSet(Module& root, uint64_t seed, Device device = Device::CPU, DType dtype = DType::F32);
  ParameterSet(const ParameterSet&) = delete;
  ParameterSet& operator=(const ParameterSet&) = delete;

  const Tensor& values() const { return values_; }  // flat [padded total]
  const Tensor& grads() const { return grads_; }    // flat [padded total]
  const std::vector<NamedParameter>& entries() const { return entries_; }
  const NamedParameter& find(const std::string& name) const;  // throws listing the known names
  int64_t count() const { return count_; }  // parameter scalars, padding excluded
  void zero_grad() const;  // writes the gradient buffers (and the copy's), not the set

  // Mixed precision without a cast per layer and step: keeps a copy of values() in `dtype`
  // (bfloat16 under float32 masters on CUDA; float32 under float64 masters on the CPU). Each
  // parameter gets a leaf view into it (TensorImpl::compute_copy) that layers computing in `dtype`
  // read instead of converting the master (engine/nn/layers.cpp); its gradient is a view into
  // compute_grads(), which fold_compute_grads() adds into grads() in one pass after backward.
  // Called once, after loading and broadcasting the weights; syncs the copy. Adam rewrites it in
  // its update pass; whoever else writes values() later calls sync_compute_copy() (Ema::swap_with
  // does). Each parameter must be read once per forward: a second read would sum its gradient
  // contributions in `dtype` instead of in the masters' dtype.
  void keep_compute_copy(DType dtype);
  const Tensor& compute_values() const { return compute_values_; }  // flat; undefined without a copy
  const Tensor& compute_grads() const { return compute_grads_; }    // flat; undefined without a copy
  void sync_compute_copy() const;   // compute_values() = values() rounded; no-op without a copy
  void fold_compute_grads() const;  // grads() += compute_grads(), which is zeroed; no-op without

 private:
  Tensor values_, grads_;
  Tensor compute_values_, compute_grads_;  // mixed precision only
  std::vector<NamedParameter> entries_;
  int64_t count_ = 0;
};

}  // namespace ddpm
