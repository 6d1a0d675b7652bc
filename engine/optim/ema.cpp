#include "engine/optim/ema.h"

#include "engine/backend.h"

namespace ddpm {

Ema::Ema(const ParameterSet& params, double decay) : shadow_(params.values().clone()), decay_(decay) {
  DDPM_CHECK(decay >= 0 && decay <= 1, "ema: decay must be in [0, 1], got ", decay);
}

void Ema::update(const ParameterSet& params) {
  check_shape("ema", "parameters", params.values(), shadow_.shape());
  backend_for(shadow_.device()).ema_update({shadow_, params.values(), decay_});
}

void Ema::swap_with(const ParameterSet& params) {
  check_shape("ema", "parameters", params.values(), shadow_.shape());
  Tensor live = params.values().clone();
  Tensor values = params.values();
  values.copy_from(shadow_);
  shadow_.copy_from(live);
  params.sync_compute_copy();  // mixed precision: the layers' copy follows the live weights
}

}  // namespace ddpm
