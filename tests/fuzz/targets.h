// Fuzz targets for every parser of outside input: each takes arbitrary bytes, feeds them to the
// parser the program uses, and returns normally when the parser either accepts the input or
// refuses it with ddpm::Error. Anything else (another exception, a crash, a sanitizer report, a
// hang) is a bug. Built as libFuzzer programs by scripts/fuzz.sh (clang, ASan, UBSan); the kept
// corpus and every input that ever crashed are replayed by tests/test_fuzz_corpus.cpp in CI.
#pragma once
#include <cstddef>
#include <cstdint>

namespace ddpm::fuzz {

void safetensors(const uint8_t* data, size_t size);   // parse_safetensors
void checkpoint(const uint8_t* data, size_t size);    // checkpoint.json, then loading its weights
void config(const uint8_t* data, size_t size);        // a JSON config file, validated and built
void idx(const uint8_t* data, size_t size);           // an IDX image file and label file pair
void cifar(const uint8_t* data, size_t size);         // a CIFAR-10 binary batch (gzip or not)
void image_folder(const uint8_t* data, size_t size);  // a folder holding one PNG (stb_image) or JPEG (libjpeg-turbo)

struct Target {
  const char* name;  // also the corpus folder: tests/fuzz/corpus/<name>/
  void (*run)(const uint8_t*, size_t);
};
inline constexpr Target kTargets[] = {{"safetensors", safetensors}, {"checkpoint", checkpoint}, {"config", config},
                                      {"idx", idx},                 {"cifar", cifar},           {"image_folder", image_folder}};

}  // namespace ddpm::fuzz
