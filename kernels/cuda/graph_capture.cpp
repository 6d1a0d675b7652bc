// CUDA graphs (engine/cuda_graph.h): warm-up, capture on the backend's one stream, replay with
// advancing random streams. Compiled only: not yet run on a GPU.
//
// Capture mode: cudaStreamCaptureModeThreadLocal. This thread may not make "unsafe" calls
// (cudaMalloc, a synchronization) while it captures, which is what we want refused; other
// threads (the data loader) are left alone. The refusals below name the operation before the
// runtime would fail with the less helpful cudaErrorStreamCaptureUnsupported; what slips past them
// (a library that synchronizes inside) still fails the capture, and capture() reports it with
// the setting that turns graphs off.
#include "kernels/cuda/graph_capture.h"

#include <cuda_runtime.h>

#include <cstring>
#include <exception>
#include <vector>

#include "engine/cuda_graph.h"
#include "engine/error.h"
#include "engine/graph_memory_pool.h"
#include "engine/storage.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/graph_memory.h"

namespace ddpm {

struct CudaGraph::Impl {
  Options options;
  GraphMemoryPool pool;
  ConstantUploads uploads;
  uint64_t* offsets = nullptr;  // device, kDrawKinds values
  void* staging = nullptr;      // pinned host memory: the constant uploads
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  int64_t captured_position = 0, next_position = 0;

