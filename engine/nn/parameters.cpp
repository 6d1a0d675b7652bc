#include "engine/nn/parameters.h"

#include "engine/backend.h"

namespace ddpm {

namespace {
constexpr int64_t kAlign = 16;  // elements

// Points `view` at [offset, offset + numel) of `buffer`.
void bind(TensorImpl& view, const Tensor& buffer, int64_t offset) {
  view.storage = buffer.impl().storage;
  view.offset = static_cast<size_t>(offset) * dtype_size(buffer.dtype());
  view.dtype = buffer.dtype();
  view.device = buffer.device();
}

Tensor view_of(const Tensor& buffer, const Shape& shape, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  bind(*impl, buffer, offset);
  return Tensor(std::move(impl));
}
}  // namespace

ParameterSet::ParameterSet(Module& root, uint64_t seed, Device device, DType dtype) {
  DDPM_CHECK(dtype == DType::F32 || dtype == DType::F64, "parameters: master weights are float32 or "
             "float64, not ", dtype_name(dtype));
  struct Pending {
    std::string name;
    Tensor tensor;
    InitSpec init;
    int64_t offset;
  };
  std::vector<Pending> pending;
  int64_t total = 0;
  root.visit_parameters([&](const std::string& name, Tensor& t, const InitSpec& init) {
    DDPM_CHECK(!t.impl().storage, "parameters: '", name, "' is already bound to another ParameterSet");
    pending.push_back({name, t, init, total});
    count_ += t.numel();
    total += (t.numel() + kAlign - 1) / kAlign * kAlign;
  });
  values_ = Tensor::zeros({total}, dtype, device);
  grads_ = Tensor::zeros({total}, dtype, device);
  Backend& backend = backend_for(device);
  uint64_t stream = 0;
  for (Pending& p : pending) {
    bind(p.tensor.impl(), values_, p.offset);
    p.tensor.impl().grad = view_of(grads_, p.tensor.shape(), p.offset).impl_ptr();
    switch (p.init.kind) {
      case InitSpec::Zeros: break;
      case InitSpec::Ones: backend.fill({p.tensor, 1.0}); break;
      case InitSpec::Uniform:
        backend.fill_random({p.tensor, Distribution::Uniform, -p.init.scale, p.init.scale, seed, stream});
        break;
      case InitSpec::Normal:
        backend.fill_random({p.tensor, Distribution::Normal, 0.0, p.init.scale, seed, stream});
        break;
    }
    ++stream;
    entries_.push_back({p.name, p.tensor, p.tensor.grad(), p.offset});
  }
}

const NamedParameter& ParameterSet::find(const std::string& name) const {
  for (const NamedParameter& e : entries_)
    if (e.name == name) return e;
  std::string known;
  for (const NamedParameter& e : entries_) known += (known.empty() ? "" : ", ") + e.name;
  detail::fail("parameters: no parameter named '", name, "'; known: ", known);
}

void ParameterSet::zero_grad() const {
  zero_bytes(grads_.raw(), grads_.device(), grads_.nbytes());
  if (compute_grads_.defined()) zero_bytes(compute_grads_.raw(), compute_grads_.device(), compute_grads_.nbytes());
}

void ParameterSet::keep_compute_copy(DType dtype) {
  DDPM_CHECK(!compute_values_.defined(), "parameters: keep_compute_copy was already called (the copy is ",
             dtype_name(compute_values_.dtype()), ")");
  DDPM_CHECK(dtype != values_.dtype() && dtype_size(dtype) < dtype_size(values_.dtype()),
             "parameters: the compute copy must be narrower than the ", dtype_name(values_.dtype()),
             " master weights, got ", dtype_name(dtype));
  compute_values_ = Tensor::zeros(values_.shape(), dtype, values_.device());
  compute_grads_ = Tensor::zeros(values_.shape(), dtype, values_.device());
  for (NamedParameter& e : entries_) {
    Tensor copy = view_of(compute_values_, e.value.shape(), e.offset);
    copy.impl().requires_grad = true;
    copy.impl().grad = view_of(compute_grads_, e.value.shape(), e.offset).impl_ptr();
    e.value.impl().compute_copy = copy.impl_ptr();
  }
  sync_compute_copy();
}

void ParameterSet::sync_compute_copy() const {
  if (compute_values_.defined()) backend_for(values_.device()).cast({values_, compute_values_});
}

void ParameterSet::fold_compute_grads() const {
  if (compute_grads_.defined()) backend_for(grads_.device()).accumulate_cast({compute_grads_, grads_});
}

}  // namespace ddpm
