// REPLACED AT MERGE: throwing stand-ins so that the h/metrics branch links on its own. The real
// open_inception_network (tools/inception_features.cpp) and open_classifier_network
// (tools/classifier_features.cpp) come from other branches; the coordinator deletes this file.
#include "engine/error.h"
#include "tools/feature_networks.h"

namespace ddpm {

std::unique_ptr<FeatureNetwork> open_classifier_network(const std::string& run_dir, Device) {
  detail::fail("--features classifier:", run_dir, ": this build has no classifier network (stub, replaced at merge)");
}

}  // namespace ddpm
