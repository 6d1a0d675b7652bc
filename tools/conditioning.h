// Class-conditional training and sampling in the ddpm program: checking a conditional config
// against its data, the labels a training step feeds the model (with label dropout), the class
// names a run records, and the labels `ddpm sample` draws for sample.class.
#pragma once
#include <string>
#include <vector>

#include "diffusion/guidance.h"
#include "tools/config.h"
#include "tools/typed_config.h"
#include "tools/data/dataset.h"
#include "tools/generate.h"

namespace ddpm {

// A conditional config (model.num_classes > 0) needs labelled data with exactly that many classes
// and train.label_dropout in [0, 1]; throws saying what to change. Unconditional configs pass.
void check_class_conditioning(const Config& config, const ImageSet& data);

// Label dropout draws come from the dropout seed on streams kLabelDropoutStreamTag ^ step, far
// above the layer streams step * 256 + layer that the network's dropout uses.
constexpr uint64_t kLabelDropoutStreamTag = 0x4C44524F00000000ull;  // "LDRO" in the high word

// The labels of data rows `indices`, each replaced by null_label (the "no class" row) when
// philox::uniform(seed, kLabelDropoutStreamTag ^ step, first + i) < p. Addressed like the flips: a
// shard whose row 0 is row `first` of the whole batch drops what the whole batch drops there, and
// a resumed run redraws the same drops from the step number.
std::vector<int> training_labels(const ImageSet& data, const std::vector<int64_t>& indices, double p, int null_label,
                                 uint64_t seed, uint64_t step, uint64_t first);

// model(x_t, t, labels) with dropout drawn from `key`.
LabeledModelFn labeled_model_fn(Denoiser& model, DropoutKey key);

// The class names a conditional run records (the data's, or "0".."K-1" when it names none); empty
// for an unconditional config.
std::vector<std::string> run_class_names(const ModelSection& model, const ImageSet& data);
// The class names recorded in a run's checkpoint state ("classes"); empty for unconditional runs.
std::vector<std::string> class_names_of_run(const Json& state);
// classes.json of a run: {"num_classes", "classes", "null_label"}.
Json classes_json(const std::vector<std::string>& names);

// A class given by name (exact, else ignoring case) or by index, or "none" for the "no class"
// label (names.size()). Throws listing the classes otherwise.
int parse_class(const std::string& spec, const std::vector<std::string>& names);

// Sets o.labels and o.guidance from sample.class and sample.guidance. For a conditional model,
// sample.class "" or "all" draws one grid row per class, ceil(sample.count / classes) samples each
// (o.count is raised to fill the rows; the returned grid width is that row length); a class or
// "none" draws sample.count samples of it. For an unconditional model both keys must be left at
// their defaults. Returns the grid's columns (0 = square).
int choose_sample_classes(const SampleSection& sample, const std::vector<std::string>& names, int num_classes,
                          GenerateOptions& o);

}  // namespace ddpm
