#include "tools/checkpoint.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "engine/io/safetensors.h"

namespace ddpm {

namespace fs = std::filesystem;

namespace {
const char* kStateFile = "checkpoint.json";
const char* kPrefixes[] = {"model.", "ema.", "adam_m.", "adam_v."};

std::string weights_name(int64_t step) {
  char name[64];
  std::snprintf(name, sizeof name, "ckpt-%08lld.safetensors", static_cast<long long>(step));
  return name;
}

// The slice of a flat buffer that holds one parameter, as a CPU copy.
Tensor slice_of(const Tensor& flat, const NamedParameter& p) {
  auto impl = std::make_shared<TensorImpl>(*flat.impl_ptr());
  impl->shape = p.value.shape();
  impl->offset += static_cast<size_t>(p.offset) * dtype_size(flat.dtype());
  impl->grad_fn = nullptr;
  impl->grad = nullptr;
  impl->requires_grad = false;
  return Tensor(std::move(impl)).to(Device::CPU);
}

void copy_into_slice(const Tensor& flat, const NamedParameter& p, const Tensor& value) {
  auto impl = std::make_shared<TensorImpl>(*flat.impl_ptr());
  impl->shape = p.value.shape();
  impl->offset += static_cast<size_t>(p.offset) * dtype_size(flat.dtype());
  impl->grad_fn = nullptr;
  impl->grad = nullptr;
  Tensor(std::move(impl)).copy_from(value.to(flat.dtype()).to(flat.device()));
}
}  // namespace

void save_checkpoint(const std::string& run_dir, const ParameterSet& params, const Ema& ema, const Adam& adam,
                     const Json& state) {
  const int64_t step = state.at("step").get<int64_t>();
  const Tensor* buffers[] = {&params.values(), &ema.shadow(), &adam.first_moment(), &adam.second_moment()};
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (int b = 0; b < 4; ++b)
    for (const NamedParameter& p : params.entries()) tensors.emplace_back(kPrefixes[b] + p.name, slice_of(*buffers[b], p));
  const std::string weights = weights_name(step);
  save_safetensors((fs::path(run_dir) / weights).string(), tensors,
                   {{"step", std::to_string(step)}, {"adam_steps", std::to_string(adam.steps())}});
  Json full = state;
  full["weights"] = weights;
  full["adam_steps"] = adam.steps();
  write_file_atomically((fs::path(run_dir) / kStateFile).string(), full.dump(2) + "\n");
  // The commit is done; older weight files are now unreferenced.
  for (const auto& entry : fs::directory_iterator(run_dir)) {
    const std::string name = entry.path().filename().string();
    if (name != weights && name.rfind("ckpt-", 0) == 0 && entry.path().extension() == ".safetensors")
      fs::remove(entry.path());
  }
}

Json read_checkpoint_state(const std::string& run_dir) {
  const fs::path path = fs::path(run_dir) / kStateFile;
  std::ifstream in(path);
  DDPM_CHECK(in.good(), "checkpoint: '", path.string(), "' is missing; is '", run_dir,
             "' a run directory written by ddpm train?");
  Json state = Json::parse(in, nullptr, false);
  DDPM_CHECK(!state.is_discarded() && state.is_object() && state.contains("step") && state["step"].is_number_integer() &&
                 state.contains("weights") && state["weights"].is_string() && state.contains("config"),
             "checkpoint: '", path.string(), "' is corrupt (not the JSON state ddpm train writes); ",
             "refusing to use it. Restore it from a backup or start a new run");
  return state;
}

Json load_checkpoint(const std::string& run_dir, const ParameterSet& params, Ema* ema, Adam* adam) {
  Json state = read_checkpoint_state(run_dir);
  const std::string weights = (fs::path(run_dir) / state["weights"].get<std::string>()).string();
  NamedTensors file = load_safetensors(weights);  // throws on truncated or corrupt files
  const int64_t step = state["step"].get<int64_t>();
  auto meta = file.metadata.find("step");
  DDPM_CHECK(meta != file.metadata.end() && meta->second == std::to_string(step), "checkpoint: '", weights,
             "' is for step ", meta == file.metadata.end() ? std::string("?") : meta->second,
             " but checkpoint.json says step ", step, "; the run directory is inconsistent, refusing to resume");
  // Check everything that will be loaded before changing anything; a file may lack the buffers no
  // one asks for (a checkpoint pruned to its weights for sampling or evaluation).
  Tensor none;
  const Tensor* targets[] = {&params.values(), ema ? &ema->shadow() : &none, adam ? &adam->first_moment() : &none,
                             adam ? &adam->second_moment() : &none};
  for (int b = 0; b < 4; ++b)
    for (const NamedParameter& p : params.entries()) {
      if (!targets[b]->defined()) continue;
      const std::string name = kPrefixes[b] + p.name;
      bool found = false;
      for (const auto& [n, t] : file.tensors)
        if (n == name) {
          DDPM_CHECK(t.shape() == p.value.shape(), "checkpoint: '", name, "' has shape ", shape_str(t.shape()),
                     " in '", weights, "' but the model's is ", shape_str(p.value.shape()),
                     "; the checkpoint is from a different model configuration");
          found = true;
        }
      DDPM_CHECK(found, "checkpoint: '", weights, "' has no tensor '", name,
                 "'; it was written for a different model configuration");
    }
  for (int b = 0; b < 4; ++b) {
    if (!targets[b]->defined()) continue;
    for (const NamedParameter& p : params.entries()) copy_into_slice(*targets[b], p, file.at(kPrefixes[b] + p.name));
  }
  if (adam) adam->set_steps(state.value("adam_steps", step));
  return state;
}

}  // namespace ddpm
