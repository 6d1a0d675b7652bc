// The ddpm program's configuration: a JSON document of sections (data, model, diffusion, train,
// sample, eval, classifier) whose every key has a default here. A config file and --set key=value overrides
// are merged over the defaults; an unknown key is an error that lists the valid ones, and a value
// of the wrong type an error that names the expected type.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ddpm {

using Json = nlohmann::json;

// Every key with its default value (and so its type).
const Json& default_config();

// defaults <- file (if non-empty) <- each "section.key=value" override; validated.
// Values of overrides are read as JSON when they parse (numbers, true, [1,2]), else as strings.
Json resolve_config(const std::string& file, const std::vector<std::string>& overrides);
// Merges and validates `overrides` over an already resolved config (used by --resume).
Json apply_overrides(Json config, const std::vector<std::string>& overrides);
// Throws unless every key of `config` exists in the defaults with a compatible type.
void validate_config(const Json& config);

// One line per key, "section.key = value", for --help and `ddpm info`.
std::string describe_defaults();

}  // namespace ddpm
