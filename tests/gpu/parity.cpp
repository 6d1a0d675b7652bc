#include "tests/gpu/parity.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "engine/storage.h"
#include "tests/support.h"

namespace ddpm::test {

namespace {
constexpr unsigned char kPattern = 0xA5;
constexpr size_t kGuardBytes = 256;

std::vector<unsigned char> read_bytes(const void* device_ptr, size_t n) {
  std::vector<unsigned char> host(n);
  copy_bytes(host.data(), Device::CPU, device_ptr, Device::CUDA, n);
  return host;
}
}  // namespace

Guarded guarded_empty(const Shape& shape, DType dtype) {
  const size_t payload = static_cast<size_t>(numel(shape)) * dtype_size(dtype);
  auto storage = std::make_shared<Storage>(Device::CUDA, payload + 2 * kGuardBytes);
  std::vector<unsigned char> pattern(payload + 2 * kGuardBytes, kPattern);
  copy_bytes(storage->data(), Device::CUDA, pattern.data(), Device::CPU, pattern.size());
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::move(storage);
  impl->offset = kGuardBytes;
  impl->shape = shape;
  impl->dtype = dtype;
  impl->device = Device::CUDA;
  return {Tensor(std::move(impl)), kGuardBytes};
}

Guarded guarded_copy(const Tensor& values, DType dtype) {
  Guarded g = guarded_empty(values.shape(), dtype);
  g.tensor.copy_from(to_cuda(values, dtype));
  return g;
}

bool Guarded::guards_intact() const {
  const char* base = static_cast<const char*>(tensor.impl().storage->data());
  const size_t payload = tensor.nbytes();
  for (const auto& bytes : {read_bytes(base, guard_bytes), read_bytes(base + guard_bytes + payload, guard_bytes)})
    for (unsigned char b : bytes)
      if (b != kPattern) return false;
  return true;
}

Tensor to_cuda(const Tensor& cpu, DType dtype) { return cpu.to(dtype).to(Device::CUDA); }

Tensor as_seen(const Tensor& cpu, DType dtype) { return cpu.to(dtype).to(DType::F64); }

In input(const Tensor& x, DType dtype) { return {as_seen(x, dtype), to_cuda(x, dtype)}; }

Out output(const Shape& shape, DType dtype, bool accumulate, uint64_t stream) {
  if (accumulate) {
    const Tensor init = randn(shape, stream);
    return {as_seen(init, dtype).clone(), guarded_copy(init, dtype), true};
  }
  const Tensor nan = Tensor::full(shape, std::numeric_limits<double>::quiet_NaN(), DType::F64);
  return {Tensor::empty(shape, DType::F64), guarded_copy(nan, dtype), false};
}

void require_parity(const Guarded& got, const Tensor& want, double bound, const std::string& what, double floor) {
  INFO(what);
  REQUIRE(got.tensor.shape() == want.shape());
  REQUIRE(got.guards_intact());
  REQUIRE(all_finite(got.tensor));
  const double error = normalized_error(got.tensor, want, floor);
  INFO("normalized error " << error << ", bound " << bound << (floor > 0 ? ", scale floor " + std::to_string(floor) : std::string()));
  REQUIRE(error <= bound);
}

}  // namespace ddpm::test
