// Which steps a respaced sampler visits. "even" is the engine's own choice (0 and T-1 always
// included); "leading" and "trailing" are diffusers' DDIM/DDPM scheduler conventions
// (timestep_spacing), so that an imported model samples over the steps it is used with there.
#pragma once
#include <string>
#include <vector>

namespace ddpm {

enum class TimestepSpacing { Even, Leading, Trailing };
TimestepSpacing parse_timestep_spacing(const std::string& name);  // "even", "leading", "trailing"
const char* timestep_spacing_name(TimestepSpacing spacing);

// `count` sorted, unique steps out of 0..T-1 (2 <= count <= T):
//   even:     round(k (T-1) / (count-1)), k = 0..count-1 (spaced_steps in schedule.h)
//   leading:  k * floor(T / count)                       (diffusers "leading", steps_offset 0)
//   trailing: round_half_even(T - k T / count) - 1       (diffusers "trailing")
// When count divides T, leading and trailing steps are T/count apart, which is the gap diffusers'
// DDIM step assumes (prev = t - T/count), so the engine's respaced chain is diffusers' chain.
std::vector<int> sampling_steps(TimestepSpacing spacing, int steps, int count);

}  // namespace ddpm
