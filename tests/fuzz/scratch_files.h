// A private temporary folder per fuzzing process, for parsers that read files by path.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace ddpm::fuzz {

// The folder (created once per process, removed at exit).
const std::string& scratch_dir();
// Writes bytes to scratch_dir()/name and returns the path.
std::string write_scratch(const std::string& name, const uint8_t* data, size_t size);

}  // namespace ddpm::fuzz
