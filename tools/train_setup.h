// `ddpm train`, set-up: the run directory and its config (new or resumed), the data, the model,
// optimizer, EMA, diffusion process and timestep sampler, restored from the checkpoint when
// resuming and made equal on every rank.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "diffusion/gaussian_diffusion.h"
#include "diffusion/timestep_sampler.h"
#include "engine/dist/communicator.h"
#include "engine/nn/parameters.h"
#include "engine/optim/adam.h"
#include "engine/optim/ema.h"
#include "models/denoiser.h"
#include "tools/data/dataset.h"
#include "tools/data_parallel.h"
#include "tools/lr_schedule.h"
#include "tools/train.h"
#include "tools/typed_config.h"

namespace ddpm {

// Everything a training run holds between steps. Not copyable: the optimizer and the EMA point
// into the parameter set, which points into the model.
struct TrainRun {
  Config config;
  std::string run_dir;
  bool resuming = false;
  int64_t step = 0;             // steps done
  int64_t last_checkpoint = 0;  // the step of the newest checkpoint on disk (0: none)
  Shard shard;                  // this rank's rows of every batch
  double share = 1;             // shard.size / batch: this rank's share of the batch mean
  Device device = Device::CPU;
  ImageSet data;
  Shape image_shape;
  int num_classes = 0;
  std::vector<std::string> class_names;  // recorded by conditional runs
  std::unique_ptr<Denoiser> model;
  std::unique_ptr<ParameterSet> params;
  std::unique_ptr<Adam> adam;
  std::unique_ptr<Ema> ema;
  std::unique_ptr<GaussianDiffusion> diffusion;
  std::unique_ptr<TimestepSampler> timesteps;
  std::unique_ptr<LrSchedule> lr;

  TrainRun() = default;
  TrainRun(const TrainRun&) = delete;
  TrainRun& operator=(const TrainRun&) = delete;
};

// Resolves the config (--config/--set, or --resume's recorded one with --set), checks it against
// the data, builds the run and, when resuming, loads its checkpoint. Rank 0 creates the run's
// folders.
std::unique_ptr<TrainRun> set_up_training(const TrainArgs& args, Communicator& comm);

}  // namespace ddpm
