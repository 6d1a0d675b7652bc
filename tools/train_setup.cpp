#include "tools/train_setup.h"

#include <filesystem>

#include "tools/checkpoint.h"
#include "tools/conditioning.h"
#include "tools/factories.h"
#include "tools/generate.h"

namespace ddpm {

namespace fs = std::filesystem;

namespace {
std::string default_run_dir(const std::string& config_file) {
  return "runs/" + (config_file.empty() ? std::string("default") : fs::path(config_file).stem().string());
}
}  // namespace

std::unique_ptr<TrainRun> set_up_training(const TrainArgs& args, Communicator& comm) {
  auto run = std::make_unique<TrainRun>();
  TrainRun& r = *run;
  Json resumed;
  if (!args.resume.empty()) {
    DDPM_CHECK(args.config_file.empty(), "train: --resume takes the run's own config; use --set to change values");
    r.run_dir = args.resume;
    r.resuming = true;
    resumed = read_checkpoint_state(r.run_dir);
    r.config = recorded_config(resumed.at("config"), args.overrides);
  } else {
    r.config = load_config(args.config_file, args.overrides);
    r.run_dir = args.out.empty() ? default_run_dir(args.config_file) : args.out;
    DDPM_CHECK(!fs::exists(fs::path(r.run_dir) / "checkpoint.json"), "train: '", r.run_dir,
               "' already holds a run; continue it with --resume ", r.run_dir, " or choose another --out");
  }
  if (comm.is_root()) fs::create_directories(fs::path(r.run_dir) / "samples");
  const TrainSection& t = r.config.train;
  DDPM_CHECK(t.steps >= 1 && t.batch_size >= 1 && t.log_every >= 1 && t.warmup >= 0 && t.lr > 0,
             "train: need steps >= 1, batch_size >= 1, log_every >= 1, warmup >= 0 and lr > 0");
  r.lr = std::make_unique<LrSchedule>(t, false);
  r.shard = shard_of(t.batch_size, comm);
  r.share = static_cast<double>(r.shard.size) / static_cast<double>(t.batch_size);

  // ---- data, model, optimizer ----
  r.device = choose_device(t.device);
  DDPM_CHECK(!t.mixed_precision || r.device == Device::CUDA, "train.mixed_precision trains in bfloat16 on a GPU, but "
             "this run is on the CPU; set train.mixed_precision=false");
  apply_conv_impl(t.conv_impl, t.deterministic);
  r.data = load_dataset(r.config.data, "train");
  check_class_conditioning(r.config, r.data);
  r.num_classes = r.config.model.num_classes;
  r.class_names = run_class_names(r.config.model, r.data);
  GenerateOptions sample_check;  // sample.class and sample.guidance, checked now rather than after training
  choose_sample_classes(r.config.sample, r.class_names, r.num_classes, sample_check);
  r.image_shape = {r.data.height(), r.data.width(), r.data.channels()};
  r.model = build_model(r.config, r.image_shape);
  r.params = std::make_unique<ParameterSet>(*r.model, t.seed, r.device);
  r.adam = std::make_unique<Adam>(*r.params, AdamConfig{0.9, 0.999, 1e-8, t.weight_decay, t.adamw});
  r.ema = std::make_unique<Ema>(*r.params, t.ema_decay);
  r.diffusion = std::make_unique<GaussianDiffusion>(build_diffusion(r.config.diffusion));
  r.timesteps = make_timestep_sampler(r.config.diffusion.timestep_sampler, r.diffusion->steps());
  if (r.resuming) {
    resumed = load_checkpoint(r.run_dir, *r.params, r.ema.get(), r.adam.get());
    r.step = resumed.at("step");
    DDPM_CHECK(resumed.at("image_shape").get<Shape>() == r.image_shape, "train --resume: the data's image shape ",
               shape_str(r.image_shape), " differs from the checkpoint's ", resumed.at("image_shape").dump());
    r.timesteps->restore(resumed.at("timestep_sampler"));
    DDPM_CHECK(class_names_of_run(resumed) == r.class_names, "train --resume: the data's classes differ from the ",
               "classes the checkpoint was trained on (", resumed.value("classes", Json::array()).dump(), ")");
    DDPM_CHECK(r.step < t.steps, "train --resume: the run already reached step ", r.step, " of ", t.steps,
               "; raise train.steps with --set train.steps=N to go on");
  }
  r.last_checkpoint = r.step;
  broadcast_training_state(comm, *r.params, *r.ema, *r.adam);
  // Mixed precision: the bfloat16 weights the layers read, from the (loaded, broadcast) masters.
  if (t.mixed_precision) r.params->keep_compute_copy(DType::BF16);
  return run;
}

}  // namespace ddpm
