#include "tools/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"

namespace ddpm {

LrSchedule::LrSchedule(double peak, int64_t warmup, int64_t total_steps, bool cosine)
    : peak_(peak), warmup_(warmup), total_(total_steps), cosine_(cosine) {
  DDPM_CHECK(peak > 0 && warmup >= 0, "train: need train.lr > 0 and train.warmup >= 0, got lr ", peak, " and warmup ",
             warmup);
  DDPM_CHECK(!cosine || warmup < total_steps, "train: cosine decay needs train.warmup < train.steps, got warmup ",
             warmup, " of ", total_steps, " steps");
}

double LrSchedule::lr_at(int64_t step) const {
  double f = warmup_ > 0 ? std::min(1.0, static_cast<double>(step) / static_cast<double>(warmup_)) : 1.0;
  if (cosine_ && step > warmup_)
    f *= 0.5 * (1.0 + std::cos(M_PI * static_cast<double>(step - warmup_) / static_cast<double>(total_ - warmup_)));
  return peak_ * f;
}

}  // namespace ddpm
