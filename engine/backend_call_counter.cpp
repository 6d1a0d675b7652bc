#include "engine/backend_call_counter.h"

#include <atomic>

#include "engine/backend.h"
#include "engine/error.h"

namespace ddpm {

namespace {
std::atomic<uint64_t> g_calls{0};

// Forwards every method to the device's backend after counting it (generated from the op list).
class CountingBackend final : public Backend {
 public:
  explicit CountingBackend(Backend& inner) : inner_(inner) {}
  Device device() const override { return inner_.device(); }

#define DDPM_OP(name)                                         \
  void name##_forward(const name##_fwd& args) override {      \
    g_calls.fetch_add(1, std::memory_order_relaxed);          \
    inner_.name##_forward(args);                              \
  }                                                           \
  void name##_backward(const name##_bwd& args) override {     \
    g_calls.fetch_add(1, std::memory_order_relaxed);          \
    inner_.name##_backward(args);                             \
  }
#define DDPM_KERNEL(name)                                     \
  void name(const name##_args& args) override {               \
    g_calls.fetch_add(1, std::memory_order_relaxed);          \
    inner_.name(args);                                        \
  }
#include "engine/ops.def"

 private:
  Backend& inner_;
};

std::atomic<bool> g_counting{false};
}  // namespace

namespace detail {
// backend_for's hook: the counting wrapper of `backend` while a counter is alive, else backend.
Backend& counted(Backend& backend) {
  if (!g_counting.load(std::memory_order_relaxed)) return backend;
  static CountingBackend cpu(cpu_backend());
  if (backend.device() == Device::CPU) return cpu;
  static CountingBackend cuda(cuda_backend());
  return cuda;
}
}  // namespace detail

BackendCallCounter::BackendCallCounter() {
  DDPM_CHECK(!g_counting.exchange(true), "BackendCallCounter: another counter is already counting; use one at a time");
  g_calls.store(0);
}

BackendCallCounter::~BackendCallCounter() { g_counting.store(false); }

uint64_t BackendCallCounter::calls() const { return g_calls.load(); }

}  // namespace ddpm

namespace ddpm {
#if DDPM_WITH_CUDA
namespace cuda {
CudaLaunchCounts launch_counts();  // kernels/cuda/launch_counts.cpp
}
CudaLaunchCounts cuda_launch_counts() { return cuda::launch_counts(); }
#else
CudaLaunchCounts cuda_launch_counts() { return {}; }
#endif
}  // namespace ddpm
