// What `ddpm train` adds when mpirun starts several ranks: each takes one contiguous shard of every
// global batch, the ranks start from rank 0's state, and a failing job ends every rank with a
// message instead of leaving the others waiting in a collective.
#pragma once
#include <cstdint>
#include <string>

#include "engine/dist/communicator.h"
#include "engine/nn/parameters.h"
#include "engine/optim/adam.h"
#include "engine/optim/ema.h"

namespace ddpm {

// Rows [first, first + size) of a global batch of `batch` examples.
struct Shard {
  int64_t first = 0, size = 0;
};
// Throws unless the ranks split the batch evenly.
Shard shard_of(int64_t batch, const Communicator& comm);

// Every rank's parameters, EMA shadow and Adam moments become rank 0's.
void broadcast_training_state(Communicator& comm, const ParameterSet& params, const Ema& ema, const Adam& adam);

// For a job of several ranks: SIGTERM (what mpirun sends every rank when one fails or when it is
// interrupted) prints `what_is_kept` and the rank, and exits with 143 at once; a rank blocked in a
// collective waiting for a dead peer cannot do anything more useful. Call again to update the text.
void on_termination_say(const Communicator& comm, const std::string& what_is_kept);

}  // namespace ddpm
