#include "tools/trained_model.h"

#include "engine/optim/ema.h"
#include "tools/checkpoint.h"

namespace ddpm {

TrainedModel load_trained_model(const std::string& run_dir, const std::vector<std::string>& overrides,
                                 bool for_eval) {
  TrainedModel m;
  m.state = read_checkpoint_state(run_dir);
  DDPM_CHECK(m.state.value("kind", std::string()) != "classifier", "'", run_dir,
             "' holds a classifier (ddpm classifier train), not a DDPM; evaluate it with ddpm classifier eval --run ",
             run_dir);
  m.config = recorded_config(m.state.at("config"), overrides);
  m.image_shape = m.state.at("image_shape").get<Shape>();
  m.device = choose_device(m.config.train.device);
  apply_conv_impl(m.config.train.conv_impl, m.config.train.deterministic);
  m.model = build_model(m.config, m.image_shape);
  m.params = std::make_unique<ParameterSet>(*m.model, 0, m.device);
  m.diffusion = std::make_unique<GaussianDiffusion>(build_diffusion(m.config.diffusion));
  Ema ema(*m.params, 0.0);
  load_checkpoint(run_dir, *m.params, &ema, nullptr);
  if (for_eval ? m.config.eval.use_ema : m.config.sample.use_ema) ema.swap_with(*m.params);
  m.model->train(false);
  return m;
}

}  // namespace ddpm
