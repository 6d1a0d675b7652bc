// `ddpm info`: the model a config (or a run) builds, its parameter count by block, and the device.
#include <cctype>
#include <cstdio>
#include <map>

#include "engine/cpu_startup_env.h"
#include "engine/nn/parameters.h"
#include "tools/checkpoint.h"
#include "tools/commands.h"
#include "tools/factories.h"

namespace ddpm {

int info_command(const RunArgs& args) {
  Json state;
  Config config;
  if (!args.run_dir.empty()) {
    state = read_checkpoint_state(args.run_dir);
    config = recorded_config(state.at("config"), args.overrides);
  } else {
    config = load_config(args.config_file, args.overrides);
  }
  const Shape shape = state.is_null() ? image_shape_of(config.data) : state.at("image_shape").get<Shape>();
  std::unique_ptr<Denoiser> model = build_model(config, shape);
  int64_t total = 0;
  std::map<std::string, int64_t> by_block;
  std::vector<std::string> order;
  model->visit_parameters([&](const std::string& name, Tensor& t, const InitSpec&) {
    // The top-level module, with its index for lists ("down.1", "temb_dense.0").
    const size_t first = name.find('.'), second = name.find('.', first + 1);
    const bool indexed = second != std::string::npos && std::isdigit(static_cast<unsigned char>(name[first + 1]));
    const std::string block = name.substr(0, indexed ? second : first);
    if (!by_block.count(block)) order.push_back(block);
    by_block[block] += t.numel();
    total += t.numel();
  });
  const GaussianDiffusion diffusion = build_diffusion(config.diffusion);
  std::printf("model: %s, input %s, %lld parameters\n", model_type_name(config.model.type),
              shape_str(shape).c_str(), static_cast<long long>(total));
  for (const std::string& block : order)
    std::printf("  %-28s %12lld\n", block.c_str(), static_cast<long long>(by_block[block]));
  std::printf("diffusion: %d steps, %s schedule, %s prediction, %s variance, %s loss\n", diffusion.steps(),
              beta_schedule_name(config.diffusion.schedule),
              prediction_name(diffusion.config().prediction), variance_name(diffusion.config().variance),
              loss_name(diffusion.config().loss));
  // info describes a config even where it cannot run (a CUDA config on a CPU-only machine).
  std::string device;
  try {
    device = device_name(choose_device(config.train.device));
  } catch (const Error& e) {
    device = std::string("none usable here (") + e.what() + ")";
  }
  std::printf("device: %s (CUDA %s; OpenBLAS kernels %s)\n", device.c_str(),
              cuda_available() ? "available" : "not available", blas_core_name());
  if (!state.is_null()) std::printf("checkpoint: step %lld in %s\n", state["step"].get<long long>(), args.run_dir.c_str());
  return 0;
}

}  // namespace ddpm