  explicit Impl(Options o)
      : options(std::move(o)), pool(cuda::device_raw_memory(), options.turn_off), uploads(options.turn_off) {
    cuda::register_graph_pool(&pool);
  }
  ~Impl() {
    // Nothing may still run from the graph or read the staging buffer; no throwing from here.
    (void)cudaStreamSynchronize(cuda::stream());
    if (exec) (void)cudaGraphExecDestroy(exec);
    if (graph) (void)cudaGraphDestroy(graph);
    if (staging) (void)cudaFreeHost(staging);
    if (offsets) cuda_allocator().deallocate(offsets, kDrawKinds * sizeof(uint64_t));
    try {
      cuda::unregister_graph_pool(&pool);
    } catch (const std::exception&) {
    }
  }
};

namespace {
thread_local CudaGraph::Impl* t_warming = nullptr;
thread_local CudaGraph::Impl* t_capturing = nullptr;

// Ends routing and the capture state whatever happens in between.
struct CaptureScope {
  CudaGraph::Impl*& slot;
  CaptureScope(CudaGraph::Impl*& s, CudaGraph::Impl* impl) : slot(s) {
    slot = impl;
    cuda::route_allocations_to(&impl->pool);
  }
  ~CaptureScope() {
    cuda::route_allocations_to(nullptr);
    slot->pool.end();
    slot = nullptr;
  }
};
}  // namespace

namespace cuda {

const uint64_t* replay_offset(DrawKind kind) {
  return t_capturing ? t_capturing->offsets + static_cast<int>(kind) : nullptr;
}

bool capturing() { return t_capturing != nullptr; }

void refuse_during_capture(const char* what) {
  const CudaGraph::Impl& g = *t_capturing;
  detail::fail("CUDA graph capture of ", g.options.what, ": ", what,
               " cannot be captured (a graph replays device work only). Run without graphs: --set ",
               g.options.turn_off);
}

void upload_during_capture(void* dst, const void* src, size_t bytes) {
  CudaGraph::Impl& g = *t_capturing;
  if (!g.options.constant_uploads)
    refuse_during_capture("a copy from the host (its data would be frozen into the graph; upload inputs before the replay)");
  const size_t offset = g.uploads.place(bytes);
  char* staged = static_cast<char*>(g.staging) + offset;
  std::memcpy(staged, src, bytes);  // now, at capture time: the graph's constant
  DDPM_CUDA_CHECK(cudaMemcpyAsync(dst, staged, bytes, cudaMemcpyHostToDevice, stream()));
}

void note_upload(size_t bytes) {
  if (t_warming) t_warming->uploads.record(bytes);
}

}  // namespace cuda

CudaGraph::CudaGraph(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}
CudaGraph::~CudaGraph() = default;

bool CudaGraph::captured() const { return impl_->exec != nullptr; }

void CudaGraph::warm_up(const std::function<void()>& body) {
  DDPM_CHECK(!t_warming && !t_capturing, "CUDA graphs: a warm-up inside another warm-up or capture (internal error)");
  impl_->pool.begin_recording();
  CaptureScope scope(t_warming, impl_.get());
  body();
}

void CudaGraph::capture(const std::function<void()>& body, int64_t position) {
  Impl& g = *impl_;
  DDPM_CHECK(!t_warming && !t_capturing, "CUDA graphs: a capture inside another warm-up or capture (internal error)");
  DDPM_CHECK(!g.exec, "CUDA graphs: ", g.options.what, " is already captured (internal error)");
  // Outside the capture: the offsets (zero: the first replay draws the captured position) and the
  // staging buffer that the warm-up sized.
  if (!g.offsets) g.offsets = static_cast<uint64_t*>(cuda::allocate_shared(kDrawKinds * sizeof(uint64_t)));
  DDPM_CUDA_CHECK(cudaMemsetAsync(g.offsets, 0, kDrawKinds * sizeof(uint64_t), cuda::stream()));
  if (g.uploads.capacity() > 0 && !g.staging) DDPM_CUDA_CHECK(cudaMallocHost(&g.staging, g.uploads.capacity()));
  DDPM_CUDA_CHECK(cudaStreamSynchronize(cuda::stream()));
  g.pool.begin_capture();
  g.uploads.begin_capture();
  {
    CaptureScope scope(t_capturing, &g);
    DDPM_CUDA_CHECK(cudaStreamBeginCapture(cuda::stream(), cudaStreamCaptureModeThreadLocal));
    try {
      body();
      cuda::launch_advance_offsets(g.offsets, g.options.strides);
    } catch (const std::exception& e) {
      cudaGraph_t broken = nullptr;
      (void)cudaStreamEndCapture(cuda::stream(), &broken);  // leaves the stream usable again
      if (broken) (void)cudaGraphDestroy(broken);
      (void)cudaGetLastError();
      detail::fail("CUDA graph capture of ", g.options.what, " failed: ", e.what(),
                   (std::strstr(e.what(), "--set ") ? "" : ". Run without graphs: --set "),
                   (std::strstr(e.what(), "--set ") ? std::string() : g.options.turn_off));
    }
    const cudaError_t ended = cudaStreamEndCapture(cuda::stream(), &g.graph);
    if (ended != cudaSuccess) {
      (void)cudaGetLastError();
      detail::fail("CUDA graph capture of ", g.options.what, " failed at its end: ", cudaGetErrorString(ended),
                   " (an operation in it cannot be captured, e.g. a synchronizing library call). Run without graphs: "
                   "--set ", g.options.turn_off);
    }
  }
  DDPM_CUDA_CHECK(cudaGraphInstantiate(&g.exec, g.graph, 0));
  g.captured_position = g.next_position = position;
}

void CudaGraph::replay(int64_t position) {
  Impl& g = *impl_;
  DDPM_CHECK(g.exec, "CUDA graphs: replay of ", g.options.what, " before its capture (internal error)");
  DDPM_CHECK(position >= g.captured_position, "CUDA graphs: ", g.options.what, " was captured at position ",
             g.captured_position, " and cannot replay the earlier position ", position);
  if (position != g.next_position) {
    // Not the position after the last replay: set the offsets from the host.
    uint64_t host[kDrawKinds];
    for (int k = 0; k < kDrawKinds; ++k) host[k] = offset_for(g.captured_position, position, g.options.strides.of[k]);
    cuda_copy_bytes(g.offsets, Device::CUDA, host, Device::CPU, sizeof host);
  }
  DDPM_CUDA_CHECK(cudaGraphLaunch(g.exec, cuda::stream()));
  g.next_position = position + 1;
}

bool cuda_graphs_available(Device device) { return device == Device::CUDA && cuda_available(); }

}  // namespace ddpm
