// CUDA graphs: one fixed-shape piece of GPU work (a whole sampling loop for one batch size, or a
// training step: tools/train_step_graph.h)
// captured once and replayed, so the host launches one graph instead of thousands of kernels.
//
//   CudaGraph g(options);
//   g.warm_up([&] { out = work(position 0); });   // uncaptured: selects algorithms, fills g's memory
//   g.capture([&] { out = work(position 1); }, 1); // recorded, not run
//   g.replay(1); read out; g.replay(2); read out; ...
//
// Replay k draws the random numbers of position captured + k (engine/replay_counter.h), into the
// same tensors as the capture (`out` keeps its address). What the captured code may not do: read a
// value back to the host (item(), to_vector(), a device-to-host copy), synchronize, or allocate
// more device memory than the warm-up did; each is refused with an error that names the setting
// that turns graphs off. Uploads from the host are allowed only with Options::constant_uploads
// (their bytes become constants of the graph). Implemented in kernels/cuda/graph_capture.cpp
// (compiled only, not yet run on a GPU); a build without CUDA has stubs that refuse.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "engine/device.h"
#include "engine/replay_counter.h"

namespace ddpm {

class CudaGraph {
 public:
  struct Options {
    ReplayStrides strides;          // per kind of draw: the stream distance between positions
    bool constant_uploads = false;  // host uploads inside the capture are constants (sampling: timesteps)
    std::string what;               // "the sampling loop", for errors
    std::string turn_off;           // "sample.cuda_graphs=false", for errors
  };
  explicit CudaGraph(Options options);
  ~CudaGraph();  // waits for the device, then frees the graph and its memory
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  void warm_up(const std::function<void()>& body);
  void capture(const std::function<void()>& body, int64_t position);
  // Runs the captured work with the draws of `position` (>= the captured one).
  void replay(int64_t position);
  bool captured() const;

  struct Impl;  // kernels/cuda/graph_capture.cpp (public so the backend's capture hooks can name it)

 private:
  std::unique_ptr<Impl> impl_;
};

// Whether graphs can be used for work on `device` (CUDA build and device; false on the CPU).
bool cuda_graphs_available(Device device);

}  // namespace ddpm
