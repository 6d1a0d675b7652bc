// Reading and writing the safetensors format (https://github.com/huggingface/safetensors):
//   8 bytes   little-endian uint64 N, the header length
//   N bytes   UTF-8 JSON object {"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
//             optional "__metadata__": {string: string}}, possibly padded with trailing spaces
//   the rest  raw little-endian tensor data; offsets are relative to the start of this section,
//             and the tensors must cover it exactly (no gaps, no overlaps, no trailing bytes)
// Supported dtypes: F32, F64, BF16. Loading validates everything and names the file and the
// problem in the error; saving is atomic (a temporary file renamed onto the target).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace ddpm {

struct NamedTensors {
  std::vector<std::pair<std::string, Tensor>> tensors;  // sorted by data offset
  std::map<std::string, std::string> metadata;

  // The tensor called `name`; throws naming the missing key and listing the ones present.
  const Tensor& at(const std::string& name) const;
};

// Writes `tensors` (any device; copied to the host) in the given order. Names must be unique,
// non-empty and not "__metadata__". Writes path + ".tmp", syncs it, then renames it onto path,
// so an interrupted save never leaves a half-written file at `path`.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Reads a file into CPU tensors of the file's dtypes. Throws ddpm::Error on any malformed input.
NamedTensors load_safetensors(const std::string& path);

// The same as load_safetensors for an in-memory file; `source_name` names it in error messages.
NamedTensors parse_safetensors(const std::vector<uint8_t>& bytes, const std::string& source_name);

// Headers larger than this are rejected as corrupt rather than allocated.
constexpr uint64_t kSafetensorsMaxHeaderBytes = 100u * 1000u * 1000u;

}  // namespace ddpm
