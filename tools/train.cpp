// `ddpm train`: the training loop. Set-up (tools/train_setup.h), one step (tools/train_step.h),
// logging (tools/train_log.h) and checkpoints (tools/train_checkpoint.h) are their own files;
// this one runs them in order, takes stop requests and draws the sample grids.
#include "tools/train.h"

#include <csignal>
#include <cstdio>
#include <filesystem>

#include "engine/autograd.h"
#include "tools/conditioning.h"
#include "tools/data/batch_order.h"
#include "tools/data_parallel.h"
#include "tools/factories.h"
#include "tools/generate.h"
#include "tools/train_checkpoint.h"
#include "tools/train_log.h"
#include "tools/train_setup.h"
#include "tools/train_step.h"
#include "tools/train_step_graph.h"

namespace ddpm {

namespace fs = std::filesystem;

namespace {
volatile std::sig_atomic_t g_interrupted = 0;
void on_stop_request(int) { g_interrupted = 1; }

// A grid of sample.count samples with the EMA weights, train.sample_steps respaced ancestral steps
// (rank 0 only).
void sample_grid(TrainRun& run, const fs::path& path) {
  NoGradGuard no_grad;
  run.ema->swap_with(*run.params);
  GenerateOptions o;
  o.count = run.config.sample.count;
  o.steps = run.config.train.sample_steps;
  o.seed = seed_for(run.config.sample.seed, Purpose::Sampling);
  o.cuda_graphs = run.config.sample.cuda_graphs;
  const int columns = choose_sample_classes(run.config.sample, run.class_names, run.num_classes, o);
  Tensor images = generate(*run.model, *run.diffusion, run.image_shape, run.device, o);
  run.ema->swap_with(*run.params);
  save_samples(images, path.string(), columns);
}

int train(const TrainArgs& args, Communicator& comm) {
  const bool root = comm.is_root();
  const std::unique_ptr<TrainRun> owned = set_up_training(args, comm);
  TrainRun& run = *owned;
  const TrainSection& t = run.config.train;
  TrainLog log(run, comm);
  say_what_is_kept(run, comm);

  // SIGINT, or SIGUSR1 (which mpirun forwards to every rank), stops after the step with a checkpoint.
  g_interrupted = 0;
  auto previous_sigint = std::signal(SIGINT, on_stop_request);
  auto previous_sigusr1 = std::signal(SIGUSR1, on_stop_request);
  BatchOrder order(run.data.size(), t.seed);
  // CUDA graphs (train.cuda_graphs): one rank on CUDA captures the step (tools/train_step_graph.h);
  // otherwise the step runs as it always has, with a one-line reason when graphs were asked for.
  std::unique_ptr<GraphedTrainStep> graphed;
  if (t.cuda_graphs && run.device == Device::CUDA) {
    const std::string why = why_no_train_graphs(run, comm.size());
    if (why.empty())
      graphed = std::make_unique<GraphedTrainStep>(run, true);
    else if (root)
      std::fprintf(stderr, "ddpm train: the training step runs without CUDA graphs: %s\n", why.c_str());
  }
  int status = 0;
  while (run.step < t.steps) {
    const StepResult result =
        graphed ? graphed->step(run, order, g_interrupted != 0) : train_step(run, order, comm, g_interrupted != 0);
    log.record(run, result, comm);
    if (root && t.sample_every > 0 && run.step % t.sample_every == 0) {
      char name[32];
      std::snprintf(name, sizeof name, "step_%07lld.png", static_cast<long long>(run.step));
      sample_grid(run, fs::path(run.run_dir) / "samples" / name);
    }
    if (result.stop_requested) {
      save_training_checkpoint(run, comm);
      log.finish("interrupted");
      if (root)
        std::fprintf(stderr, "ddpm train: interrupted at step %lld; checkpoint saved. Continue with: ddpm train --resume %s\n",
                     static_cast<long long>(run.step), run.run_dir.c_str());
      status = 130;
      break;
    }
    if ((t.checkpoint_every > 0 && run.step % t.checkpoint_every == 0) || run.step == t.steps)
      save_training_checkpoint(run, comm);
  }
  std::signal(SIGINT, previous_sigint);
  std::signal(SIGUSR1, previous_sigusr1);
  if (status != 0 || !root) return status;
  log.finish("done");

  // ---- the run's pictures ----
  const double final_loss = log.write_loss_curve(run.run_dir);
  sample_grid(run, fs::path(run.run_dir) / "samples.png");
  std::fprintf(stderr, "ddpm train: final loss %.4f; wrote %s/loss_curve.png and %s/samples.png\n", final_loss,
               run.run_dir.c_str(), run.run_dir.c_str());
  return 0;
}

}  // namespace

int train_command(const TrainArgs& args) {
  Communicator& comm = world();  // first: with several ranks it also picks this rank's GPU
  if (comm.size() == 1) return train(args, comm);
  try {
    return train(args, comm);
  } catch (const std::exception& e) {
    // The other ranks may be waiting in a collective for this one: end the whole job.
    std::fprintf(stderr, "\nddpm train (rank %d of %d): error: %s\n", comm.rank(), comm.size(), e.what());
    comm.abort(1);
  }
  return 1;  // not reached: abort() ends the process
}

}  // namespace ddpm
