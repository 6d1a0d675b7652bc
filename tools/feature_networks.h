// The feature networks `ddpm eval --features` can name, opened from their files.
#pragma once
#include <memory>
#include <string>

#include "engine/device.h"
#include "metrics/feature_network.h"

namespace ddpm {

// "inception:FILE" (safetensors written by scripts/convert_inception.py) or "classifier:RUN_DIR"
// (a run of `ddpm classifier train`). Throws with the accepted forms on anything else.
std::unique_ptr<FeatureNetwork> open_feature_network(const std::string& spec, Device device);

// pytorch-fid's Inception-v3: 2048-d pool features and 1008 logits (tools/inception_features.cpp).
std::unique_ptr<FeatureNetwork> open_inception_network(const std::string& weights_file, Device device);
// The classifier's penultimate features and its logits (tools/classifier_features.cpp).
std::unique_ptr<FeatureNetwork> open_classifier_network(const std::string& run_dir, Device device);

}  // namespace ddpm
