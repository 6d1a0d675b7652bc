// The fuzz targets (targets.h). Each accepts or refuses its input with ddpm::Error; every other
// outcome escapes to the fuzzer or the replay test as a failure.
#include <filesystem>
#include <vector>

#include "engine/error.h"
#include "engine/io/safetensors.h"
#include "engine/nn/parameters.h"
#include "engine/optim/adam.h"
#include "engine/optim/ema.h"
#include "models/mlp.h"
#include "tests/fuzz/scratch_files.h"
#include "tests/fuzz/targets.h"
#include "tools/checkpoint.h"
#include "tools/config.h"
#include "tools/data/cifar.h"
#include "tools/data/idx.h"
#include "tools/data/image_folder.h"
#include "tools/factories.h"

namespace ddpm::fuzz {

namespace {
template <class F>
void refusals_allowed(F&& parse) {
  try {
    parse();
  } catch (const Error&) {
  }
}

// A tiny model whose checkpoint the checkpoint target's inputs may point at: the seed corpus holds
// its checkpoint.json, naming this weights file.
struct TinyRun {
  MlpDenoiser model{MlpConfig{2, 2, 8, 1, 8}};
  ParameterSet params{model, 0};
  Ema ema{params, 0.9};
  Adam adam{params, AdamConfig{}};
  std::string dir = scratch_dir() + "/run";
  TinyRun() {
    std::filesystem::create_directories(dir);
    save_checkpoint(dir, params, ema, adam, Json{{"step", 2}, {"config", Json::object()}});
  }
};
}  // namespace

void safetensors(const uint8_t* data, size_t size) {
  refusals_allowed([&] { parse_safetensors(std::vector<uint8_t>(data, data + size), "fuzz input"); });
}

void checkpoint(const uint8_t* data, size_t size) {
  static TinyRun run;
  write_scratch("run/checkpoint.json", data, size);
  refusals_allowed([&] { load_checkpoint(run.dir, run.params, &run.ema, &run.adam); });
}

void config(const uint8_t* data, size_t size) {
  const std::string path = write_scratch("config.json", data, size);
  refusals_allowed([&] {
    const Config config = load_config(path, {});
    build_diffusion(config.diffusion);
    image_shape_of(config.data);
  });
}

void idx(const uint8_t* data, size_t size) {
  // The first byte splits the rest into the image file and the label file.
  const size_t split = size ? 1 + (size - 1) * data[0] / 255 : 0;
  const std::string images = write_scratch("images.idx", data + (size ? 1 : 0), split ? split - 1 : 0);
  const std::string labels = write_scratch("labels.idx", data + split, size - split);
  refusals_allowed([&] { read_idx_pair(images, labels); });
}

void cifar(const uint8_t* data, size_t size) {
  const std::string path = write_scratch("batch.bin", data, size);
  refusals_allowed([&] { read_cifar10_files({path}); });
}

void image_folder(const uint8_t* data, size_t size) {
  std::filesystem::create_directories(scratch_dir() + "/images");
  write_scratch("images/a.png", data, size);
  refusals_allowed([&] { load_image_folder(scratch_dir() + "/images", 3); });
}

}  // namespace ddpm::fuzz
