// How training picks t: uniformly, or by importance sampling on the loss's second moment
// (Nichol and Dhariwal, for the KL/hybrid losses whose terms differ by orders of magnitude).
// Draws come with weights 1 / (T p_t) so the weighted loss stays an unbiased estimate.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ddpm {

struct TimestepDraw {
  std::vector<int> t;
  std::vector<double> weights;
};

class TimestepSampler {
 public:
  virtual ~TimestepSampler() = default;
  virtual std::vector<double> probabilities() const = 0;  // [T]
  // n draws, addressed by Philox (seed, stream) like every random draw of the engine.
  TimestepDraw draw(int n, uint64_t seed, uint64_t stream) const;
  // Feeds back the per-sample losses of the last draw (no-op for the uniform sampler).
  virtual void update(const std::vector<int>& t, const std::vector<double>& losses) { (void)t, (void)losses; }
  virtual nlohmann::json state() const { return nlohmann::json::object(); }  // for checkpoints
  virtual void restore(const nlohmann::json& state) { (void)state; }
};

class UniformTimestepSampler final : public TimestepSampler {
 public:
  explicit UniformTimestepSampler(int steps);
  std::vector<double> probabilities() const override;

 private:
  int steps_;
};

// p_t proportional to sqrt(E[L_t^2]) over the last `history` losses of each step, mixed with a
// uniform floor; uniform until every step has a full history.
class LossSecondMomentSampler final : public TimestepSampler {
 public:
  explicit LossSecondMomentSampler(int steps, int history = 10, double uniform_floor = 0.001);
  std::vector<double> probabilities() const override;
  void update(const std::vector<int>& t, const std::vector<double>& losses) override;
  nlohmann::json state() const override;
  void restore(const nlohmann::json& state) override;
  bool warmed_up() const;

 private:
  int steps_, history_;
  double uniform_floor_;
  std::vector<std::vector<double>> losses_;  // [T][<= history], oldest first
};

enum class TimestepSamplerKind { Uniform, LossSecondMoment };
TimestepSamplerKind parse_timestep_sampler(const std::string& name);  // "uniform", "loss_second_moment"
const char* timestep_sampler_name(TimestepSamplerKind kind);
std::unique_ptr<TimestepSampler> make_timestep_sampler(TimestepSamplerKind kind, int steps);

}  // namespace ddpm
