// `ddpm train`, one step in the form a CUDA graph can capture (engine/cuda_graph.h): the same
// numbers as train_step (tools/train_step.h), with every per-step value moved off the kernels'
// arguments and every read-back moved after the device work.
//
//   host, before:  draw the batch (flips applied), timesteps, importance weights and labels (label
//                  dropout applied); look up the rate; write them and Adam's step values into
//                  persistent device tensors (StepInputs; plain uploads, outside any capture)
//   device body:   q_sample, forward, loss, backward, gradient fold, sum of squares of the
//                  gradients into a device scalar, Adam + EMA reading the rate, bias corrections
//                  and clipping factor from device tensors (no host value changes between steps
//                  but the random streams, which replay offsets advance: engine/replay_counter.h)
//   host, after:   read the loss, the gradient norm and the per-sample losses (StepOutputs), check
//                  they are finite, feed the timestep sampler
//
// One process only (several ranks all-reduce through the host). With graphs on (CUDA), the first
// step through it runs the body uncaptured (the warm-up), the second captures it, and that step and
// every later one replay it. Without graphs (the CPU, or train.cuda_graphs=false) the body simply
// runs: the same code, which is how the CPU tests hold it to train_step bit for bit.
// Difference from train_step: a non-finite loss or gradient norm is found after the update, not
// before; the run stops with the same error and the checkpoint on disk is the last good one either way.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "engine/cuda_graph.h"
#include "tools/data/batch_order.h"
#include "tools/train_setup.h"
#include "tools/train_step.h"

namespace ddpm {

// The persistent device tensors a captured step reads: rewritten before every step, never
// reallocated while their shapes hold (a graph keeps their addresses).
struct StepInputs {
  Tensor x0;                            // [B, H, W, C] float32, flips applied
  GaussianDiffusion::StepTensors steps;  // [B] each: table indices, model timesteps
  Tensor weights;                       // [B] float32: the timestep sampler's importance weights
  Tensor one_hot;                       // [B, K + 1] float32: labels after label dropout (conditional)
  Tensor adam;                          // [3] float64: Adam::step_scalars(lr, step)
};

// What one step's host side computes before the device work (tools/train_step_graph.cpp).
struct StepHostInputs {
  Tensor x0;                  // on the CPU
  std::vector<int> t;         // table indices
  std::vector<double> weights;
  std::vector<int> labels;    // empty for an unconditional model
  double lr = 0;
  std::vector<double> adam;   // Adam::step_scalars
};

// Writes `host` into `in` on `device` (allocating a tensor whose shape changed, which is reported:
// a graph that read the old one must be rebuilt). Returns whether any tensor was (re)allocated.
bool upload_step_inputs(const StepHostInputs& host, const GaussianDiffusion& diffusion, int num_classes,
                        Device device, StepInputs& in);

// What the device work leaves for the host to read after it (detached: no autograd graph kept).
struct StepOutputs {
  Tensor loss;                       // [] the weighted mean loss
  GaussianDiffusion::Losses losses;  // [B] per-sample terms
  Tensor grad_sum_squares;           // [1] float64, before clipping
};

class GraphedTrainStep {
 public:
  // graphs: capture on CUDA (callers check cuda_graphs_available); false runs the body directly.
  GraphedTrainStep(TrainRun& run, bool graphs);
  ~GraphedTrainStep();
  // Advances run.step by one, like train_step with one rank.
  StepResult step(TrainRun& run, BatchOrder& order, bool interrupted);
  // Steps run uncaptured, captured, replayed so far (for tests and the log).
  struct Counts {
    int64_t direct = 0, warm_ups = 0, captures = 0, replays = 0;
  };
  const Counts& counts() const { return counts_; }

 private:
  StepHostInputs prepare(TrainRun& run, BatchOrder& order, int64_t step);
  void body(TrainRun& run, uint64_t stream);

  bool graphs_;
  StepInputs in_;
  StepOutputs out_;
  std::unique_ptr<CudaGraph> graph_;
  Tensor grad_sum_squares_;  // persistent: sum_squares' out
  Counts counts_;
};

// Why a run cannot use train.cuda_graphs (empty: it can): several ranks, a non-CUDA device, a model
// whose forward pass reads values back. The trainer prints it once when graphs were asked for.
std::string why_no_train_graphs(const TrainRun& run, int ranks);

}  // namespace ddpm
