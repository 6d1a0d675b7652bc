// `ddpm sample`: draws images from a run's checkpoint into a PNG grid (and optionally the raw tensor).
#include <cstdio>

#include "engine/io/safetensors.h"
#include "tools/commands.h"
#include "tools/conditioning.h"
#include "tools/generate.h"
#include "tools/progress.h"
#include "tools/trained_model.h"

namespace ddpm {

int sample_command(const RunArgs& args) {
  DDPM_CHECK(!args.run_dir.empty(), "sample: give the run directory with --run RUN_DIR");
  TrainedModel m = load_trained_model(args.run_dir, args.overrides, false);
  GenerateOptions o = generate_options(m.config.sample);
  const int columns = choose_sample_classes(m.config.sample, class_names_of_run(m.state), m.model->num_classes(), o);
  const int chain = o.steps > 0 && o.steps < m.diffusion->steps() ? o.steps : m.diffusion->steps();
  ProgressBar bar("sample", (o.count + o.batch - 1) / o.batch * generate_evaluations(*m.diffusion, o), 0, 100);
  o.progress = [&](int64_t done, int64_t) { bar.update(done, "steps", 1); };
  const Tensor images = generate(*m.model, *m.diffusion, m.image_shape, m.device, o);
  bar.finish("done");
  const std::string out = args.out.empty() ? args.run_dir + "/samples_" + sample_method_name(o.method) + "_" + std::to_string(chain) + ".png" : args.out;
  save_samples(images, out, columns);
  if (!args.raw.empty()) save_safetensors(args.raw, {{"samples", images}}, {{"format", "NHWC, values in [-1, 1]"}});
  std::printf("%s\n", out.c_str());
  return 0;
}

}  // namespace ddpm
