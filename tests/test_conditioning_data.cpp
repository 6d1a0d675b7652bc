// Labels through the data pipeline for class-conditional training: image-folder classes, the
// built-in class names, label dropout addressed by (step, position in the whole batch), and the
// checks of a conditional config against its data and of sample.class.
#include <stb/stb_image_write.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "tests/cli_runner.h"
#include "tools/conditioning.h"
#include "tools/data/class_names.h"
#include "tools/data/image_folder.h"

using namespace ddpm;
using Catch::Contains;
namespace fs = std::filesystem;

namespace {
void write_gray(const std::string& path, int w, int h, uint8_t value) {
  const std::vector<uint8_t> pixels(static_cast<size_t>(w * h), value);
  REQUIRE(stbi_write_png(path.c_str(), w, h, 1, pixels.data(), w) != 0);
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

Config conditional_config(int classes, double dropout = 0.1) {
  Json c = default_config();
  c["model"]["num_classes"] = classes;
  c["train"]["label_dropout"] = dropout;
  return parse_config(c);
}

ImageSet labelled(std::vector<int> labels, std::vector<std::string> names) {
  ImageSet set;
  set.images = Tensor::zeros({static_cast<int64_t>(labels.size()), 1, 1, 1});
  set.labels = std::move(labels);
  set.class_names = std::move(names);
  return set;
}
}  // namespace

TEST_CASE("image folder: one class per subfolder, sorted by name; flat folders stay unlabelled", "[conditioning][data]") {
  test::TempDir dir;
  // Created out of order; "b_zebra" sorts after "a_cat"; a hidden folder is skipped.
  fs::create_directories(dir / "b_zebra");
  fs::create_directories(dir / "a_cat");
  fs::create_directories(dir / ".cache");
  write_gray(dir / "b_zebra/2.png", 3, 2, 200);
  write_gray(dir / "b_zebra/1.png", 3, 2, 150);
  write_gray(dir / "a_cat/x.png", 3, 2, 10);
  write_gray(dir / ".cache/junk.png", 5, 5, 0);
  const ImageSet set = load_image_folder(dir.path, 1);
  REQUIRE(set.images.shape() == Shape{3, 2, 3, 1});
  REQUIRE(set.class_names == std::vector<std::string>{"a_cat", "b_zebra"});
  REQUIRE(set.labels == std::vector<int>{0, 1, 1});
  // Class by class, files by name: a_cat/x, b_zebra/1, b_zebra/2.
  REQUIRE(set.images.data<float>()[0] == pixel_from_byte(10));
  REQUIRE(set.images.data<float>()[6] == pixel_from_byte(150));
  REQUIRE(set.images.data<float>()[12] == pixel_from_byte(200));
  REQUIRE_THAT(set.description, Contains("2 classes"));

  // Images at the top: flat and unlabelled, subfolders ignored (as before).
  write_gray(dir / "top.png", 3, 2, 99);
  const ImageSet flat = load_image_folder(dir.path, 1);
  REQUIRE(flat.size() == 1);
  REQUIRE(flat.labels.empty());
  REQUIRE(flat.class_names.empty());

  test::TempDir bad;
  fs::create_directories(bad / "full");
  fs::create_directories(bad / "empty");
  write_gray(bad / "full/a.png", 2, 2, 0);
  REQUIRE_THAT(error_of([&] { load_image_folder(bad.path, 1); }),
               Contains("class folder") && Contains("empty") && Contains("no .png"));
}

TEST_CASE("the built-in data sets' class names", "[conditioning][data]") {
  const auto fashion = builtin_class_names("fashion-mnist");
  REQUIRE(fashion.size() == 10);
  REQUIRE(fashion[0] == "T-shirt/top");
  REQUIRE(fashion[9] == "Ankle boot");
  const auto cifar = builtin_class_names("cifar10");
  REQUIRE(cifar.size() == 10);
  REQUIRE(cifar[0] == "airplane");
  REQUIRE(cifar[9] == "truck");
  REQUIRE(builtin_class_names("mnist")[7] == "7");
  REQUIRE(builtin_class_names("toy").empty());
}

TEST_CASE("label dropout: the same drops for any sharding, any resume, at rate p", "[conditioning][data]") {
  std::vector<int> all_labels;
  for (int i = 0; i < 50; ++i) all_labels.push_back(i % 7);
  const ImageSet data = labelled(all_labels, {});
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < 24; ++i) rows.push_back((i * 13) % 50);
  const uint64_t seed = 42;
  for (uint64_t step : {1, 2, 1000}) {
    const std::vector<int> whole = training_labels(data, rows, 0.3, 7, seed, step, 0);
    for (size_t i = 0; i < rows.size(); ++i)
      REQUIRE((whole[i] == 7 || whole[i] == all_labels[static_cast<size_t>(rows[i])]));
    // Shards of 8 (three ranks) and 12 (two ranks) draw what their rows draw in the whole batch.
    for (const int64_t shard : {8, 12}) {
      std::vector<int> joined;
      for (int64_t first = 0; first < 24; first += shard) {
        const std::vector<int64_t> part(rows.begin() + first, rows.begin() + first + shard);
        const auto mine = training_labels(data, part, 0.3, 7, seed, step, static_cast<uint64_t>(first));
        joined.insert(joined.end(), mine.begin(), mine.end());
      }
      REQUIRE(joined == whole);
    }
    // A resumed run recomputes the step's drops from the step number alone.
    REQUIRE(training_labels(data, rows, 0.3, 7, seed, step, 0) == whole);
  }
  REQUIRE(training_labels(data, rows, 0.3, 7, seed, 1, 0) != training_labels(data, rows, 0.3, 7, seed, 2, 0));
  // The rate: 24 x 2000 draws at p = 0.3 (binomial standard deviation ~0.0021 of the fraction).
  int64_t dropped = 0, total = 0;
  for (uint64_t step = 1; step <= 2000; ++step)
    for (int label : training_labels(data, rows, 0.3, 7, seed, step, 0)) dropped += label == 7, ++total;
  REQUIRE(static_cast<double>(dropped) / static_cast<double>(total) == Approx(0.3).margin(0.01));
  for (int label : training_labels(data, rows, 0.0, 7, seed, 5, 0)) REQUIRE(label != 7);
  for (int label : training_labels(data, rows, 1.0, 7, seed, 5, 0)) REQUIRE(label == 7);
}

