// A checkpoint pruned to its weights (scripts/prune_checkpoint.py keeps only "model." tensors)
// loads for inference, and asking it for a buffer it lacks is refused by name, touching nothing.
#include <catch2/catch.hpp>

#include "engine/io/safetensors.h"
#include "models/mlp.h"
#include "tests/cli_runner.h"
#include "tools/checkpoint.h"

using namespace ddpm;

TEST_CASE("checkpoints without EMA and Adam buffers load the weights alone", "[checkpoint]") {
  test::TempDir dir;
  MlpDenoiser model(MlpConfig{2, 2, 8, 1, 8});
  ParameterSet params(model, 3);
  Ema ema(params, 0.9);
  Adam adam(params, AdamConfig{});
  save_checkpoint(dir.path, params, ema, adam, Json{{"step", 5}, {"config", Json::object()}});
  // Keep only the model's tensors, as the pruning script does.
  const std::string weights = dir / read_checkpoint_state(dir.path)["weights"].get<std::string>();
  NamedTensors file = load_safetensors(weights);
  std::vector<std::pair<std::string, Tensor>> kept;
  for (const auto& [name, t] : file.tensors)
    if (name.rfind("model.", 0) == 0) kept.emplace_back(name, t);
  save_safetensors(weights, kept, file.metadata);

  MlpDenoiser fresh_model(MlpConfig{2, 2, 8, 1, 8});
  ParameterSet fresh(fresh_model, 4);  // another seed: different values until loaded
  REQUIRE(fresh.values().to_vector() != params.values().to_vector());
  Ema fresh_ema(fresh, 0.9);
  const std::vector<double> before = fresh.values().to_vector();
  REQUIRE_THROWS_WITH(load_checkpoint(dir.path, fresh, &fresh_ema, nullptr), Catch::Contains("has no tensor 'ema."));
  REQUIRE(fresh.values().to_vector() == before);  // nothing loaded from a refused file
  load_checkpoint(dir.path, fresh, nullptr, nullptr);
  REQUIRE(fresh.values().to_vector() == params.values().to_vector());
}
