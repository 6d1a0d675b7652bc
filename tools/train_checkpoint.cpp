#include "tools/train_checkpoint.h"

#include "tools/checkpoint.h"
#include "tools/data_parallel.h"

namespace ddpm {

Json training_state(const TrainRun& run, int64_t at) {
  const int64_t batch = run.config.train.batch_size;
  Json state{{"step", at},
             {"config", run.config.json},
             {"image_shape", run.image_shape},
             {"data",
              {{"examples", run.data.size()}, {"next_example", at * batch}, {"epoch", at * batch / run.data.size()}}},
             {"rng", {{"seed", run.config.train.seed}, {"stream", at}}},
             {"timestep_sampler", run.timesteps->state()}};
  if (run.num_classes > 0) state["classes"] = run.class_names;
  return state;
}

void save_training_checkpoint(TrainRun& run, const Communicator& comm) {
  if (comm.is_root()) save_checkpoint(run.run_dir, *run.params, *run.ema, *run.adam, training_state(run, run.step));
  run.last_checkpoint = run.step;
  say_what_is_kept(run, comm);
}

void say_what_is_kept(const TrainRun& run, const Communicator& comm) {
  on_termination_say(comm, run.last_checkpoint ? "The last checkpoint (step " + std::to_string(run.last_checkpoint) +
                                                     ") is kept in " + run.run_dir + "; continue with --resume " +
                                                     run.run_dir
                                               : std::string("No checkpoint had been written yet."));
}

}  // namespace ddpm
