#include "engine/tensor.h"

#include <sstream>

#include "engine/autograd.h"
#include "engine/backend.h"

namespace ddpm {

namespace {
Tensor make(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape)
    DDPM_CHECK(d >= 0, "tensor: negative dimension in shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->dtype = dtype;
  impl->device = device;
  impl->storage =
      std::make_shared<Storage>(device, static_cast<size_t>(numel(shape)) * dtype_size(dtype));
  return Tensor(std::move(impl));
}
}  // namespace

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  return make(shape, dtype, device);
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = make(shape, dtype, device);
  zero_bytes(t.raw(), device, t.nbytes());
  return t;
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = make(shape, dtype, device);
  backend_for(device).fill({t, value});
  return t;
}

Tensor Tensor::from_vector(const std::vector<double>& values, const Shape& shape, DType dtype,
                           Device device) {
  DDPM_CHECK(static_cast<int64_t>(values.size()) == ddpm::numel(shape), "tensor from_vector: ",
             values.size(), " values cannot fill shape ", shape_str(shape), " (", ddpm::numel(shape),
             " elements)");
  Tensor host = make(shape, DType::F64, Device::CPU);
  std::copy(values.begin(), values.end(), host.data<double>());
  return host.to(dtype).to(device);
}

Tensor Tensor::from_vector(const std::vector<float>& values, const Shape& shape, Device device) {
  DDPM_CHECK(static_cast<int64_t>(values.size()) == ddpm::numel(shape), "tensor from_vector: ",
             values.size(), " values cannot fill shape ", shape_str(shape), " (", ddpm::numel(shape),
             " elements)");
  Tensor host = make(shape, DType::F32, Device::CPU);
  std::copy(values.begin(), values.end(), host.data<float>());
  return host.to(device);
}

Tensor Tensor::normal(const Shape& shape, uint64_t seed, uint64_t stream, double mean,
                      double stddev, DType dtype, Device device) {
  Tensor t = make(shape, dtype, device);
  backend_for(device).fill_random({t, Distribution::Normal, mean, stddev, seed, stream});
  return t;
}

Tensor Tensor::uniform(const Shape& shape, uint64_t seed, uint64_t stream, double low, double high,
                       DType dtype, Device device) {
  Tensor t = make(shape, dtype, device);
  backend_for(device).fill_random({t, Distribution::Uniform, low, high, seed, stream});
  return t;
}

int64_t Tensor::dim(int i) const {
  int r = rank();
  int j = i < 0 ? i + r : i;
  DDPM_CHECK(j >= 0 && j < r, "tensor dim(", i, "): out of range for ", describe());
  return shape()[static_cast<size_t>(j)];
}

std::string Tensor::describe() const {
  if (!defined()) return "<undefined tensor>";
  std::ostringstream s;
  s << dtype_name(dtype()) << shape_str(shape()) << " on " << device_name(device());
  return s.str();
}

void* Tensor::raw() const {
  const TensorImpl& t = impl();
  DDPM_CHECK(t.storage != nullptr, "tensor: ", describe(), " has no storage yet (an unbound parameter?)");
  return static_cast<char*>(t.storage->data()) + t.offset;
}

Tensor Tensor::reshape(const Shape& new_shape) const {
  DDPM_CHECK(ddpm::numel(new_shape) == numel(), "reshape: cannot view ", describe(), " as ",
             shape_str(new_shape), " (", ddpm::numel(new_shape), " elements, expected ", numel(), ")");
  auto view = std::make_shared<TensorImpl>();
  view->storage = impl().storage;
  view->offset = impl().offset;
  view->shape = new_shape;
  view->dtype = dtype();
  view->device = device();
  Shape old_shape = shape();
  return record(OpKind::reshape, Tensor(std::move(view)), {*this},
                [old_shape](const Tensor& g, std::vector<GradSlot>& grads) {
                  deposit(grads[0], g.reshape(old_shape));
                });
}

Tensor Tensor::detach() const {
  auto view = std::make_shared<TensorImpl>();
  view->storage = impl().storage;
  view->offset = impl().offset;
  view->shape = shape();
  view->dtype = dtype();
  view->device = device();
  return Tensor(std::move(view));
}

Tensor Tensor::clone() const {
  Tensor out = make(shape(), dtype(), device());
  out.copy_from(*this);
  return out;
}

Tensor Tensor::to(Device target) const {
  if (target == device()) return detach();
  Tensor out = make(shape(), dtype(), target);
  out.copy_from(*this);
  return out;
}

Tensor Tensor::to(DType target) const {
  if (target == dtype()) return detach();
  Tensor out = make(shape(), target, device());
  backend_for(device()).cast({*this, out});
  return out;
}

void Tensor::copy_from(const Tensor& src) const {
  DDPM_CHECK(src.shape() == shape() && src.dtype() == dtype(), "copy: source ", src.describe(),
             " does not match destination ", describe());
  copy_bytes(raw(), device(), src.raw(), src.device(), nbytes());
}

std::vector<double> Tensor::to_vector() const {
  Tensor host = to(Device::CPU).to(DType::F64);
  const double* p = host.data<double>();
  return std::vector<double>(p, p + numel());
}

double Tensor::item() const {
  DDPM_CHECK(numel() == 1, "item: needs a one-element tensor, got ", describe());
  return to_vector()[0];
}

Tensor& Tensor::set_requires_grad(bool on) {
  DDPM_CHECK(is_leaf() || on, "set_requires_grad(false): ", describe(),
             " is the result of an op; use detach() instead");
  DDPM_CHECK(!on || dtype() != DType::BF16, "set_requires_grad: bfloat16 leaves are not trainable; "
             "keep float32 master weights");
  impl().requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const {
  return impl().grad ? Tensor(impl().grad) : Tensor();
}

void check_shape(const char* op, const char* what, const Tensor& t, const Shape& expected) {
  DDPM_CHECK(t.defined(), op, ": ", what, " is missing (expected shape ", shape_str(expected), ")");
  DDPM_CHECK(t.shape() == expected, op, ": ", what, " must have shape ", shape_str(expected),
             ", got ", shape_str(t.shape()));
}

void check_same_device_dtype(const char* op, const Tensor& a, const Tensor& b) {
  DDPM_CHECK(a.device() == b.device() && a.dtype() == b.dtype(), op,
             ": inputs must share device and dtype, got ", a.describe(), " and ", b.describe());
}

}  // namespace ddpm
