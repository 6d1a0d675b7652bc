#include "diffusion/timestep_spacing.h"

#include <algorithm>
#include <cmath>

#include "diffusion/schedule.h"
#include "engine/error.h"

namespace ddpm {

TimestepSpacing parse_timestep_spacing(const std::string& name) {
  if (name == "even") return TimestepSpacing::Even;
  if (name == "leading") return TimestepSpacing::Leading;
  if (name == "trailing") return TimestepSpacing::Trailing;
  detail::fail("sample.spacing must be \"even\", \"leading\" or \"trailing\", got \"", name, "\"");
}

const char* timestep_spacing_name(TimestepSpacing spacing) {
  switch (spacing) {
    case TimestepSpacing::Even: return "even";
    case TimestepSpacing::Leading: return "leading";
    case TimestepSpacing::Trailing: return "trailing";
  }
  return "?";
}

std::vector<int> sampling_steps(TimestepSpacing spacing, int steps, int count) {
  if (spacing == TimestepSpacing::Even) return spaced_steps(steps, count);
  DDPM_CHECK(count >= 2 && count <= steps, "respacing: cannot pick ", count, " steps out of ", steps,
             " (need 2 <= count <= T)");
  std::vector<int> out;
  if (spacing == TimestepSpacing::Leading) {
    for (int k = 0; k < count; ++k) out.push_back(k * (steps / count));
  } else {
    const double ratio = static_cast<double>(steps) / count;
    for (int k = count - 1; k >= 0; --k)  // nearbyint rounds half to even, as numpy's round does
      out.push_back(static_cast<int>(std::nearbyint(steps - k * ratio)) - 1);
  }
  return out;
}

}  // namespace ddpm
