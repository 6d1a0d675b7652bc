// The learning rate of every training step, for `ddpm train` and `ddpm classifier train`: the one
// place it is computed. Linear warm-up from 0 to train.lr over train.warmup steps, then constant,
// or with cosine decay (classifier.cosine_decay) half a cosine from train.lr down to 0 at the last
// step:
//   lr_at(s) = lr * min(1, s / warmup) * (cosine && s > warmup ? (1 + cos(pi (s - warmup) / (total - warmup))) / 2 : 1)
#pragma once
#include <cstdint>

#include "tools/typed_config.h"

namespace ddpm {

class LrSchedule {
 public:
  // peak > 0, warmup >= 0; with cosine, warmup < total_steps. Throws otherwise.
  LrSchedule(double peak, int64_t warmup, int64_t total_steps, bool cosine);
  // train.lr, train.warmup and train.steps of `t`.
  LrSchedule(const TrainSection& t, bool cosine) : LrSchedule(t.lr, t.warmup, t.steps, cosine) {}

  // The rate of step `step` (steps count from 1; step 0 is before the first update).
  double lr_at(int64_t step) const;

 private:
  double peak_;
  int64_t warmup_, total_;
  bool cosine_;
};

}  // namespace ddpm
