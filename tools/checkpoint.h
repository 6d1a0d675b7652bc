// Training checkpoints: a safetensors file of the model, its EMA and Adam's moments (tensors named
// model.<param>, ema.<param>, adam_m.<param>, adam_v.<param>) plus checkpoint.json, the training
// state (step, RNG addressing, data position, sampler state, resolved config) that names that file.
//
// Crash safety: the weights go to ckpt-<step>.safetensors (temp name, fsync, rename), then
// checkpoint.json is replaced the same way; that rename is the commit. Older weight files are
// removed only after it, so at every instant checkpoint.json names a complete file.
#pragma once
#include <string>

#include "engine/io/atomic_file.h"
#include "engine/nn/parameters.h"
#include "engine/optim/adam.h"
#include "engine/optim/ema.h"
#include "tools/config.h"

namespace ddpm {

struct Checkpoint {
  Json state;  // {"step", "config", "weights", ...}
};

void save_checkpoint(const std::string& run_dir, const ParameterSet& params, const Ema& ema, const Adam& adam,
                     const Json& state);

// Reads checkpoint.json and its weights, checks that they agree with each other and with the
// model (every parameter of every buffer asked for present with its shape), and only then copies
// them into params, ema and adam (those that are non-null; the file may lack the others). Throws
// with the reason otherwise, touching nothing.
Json load_checkpoint(const std::string& run_dir, const ParameterSet& params, Ema* ema, Adam* adam);

// Just checkpoint.json (to rebuild the model from its config before loading the weights).
Json read_checkpoint_state(const std::string& run_dir);

}  // namespace ddpm
