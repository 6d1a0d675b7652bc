// `ddpm train`, checkpointing: what checkpoint.json records besides the tensors (tools/checkpoint.h
// writes both), and the message a data-parallel job prints when it is terminated.
#pragma once
#include "engine/dist/communicator.h"
#include "tools/config.h"
#include "tools/train_setup.h"

namespace ddpm {

// checkpoint.json's state at step `at`: the step, the resolved config, the image shape, the data
// position, the RNG counters, the timestep sampler's history and, for conditional runs, the classes.
Json training_state(const TrainRun& run, int64_t at);

// Rank 0 saves the checkpoint of run.step; every rank records it as the last one.
void save_training_checkpoint(TrainRun& run, const Communicator& comm);

// What a terminated job keeps (the last checkpoint and how to resume), for on_termination_say.
void say_what_is_kept(const TrainRun& run, const Communicator& comm);

}  // namespace ddpm
