#include "diffusion/timestep_sampler.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "engine/philox.h"

namespace ddpm {

TimestepDraw TimestepSampler::draw(int n, uint64_t seed, uint64_t stream) const {
  const std::vector<double> p = probabilities();
  std::vector<double> cumulative(p.size());
  double running = 0;
  for (size_t i = 0; i < p.size(); ++i) cumulative[i] = running += p[i];
  TimestepDraw d;
  for (int i = 0; i < n; ++i) {
    const double u = philox::uniform(seed, stream, static_cast<uint64_t>(i)) * running;
    const size_t t = std::min(static_cast<size_t>(std::upper_bound(cumulative.begin(), cumulative.end(), u) - cumulative.begin()),
                              p.size() - 1);
    d.t.push_back(static_cast<int>(t));
    d.weights.push_back(running / (static_cast<double>(p.size()) * p[t]));
  }
  return d;
}

UniformTimestepSampler::UniformTimestepSampler(int steps) : steps_(steps) {
  DDPM_CHECK(steps >= 1, "timestep sampler: need at least one step, got ", steps);
}

std::vector<double> UniformTimestepSampler::probabilities() const {
  return std::vector<double>(static_cast<size_t>(steps_), 1.0 / steps_);
}

LossSecondMomentSampler::LossSecondMomentSampler(int steps, int history, double uniform_floor)
    : steps_(steps), history_(history), uniform_floor_(uniform_floor), losses_(static_cast<size_t>(steps)) {
  DDPM_CHECK(steps >= 1 && history >= 1 && uniform_floor >= 0 && uniform_floor <= 1,
             "loss-second-moment sampler: need steps >= 1, history >= 1 and 0 <= uniform_floor <= 1");
}

bool LossSecondMomentSampler::warmed_up() const {
  for (const auto& h : losses_)
    if (static_cast<int>(h.size()) < history_) return false;
  return true;
}

std::vector<double> LossSecondMomentSampler::probabilities() const {
  const auto n = static_cast<size_t>(steps_);
  if (!warmed_up()) return std::vector<double>(n, 1.0 / steps_);
  std::vector<double> p(n);
  double total = 0;
  for (size_t t = 0; t < n; ++t) {
    double second_moment = 0;
    for (double l : losses_[t]) second_moment += l * l;
    total += p[t] = std::sqrt(second_moment / history_);
  }
  for (double& v : p) v = (total > 0 ? v / total : 1.0 / steps_) * (1 - uniform_floor_) + uniform_floor_ / steps_;
  return p;
}

void LossSecondMomentSampler::update(const std::vector<int>& t, const std::vector<double>& losses) {
  DDPM_CHECK(t.size() == losses.size(), "loss-second-moment sampler: ", t.size(), " timesteps but ", losses.size(),
             " losses");
  for (size_t i = 0; i < t.size(); ++i) {
    DDPM_CHECK(t[i] >= 0 && t[i] < steps_, "loss-second-moment sampler: timestep ", t[i], " outside [0, ", steps_, ")");
    auto& h = losses_[static_cast<size_t>(t[i])];
    if (static_cast<int>(h.size()) == history_) h.erase(h.begin());
    h.push_back(losses[i]);
  }
}

nlohmann::json LossSecondMomentSampler::state() const { return {{"losses", losses_}}; }

void LossSecondMomentSampler::restore(const nlohmann::json& state) {
  auto losses = state.at("losses").get<std::vector<std::vector<double>>>();
  DDPM_CHECK(losses.size() == losses_.size(), "loss-second-moment sampler: saved state has ", losses.size(),
             " steps, expected ", losses_.size());
  losses_ = std::move(losses);
}

TimestepSamplerKind parse_timestep_sampler(const std::string& name) {
  if (name == "uniform") return TimestepSamplerKind::Uniform;
  DDPM_CHECK(name == "loss_second_moment", "diffusion.timestep_sampler must be \"uniform\" or \"loss_second_moment\", got \"",
             name, "\"");
  return TimestepSamplerKind::LossSecondMoment;
}

const char* timestep_sampler_name(TimestepSamplerKind kind) {
  return kind == TimestepSamplerKind::Uniform ? "uniform" : "loss_second_moment";
}

std::unique_ptr<TimestepSampler> make_timestep_sampler(TimestepSamplerKind kind, int steps) {
  if (kind == TimestepSamplerKind::Uniform) return std::make_unique<UniformTimestepSampler>(steps);
  return std::make_unique<LossSecondMomentSampler>(steps);
}

}  // namespace ddpm
