// Tensor: a handle (shared_ptr) to contiguous storage with a shape, dtype and device.
// Images are NHWC. Views (reshape, detach) share storage; every tensor is contiguous.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/dtype.h"
#include "engine/error.h"
#include "engine/shape.h"
#include "engine/storage.h"

namespace ddpm {

struct Node;

struct TensorImpl {
  std::shared_ptr<Storage> storage;  // null until bound (parameters are bound later)
  size_t offset = 0;                 // in bytes
  Shape shape;
  DType dtype = DType::F32;
  Device device = Device::CPU;
  bool requires_grad = false;
  std::shared_ptr<Node> grad_fn;       // the op that produced this tensor; null for leaves
  std::shared_ptr<TensorImpl> grad;    // leaves only: accumulated gradient
  // Parameters under mixed precision only: the same parameter in the compute dtype, a leaf view
  // into ParameterSet's reduced-precision copy (engine/nn/parameters.h); layers read it instead
  // of converting the master weights every step.
  std::shared_ptr<TensorImpl> compute_copy;
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- creation ----
  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
  static Tensor full(const Shape& shape, double value, DType dtype = DType::F32,
                     Device device = Device::CPU);
  static Tensor ones(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU) {
    return full(shape, 1.0, dtype, device);
  }
  // Copies host values (converted to dtype) onto the device.
  static Tensor from_vector(const std::vector<double>& values, const Shape& shape,
                            DType dtype = DType::F32, Device device = Device::CPU);
  static Tensor from_vector(const std::vector<float>& values, const Shape& shape,
                            Device device = Device::CPU);
  // Philox draws addressed by (seed, stream, element index): identical on every backend.
  static Tensor normal(const Shape& shape, uint64_t seed, uint64_t stream, double mean = 0.0,
                       double stddev = 1.0, DType dtype = DType::F32, Device device = Device::CPU);
  static Tensor uniform(const Shape& shape, uint64_t seed, uint64_t stream, double low = 0.0,
                        double high = 1.0, DType dtype = DType::F32, Device device = Device::CPU);

  // ---- properties ----
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  int rank() const { return static_cast<int>(impl().shape.size()); }
  int64_t dim(int i) const;  // negative i counts from the end
  int64_t numel() const { return ddpm::numel(impl().shape); }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().device; }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype()); }
  std::string describe() const;  // "float32[2, 3] on cpu"

  void* raw() const;
  template <class T> T* data() const {
    DDPM_CHECK(dtype_of<T>::value == dtype(), "tensor data<", dtype_name(dtype_of<T>::value),
               ">: the tensor holds ", dtype_name(dtype()));
    return static_cast<T*>(raw());
  }

  // ---- views and copies ----
  Tensor reshape(const Shape& shape) const;  // a view; differentiable
  Tensor detach() const;                     // same storage, no graph
  Tensor clone() const;                      // new storage, no graph
  Tensor to(Device device) const;            // copy (no graph)
  Tensor to(DType dtype) const;              // converted copy (no graph)
  void copy_from(const Tensor& src) const;   // same shape and dtype, any devices (writes the data, not the handle)
  std::vector<double> to_vector() const;     // host copy, as double
  double item() const;                       // single-element tensors

  // ---- autograd ----
  bool requires_grad() const { return impl().requires_grad; }
  Tensor& set_requires_grad(bool on);
  Tensor grad() const;  // leaves: accumulated gradient (undefined before the first backward)
  bool is_leaf() const { return impl().grad_fn == nullptr; }

  TensorImpl& impl() const {
    DDPM_CHECK(impl_ != nullptr, "tensor: used before it was given a value");
    return *impl_;
  }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& other) const { return impl_ == other.impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// Throws "<op>: <what> must be <expected>, got <tensor>" unless the shape matches.
void check_shape(const char* op, const char* what, const Tensor& t, const Shape& expected);
void check_same_device_dtype(const char* op, const Tensor& a, const Tensor& b);

}  // namespace ddpm
