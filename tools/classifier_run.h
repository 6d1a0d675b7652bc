// What `ddpm classifier train` writes and its readers load: the classifier built from a config,
// a trained run loaded from its directory, and batched inference over a set of images.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "engine/nn/parameters.h"
#include "models/classifier.h"
#include "tools/typed_config.h"
#include "tools/data/dataset.h"

namespace ddpm {

// The value of "kind" in a classifier run's checkpoint.json (DDPM runs have none).
inline const char* const kClassifierRunKind = "classifier";

// The classifier section of `config` for images of `image_shape` {H, W, C} and `classes` classes.
ClassifierConfig classifier_config(const ClassifierSection& section, const Shape& image_shape, int64_t classes);

// Throws unless the set has a label per image; `who` names the command in the message.
void require_labels(const ImageSet& set, const std::string& who);

struct ClassifierRun {
  std::string run_dir;
  Config config;  // the recorded config with --set overrides
  Json state;     // checkpoint.json
  Shape image_shape;    // {H, W, C} the classifier was trained on
  int64_t classes = 0;
  Device device = Device::CPU;
  std::string weights_path;  // the checkpoint's safetensors file
  bool ema = false;          // EMA weights (classifier.use_ema) rather than the final ones
  std::unique_ptr<Classifier> model;
  std::unique_ptr<ParameterSet> params;
};

// Loads the run's checkpoint onto `device` (the weights classifier.use_ema names). Throws with
// the reason on a missing or corrupt run, or on a DDPM run.
ClassifierRun load_classifier_run(const std::string& run_dir, const std::vector<std::string>& overrides,
                                  Device device);
// The same on the device the run's train.device (after overrides) picks.
ClassifierRun load_classifier_run(const std::string& run_dir, const std::vector<std::string>& overrides);

// features [N, D] and logits [N, K] of images [N, H, W, C] (CPU or the run's device, the
// classifier's image shape), float32 on the CPU, computed without gradients in batches of
// `batch` images.
ClassifierOutput classify(const ClassifierRun& run, const Tensor& images, int64_t batch);

// The index of the largest logit of each row of logits [N, K] (CPU).
std::vector<int> predicted_classes(const Tensor& logits);

// Accuracy of the run on a labelled set: {"split", "images", "correct", "accuracy", "loss" (mean
// cross-entropy in nats), "per_class_accuracy" [K], "weights" ("ema" or "final"), "run"}.
Json evaluate_classifier(const ClassifierRun& run, const ImageSet& set, const std::string& split);
}  // namespace ddpm
