// The ddpm program: train, sample, eval, info, classifier.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "engine/cpu_startup_env.h"
#include "engine/error.h"
#include "tools/commands.h"
#include "tools/config.h"
#include "tools/train.h"

namespace {

const char* kUsage =
    "usage: ddpm <command> [options]\n"
    "\n"
    "commands:\n"
    "  train   train a DDPM (or resume one)     ddpm train --config FILE [--set key=value ...] [--out RUN_DIR]\n"
    "                                           ddpm train --resume RUN_DIR [--set key=value ...]\n"
    "  sample  draw images from a trained run   ddpm sample --run RUN_DIR [--set sample.key=value ...] [--out FILE.png] [--raw FILE.safetensors]\n"
    "                                           [--class NAME|INDEX|all|none] [--guidance W]\n"
    "  eval    test-set bits/dim, every term    ddpm eval --run RUN_DIR [--set eval.key=value ...] [--out FILE.json]\n"
    "          sample quality (FID, KID, ...)   ddpm eval --run RUN_DIR --metrics fid,kid,precision,recall,is --features SPEC [--count N]\n"
    "  info    model summary and device         ddpm info (--config FILE | --run RUN_DIR) [--set key=value ...]\n"
    "  import  a diffusers UNet2DModel -> run   ddpm import diffusers DIR --out RUN_DIR [--set key=value ...]\n"
    "  export  a run -> diffusers DDPMPipeline  ddpm export diffusers RUN_DIR --out DIR\n"
    "  plot    a line chart of JSON records     ddpm plot FILE... --x KEY --y KEY [--series KEY] [--log x|y|xy] --out FILE.png\n"
    "  classifier  train / evaluate the image classifier of the classifier-FD metric\n"
    "                                           ddpm classifier train --config FILE [--set key=value ...] [--out RUN_DIR]\n"
    "                                           ddpm classifier eval --run RUN_DIR [--split test|train] [--out FILE.json]\n"
    "\n"
    "`ddpm <command> --help` explains a command. Docs: docs/usage.md.\n";

const char* help_for(const std::string& command) {
  if (command == "train")
    return "ddpm train --config FILE [--set section.key=value ...] [--out RUN_DIR]\n"
           "ddpm train --resume RUN_DIR [--set section.key=value ...]\n\n"
           "Trains a DDPM on the configured data (CPU, or CUDA when a GPU is present; train.device).\n"
           "The run directory receives config.json, metrics.jsonl (one JSON line per log_every steps),\n"
           "checkpoints (checkpoint.json + ckpt-<step>.safetensors), samples/ grids every\n"
           "train.sample_every steps, and at the end loss_curve.png and samples.png (EMA weights).\n"
           "--out defaults to runs/<config file name>. Ctrl-C saves a checkpoint and exits with 130;\n"
           "--resume continues exactly where the checkpoint left off (raise train.steps to go further).\n"
           "A NaN or infinite loss stops training and keeps the last good checkpoint.\n"
           "Under mpirun -np N it trains data-parallel: train.batch_size is the global batch, rank 0\n"
           "writes the run, and SIGUSR1 to mpirun stops every rank with a checkpoint (docs/distributed.md).\n\n"
           "Config keys and defaults:\n";
  if (command == "sample")
    return "ddpm sample --run RUN_DIR [--set sample.key=value ...] [--out FILE.png] [--raw FILE.safetensors]\n\n"
           "Draws sample.count images from the run's checkpoint (EMA weights unless sample.use_ema=false):\n"
           "sample.method ancestral or ddim (sample.eta), sample.steps > 0 respaces the chain to that many\n"
           "steps; dpm++2m, dpm++3m, heun and euler_a need sample.steps > 0 noise levels (docs/usage.md).\n"
           "Writes a PNG grid (default RUN_DIR/samples_<method>_<steps>.png) and, with --raw, the\n"
           "samples as an NHWC float32 tensor named \"samples\" in a safetensors file.\n"
           "Class-conditional runs: --class NAME|INDEX|all|none (default all: one grid row per class),\n"
           "--guidance W (classifier-free guidance, eps = (1 + W) eps(x, class) - W eps(x, none); 0 = off).\n";
  if (command == "eval")
    return "ddpm eval --run RUN_DIR [--set eval.key=value ...] [--out FILE.json]\n\n"
           "Evaluates the full variational bound on the first eval.count test images: the prior L_T,\n"
           "every L_{t-1} and the decoder L_0, in bits/dim. Writes the per-term breakdown as JSON\n"
           "(default RUN_DIR/eval.json) and a plot of bits/dim against t next to it (_terms.png).\n\n"
           "ddpm eval --run RUN_DIR --metrics LIST --features SPEC [--count N] [--source samples|train|noise]\n"
           "          [--reference test|train] [--cache DIR] [--set key=value ...] [--out FILE.json]\n\n"
           "Sample-quality metrics in a feature network's space. LIST: any of fid, kid, precision, recall,\n"
           "is, accuracy, bpd (comma-separated; bpd is the bound above; accuracy, for class-conditional\n"
           "runs, is the share of samples the classifier assigns to the class they were drawn for).\n"
           "SPEC: inception:FILE (Inception-v3 weights from scripts/convert_inception.py) or\n"
           "classifier:RUN_DIR (a `ddpm classifier train` run).\n"
           "N images (default eval.count) come from --source: the run's samples (the sample section's\n"
           "settings and seed; the same images `ddpm sample` draws), N train images drawn by eval.seed\n"
           "(the floor a perfect model would reach) or N(0,1) noise clamped to [-1, 1]. They are compared\n"
           "with the first min(N, split size) images of the --reference split (default test), whose\n"
           "statistics are cached as a pytorch-fid compatible .npz in --cache (default $DDPM_CACHE_DIR,\n"
           "else $XDG_CACHE_HOME/ddpm/reference_stats, else ~/.cache/ddpm/reference_stats). eval.json gets\n"
           "every metric, the counts, seeds, sampler, the feature network's name and the wall time.\n"
           "Class-conditional runs: the bound given each image's class, also per class (\"per_class\").\n";
  if (command == "info")
    return "ddpm info (--config FILE | --run RUN_DIR) [--set section.key=value ...]\n\n"
           "Prints the model's parameter count by block, the diffusion settings and the device.\n";
  if (command == "import")
    return "ddpm import diffusers DIR --out RUN_DIR [--set section.key=value ...]\n\n"
           "Turns a diffusers UNet2DModel (DIR: a pipeline folder with model_index.json, unet/ and\n"
           "scheduler/, or a UNet folder with config.json and diffusion_pytorch_model.safetensors) and its\n"
           "DDPMScheduler/DDIMScheduler config into a run directory for ddpm sample and ddpm eval (the\n"
           "weights are the model and its EMA). Fields the engine cannot express are refused by name.\n"
           "--set adjusts the written config (e.g. data.path for eval). docs/usage.md lists what maps.\n";
  if (command == "export")
    return "ddpm export diffusers RUN_DIR --out DIR [--set sample.use_ema=false]\n\n"
           "Writes the run's UNet (EMA weights by default) as a diffusers DDPMPipeline folder:\n"
           "model_index.json, unet/ (UNet2DModel) and scheduler/ (DDPMScheduler).\n";
  if (command == "plot")
    return "ddpm plot FILE... --x KEY --y KEY [--series KEY] [--log x|y|xy] [--title TEXT] --out FILE.png\n\n"
           "A line chart of JSON records: each FILE holds one JSON object (an eval.json) or one per line\n"
           "(metrics.jsonl). KEY is a dotted path into a record (metrics.fid, sampler.evaluations, step).\n"
           "Records are grouped into one line per value of the --series key and sorted by x; records\n"
           "without the x or y key are left out. --log plots log10 of x, y or both. Prints the points.\n"
           "Example: ddpm plot runs/fm/sampler_quality/fd/*.json --x sampler.evaluations --y metrics.fid\n"
           "         --series sampler.method --log xy --out fd.png\n";
  if (command == "classifier")
    return "ddpm classifier train --config FILE [--set section.key=value ...] [--out RUN_DIR]\n"
           "ddpm classifier eval --run RUN_DIR [--split test|train] [--set section.key=value ...] [--out FILE.json]\n\n"
           "train: trains a small ResNet (models/classifier.h) on the data set's labels with cross-entropy;\n"
           "data.* picks the data, train.* the optimization (steps, batch_size, lr, warmup, weight_decay,\n"
           "adamw, ema_decay, grad_clip, seed, device, log_every) and classifier.* the network and schedule.\n"
           "The run directory (default runs/<config name>) receives config.json, metrics.jsonl (loss, training\n"
           "accuracy, images/s), the checkpoint and eval_test.json, the test accuracy of the result.\n"
           "eval: the accuracy and cross-entropy on a split (default test); writes RUN_DIR/eval_<split>.json.\n"
           "The run's pooled penultimate features are the feature space of `classifier:RUN_DIR` metrics.\n"
           "Data sets without labels are refused. Example: configs/classifier_fashion_mnist.json.\n\n"
           "Config keys and defaults:\n";
  return nullptr;
}

struct Parsed {
  std::string command;
  std::string subcommand;  // classifier: train or eval
  ddpm::TrainArgs train;
  ddpm::RunArgs run;
  bool help = false;
};

Parsed parse(int argc, char** argv) {
  Parsed p;
  p.command = argc > 1 ? argv[1] : "";
  int first = 2;
  if (p.command == "classifier" && argc > 2 && argv[2][0] != '-') p.subcommand = argv[first++];
  for (int i = first; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      DDPM_CHECK(i + 1 < argc, "ddpm ", p.command, ": ", arg, " needs a value (see ddpm ", p.command, " --help)");
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") p.help = true;
    else if (arg == "--config") p.train.config_file = p.run.config_file = value();
    else if (arg == "--set") {
      const std::string v = value();
      p.train.overrides.push_back(v);
      p.run.overrides.push_back(v);
    } else if (arg == "--resume") p.train.resume = value();
    else if (arg == "--out") p.train.out = p.run.out = value();
    else if (arg == "--run") p.run.run_dir = value();
    else if (arg == "--raw") p.run.raw = value();
    else if ((p.command == "import" || p.command == "export" || p.command == "plot") && arg[0] != '-')
      p.run.positional.push_back(arg);
    else if (p.command == "plot" && arg == "--x") p.run.x = value();
    else if (p.command == "plot" && arg == "--y") p.run.y = value();
    else if (p.command == "plot" && arg == "--series") p.run.series = value();
    else if (p.command == "plot" && arg == "--log") p.run.log = value();
    else if (p.command == "plot" && arg == "--title") p.run.title = value();
    else if (arg == "--metrics") p.run.metrics = value();
    else if (arg == "--features") p.run.features = value();
    else if (arg == "--source") p.run.source = value();
    else if (arg == "--reference") p.run.reference = value();
    else if (arg == "--cache") p.run.cache = value();
    else if (arg == "--count") {
      const std::string v = value();
      char* end = nullptr;
      p.run.count = std::strtoll(v.c_str(), &end, 10);
      DDPM_CHECK(!v.empty() && *end == '\0', "ddpm ", p.command, ": --count needs an integer, got '", v, "'");
    }
    else if (arg == "--class") p.run.overrides.push_back("sample.class=" + nlohmann::json(value()).dump());
    else if (arg == "--guidance") p.run.overrides.push_back("sample.guidance=" + value());
    else if (arg == "--split" && p.command == "classifier") p.run.split = value();
    else ddpm::detail::fail("ddpm ", p.command, ": unknown option '", arg, "' (see ddpm ", p.command, " --help)");
  }
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  ddpm::set_cpu_startup_env(argv);
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  try {
    const Parsed p = parse(argc, argv);
    const char* help = help_for(p.command);
    if (!help) {
      std::fprintf(stderr, "ddpm: unknown command '%s'\n\n%s", p.command.c_str(), kUsage);
      return 2;
    }
    if (p.help) {
      std::fputs(help, stdout);
      if (p.command == "train" || p.command == "classifier") std::fputs(ddpm::describe_defaults().c_str(), stdout);
      return 0;
    }
    if (p.command == "train") return ddpm::train_command(p.train);
    if (p.command == "sample") return ddpm::sample_command(p.run);
    if (p.command == "eval") return ddpm::eval_command(p.run);
    if (p.command == "import") return ddpm::import_command(p.run);
    if (p.command == "export") return ddpm::export_command(p.run);
    if (p.command == "plot") return ddpm::plot_command(p.run);
    if (p.command == "classifier") {
      if (p.subcommand == "train") return ddpm::classifier_train_command(p.train);
      if (p.subcommand == "eval") return ddpm::classifier_eval_command(p.run);
      std::fprintf(stderr, "ddpm classifier: expected 'train' or 'eval', got '%s'\n\n%s", p.subcommand.c_str(), help);
      return 2;
    }
    return ddpm::info_command(p.run);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "\nddpm: error: %s\n", e.what());
    return 1;
  }
}
