// Exponential moving average of the parameters (never of buffers: they are not in the parameter
// buffer): shadow = decay * shadow + (1 - decay) * params, one pass over the flat buffer.
#pragma once
#include "engine/nn/parameters.h"

namespace ddpm {

class Ema {
 public:
  Ema(const ParameterSet& params, double decay);  // the shadow starts as a copy of the parameters
  void update(const ParameterSet& params);
  const Tensor& shadow() const { return shadow_; }
  double decay() const { return decay_; }
  void restore(const Tensor& shadow) { shadow_.copy_from(shadow); }
  // Exchanges the shadow and the live parameters (sample with EMA weights, then swap back).
  void swap_with(const ParameterSet& params);

 private:
  Tensor shadow_;
  double decay_;
};

}  // namespace ddpm
