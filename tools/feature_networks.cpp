#include "tools/feature_networks.h"

#include "engine/error.h"

namespace ddpm {

std::unique_ptr<FeatureNetwork> open_feature_network(const std::string& spec, Device device) {
  const size_t colon = spec.find(':');
  const std::string kind = spec.substr(0, colon), where = colon == std::string::npos ? "" : spec.substr(colon + 1);
  DDPM_CHECK(colon != std::string::npos && !where.empty() && (kind == "inception" || kind == "classifier"),
             "--features: expected inception:FILE (Inception-v3 weights converted by scripts/convert_inception.py) "
             "or classifier:RUN_DIR (a run of `ddpm classifier train`), got '", spec, "'");
  return kind == "inception" ? open_inception_network(where, device) : open_classifier_network(where, device);
}

}  // namespace ddpm
