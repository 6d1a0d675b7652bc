// `ddpm train`, one optimization step: the batch of step run.step + 1 (this rank's shard of it),
// the diffusion loss, the gradient of the global batch's mean loss on every rank, clipping, and the
// Adam + EMA update at the schedule's rate.
#pragma once
#include "engine/dist/communicator.h"
#include "tools/data/batch_order.h"
#include "tools/train_setup.h"

namespace ddpm {

struct StepResult {
  double loss = 0;       // the global batch's weighted mean loss
  double grad_norm = 0;  // before clipping
  double lr = 0;         // the rate the update used
  bool stop_requested = false;  // some rank was asked to stop (SIGINT/SIGUSR1): every rank stops here
  GaussianDiffusion::Losses losses;  // this rank's per-sample terms, for the log's diagnostics
};

// Advances run.step by one. `interrupted`: this rank was asked to stop. Throws, naming the last
// checkpoint, when the loss or the gradient norm is not finite.
StepResult train_step(TrainRun& run, BatchOrder& order, Communicator& comm, bool interrupted);

}  // namespace ddpm