TEST_CASE("a conditional config needs labelled data with exactly num_classes classes", "[conditioning][errors]") {
  const ImageSet three = labelled({0, 1, 2, 1}, {"a", "b", "c"});
  REQUIRE_NOTHROW(check_class_conditioning(conditional_config(3), three));
  REQUIRE_NOTHROW(check_class_conditioning(parse_config(default_config()), three));  // unconditional: labels unused
  REQUIRE_THAT(error_of([&] { check_class_conditioning(conditional_config(4), three); }),
               Contains("num_classes is 4") && Contains("3 classes") && Contains("0 a, 1 b, 2 c") &&
                   Contains("model.num_classes=3"));
  ImageSet unlabelled;
  unlabelled.images = Tensor::zeros({2, 1, 1, 2});
  REQUIRE_THAT(error_of([&] { check_class_conditioning(conditional_config(2), unlabelled); }),
               Contains("has no labels") && Contains("one subfolder per class") && Contains("num_classes=0"));
  REQUIRE_THAT(error_of([&] { check_class_conditioning(conditional_config(3, 1.5), three); }),
               Contains("train.label_dropout") && Contains("1.5"));
}

TEST_CASE("sample.class: names, indices, all, none; refused on unconditional runs", "[conditioning][errors]") {
  const std::vector<std::string> names{"T-shirt/top", "Trouser", "Bag"};
  REQUIRE(parse_class("Trouser", names) == 1);
  REQUIRE(parse_class("bag", names) == 2);
  REQUIRE(parse_class("0", names) == 0);
  REQUIRE(parse_class("none", names) == 3);
  REQUIRE_THAT(error_of([&] { parse_class("Sock", names); }),
               Contains("unknown class \"Sock\"") && Contains("0 T-shirt/top, 1 Trouser, 2 Bag") && Contains("all"));
  REQUIRE_THAT(error_of([&] { parse_class("3", names); }), Contains("unknown class \"3\""));

  Config config = conditional_config(3);
  GenerateOptions o;
  o.count = 7;
  REQUIRE(choose_sample_classes(config.sample, names, 3, o) == 3);  // "" = all: rows of ceil(7 / 3)
  REQUIRE(o.count == 9);
  REQUIRE(o.labels == std::vector<int>{0, 0, 0, 1, 1, 1, 2, 2, 2});
  config.sample.class_spec = "Bag";
  config.sample.guidance = 2.5;
  o.count = 4;
  REQUIRE(choose_sample_classes(config.sample, names, 3, o) == 0);
  REQUIRE(o.labels == std::vector<int>{2, 2, 2, 2});
  REQUIRE(o.guidance == 2.5);

  SampleSection plain = parse_config(default_config()).sample;
  GenerateOptions u;
  REQUIRE(choose_sample_classes(plain, {}, 0, u) == 0);
  REQUIRE(u.labels.empty());
  plain.class_spec = "Bag";
  REQUIRE_THAT(error_of([&] { choose_sample_classes(plain, {}, 0, u); }),
               Contains("--class Bag") && Contains("unconditional"));
  plain.class_spec = "";
  plain.guidance = 1.0;
  REQUIRE_THAT(error_of([&] { choose_sample_classes(plain, {}, 0, u); }),
               Contains("--guidance") && Contains("unconditional"));
}
