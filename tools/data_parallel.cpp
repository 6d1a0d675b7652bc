#include "tools/data_parallel.h"

#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>

#include "engine/error.h"

namespace ddpm {

Shard shard_of(int64_t batch, const Communicator& comm) {
  DDPM_CHECK(batch % comm.size() == 0, "train: train.batch_size is the global batch and must be divisible by the ",
             comm.size(), " ranks, got ", batch, "; set train.batch_size to a multiple of ", comm.size(),
             " or change mpirun -np");
  const int64_t size = batch / comm.size();
  return {comm.rank() * size, size};
}

void broadcast_training_state(Communicator& comm, const ParameterSet& params, const Ema& ema, const Adam& adam) {
  if (comm.size() == 1) return;
  for (const Tensor* t : {&params.values(), &ema.shadow(), &adam.first_moment(), &adam.second_moment()})
    comm.broadcast(*t, 0);
}

namespace {
// Two buffers: the text is written into the one the handler is not reading, then published by
// flipping g_current, so a signal never sees a half-written message.
struct Message {
  char text[1024];
  size_t length = 0;
};
Message g_messages[2];
volatile std::sig_atomic_t g_current = 0;

void on_sigterm(int) {
  // Only async-signal-safe calls here: write(2) of a prepared text, then _exit.
  const Message& m = g_messages[g_current];
  ssize_t ignored = write(STDERR_FILENO, m.text, m.length);
  (void)ignored;
  _exit(143);
}
}  // namespace

void on_termination_say(const Communicator& comm, const std::string& what_is_kept) {
  if (comm.size() == 1) return;
  Message& next = g_messages[1 - g_current];
  const int n = std::snprintf(next.text, sizeof next.text,
                              "\nddpm train (rank %d of %d): stopped by SIGTERM: the launcher ends every rank when one "
                              "fails or the job is interrupted. %s\n",
                              comm.rank(), comm.size(), what_is_kept.c_str());
  next.length = n < 0 ? 0 : std::min(static_cast<size_t>(n), sizeof next.text - 1);
  g_current = 1 - g_current;
  std::signal(SIGTERM, on_sigterm);
}

}  // namespace ddpm
