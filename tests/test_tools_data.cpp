// The ddpm program's data layer (IDX, CIFAR-10, image folders, toy 2-D sets, batching and
// shuffling) and its PNG output (sample grids, line and scatter charts), on small files written
// here.
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>

#include "engine/philox.h"
#include "tools/data/cifar.h"
#include "tools/data/dataset.h"
#include "tools/data/idx.h"
#include "tools/data/image_folder.h"
#include "tools/data/toy2d.h"
#include "tools/image_io.h"

namespace fs = std::filesystem;
using namespace ddpm;
using Catch::Matchers::Contains;
using Bytes = std::vector<uint8_t>;

namespace {

// A fresh directory under the system temp dir, removed with everything in it at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("ddpm_data_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

void write_file(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

void write_gzip(const std::string& path, const Bytes& bytes) {
  gzFile gz = gzopen(path.c_str(), "wb");
  REQUIRE(gz != nullptr);
  REQUIRE(gzwrite(gz, bytes.data(), static_cast<unsigned>(bytes.size())) ==
          static_cast<int>(bytes.size()));
  REQUIRE(gzclose(gz) == Z_OK);
}

Bytes read_raw(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void put_u32(Bytes& b, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<uint8_t>(v >> shift));
}

// Image i, pixel p has byte (37 i + 11 p) % 256, which includes 0 and 255 for the sizes used here.
uint8_t idx_pixel(int64_t i, int64_t p) { return static_cast<uint8_t>((37 * i + 11 * p) % 256); }

Bytes idx_images(uint32_t n, uint32_t rows, uint32_t cols) {
  Bytes b;
  put_u32(b, 0x00000803);
  put_u32(b, n);
  put_u32(b, rows);
  put_u32(b, cols);
  for (uint32_t i = 0; i < n; ++i)
    for (uint32_t p = 0; p < rows * cols; ++p) b.push_back(idx_pixel(i, p));
  return b;
}

Bytes idx_labels(const std::vector<uint8_t>& labels) {
  Bytes b;
  put_u32(b, 0x00000801);
  put_u32(b, static_cast<uint32_t>(labels.size()));
  b.insert(b.end(), labels.begin(), labels.end());
  return b;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ddpm::Error& e) {
    return e.what();
  }
  return "(no error)";
}

struct StbImage {
  int w = 0, h = 0, channels = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels{nullptr, stbi_image_free};
  uint8_t at(int x, int y, int c) const { return pixels.get()[(y * w + x) * channels + c]; }
};

StbImage decode(const std::string& path) {
  StbImage img;
  img.pixels.reset(stbi_load(path.c_str(), &img.w, &img.h, &img.channels, 0));
  REQUIRE(img.pixels != nullptr);
  return img;
}

int64_t count_color(const StbImage& img, const std::array<uint8_t, 3>& rgb) {
  int64_t count = 0;
  for (int y = 0; y < img.h; ++y)
    for (int x = 0; x < img.w; ++x)
      if (img.at(x, y, 0) == rgb[0] && img.at(x, y, 1) == rgb[1] && img.at(x, y, 2) == rgb[2])
        ++count;
  return count;
}

}  // namespace

// ---- IDX ---------------------------------------------------------------------------------------

TEST_CASE("IDX reader: plain and gzipped files give NHWC images in [-1, 1] and labels", "[data]") {
  TempDir dir;
  // train: plain images, gzipped labels; test: gzipped images, plain labels.
  write_file(dir / "train-images-idx3-ubyte", idx_images(3, 4, 5));
  write_gzip(dir / "train-labels-idx1-ubyte.gz", idx_labels({7, 0, 9}));
  write_gzip(dir / "t10k-images-idx3-ubyte.gz", idx_images(2, 4, 5));
  write_file(dir / "t10k-labels-idx1-ubyte", idx_labels({1, 2}));

  for (const std::string split : {"train", "test"}) {
    ImageSet set = load_idx_dataset(dir.path.string(), split);
    const int64_t n = split == "train" ? 3 : 2;
    REQUIRE(set.images.shape() == Shape{n, 4, 5, 1});
    REQUIRE(set.labels == (split == "train" ? std::vector<int>{7, 0, 9} : std::vector<int>{1, 2}));
    const float* px = set.images.data<float>();
    for (int64_t i = 0; i < n; ++i)
      for (int64_t p = 0; p < 20; ++p)
        REQUIRE(px[i * 20 + p] == static_cast<float>(idx_pixel(i, p) / 255.0 * 2.0 - 1.0));
    REQUIRE_THAT(set.description, Contains(split));
  }
  // The mapping's end points are exact.
  REQUIRE(pixel_from_byte(0) == -1.0f);
  REQUIRE(pixel_from_byte(255) == 1.0f);
  REQUIRE(pixel_from_byte(51) == Approx(-0.6f));
}

TEST_CASE("IDX reader: missing directories and files say what to do", "[data]") {
  TempDir dir;
  const std::string missing = dir / "nowhere";
  std::string message = error_of([&] { load_idx_dataset(missing, "train"); });
  REQUIRE_THAT(message, Contains(missing));
  REQUIRE_THAT(message, Contains("train-images-idx3-ubyte"));

  // A directory with only the training files: asking for the test split names the missing file.
  write_file(dir / "train-images-idx3-ubyte", idx_images(1, 2, 2));
  write_file(dir / "train-labels-idx1-ubyte", idx_labels({1}));
  message = error_of([&] { load_idx_dataset(dir.path.string(), "test"); });
  REQUIRE_THAT(message, Contains(dir / "t10k-images-idx3-ubyte"));
  REQUIRE_THAT(message, Contains("t10k-labels-idx1-ubyte"));

  // The default directory's advice is the Debian package (trailing slashes do not matter).
  for (const std::string& d : {std::string(kDefaultIdxDir), std::string(kDefaultIdxDir) + "/"})
    REQUIRE_THAT(idx_missing_help(d),
                 Contains("install the Debian package dataset-fashion-mnist") &&
                     Contains("apt-get install dataset-fashion-mnist"));
  REQUIRE_THAT(idx_missing_help(missing), !Contains("dataset-fashion-mnist"));

  REQUIRE_THAT(error_of([&] { load_idx_dataset(dir.path.string(), "validation"); }),
               Contains("valid splits are train, test"));
}

TEST_CASE("IDX reader: truncated files, wrong magic numbers and count mismatches", "[data]") {
  TempDir dir;
  const std::string images = dir / "images", labels = dir / "labels";
  write_file(labels, idx_labels({1, 2, 3}));

  SECTION("truncated pixel data") {
    Bytes b = idx_images(3, 4, 5);
    b.resize(b.size() - 7);
    write_file(images, b);
    const std::string message = error_of([&] { read_idx_pair(images, labels); });
    REQUIRE_THAT(message, Contains(images) && Contains("truncated") && Contains("60 data bytes") &&
                              Contains("only 53"));
  }
  SECTION("truncated header") {
    write_file(images, Bytes{0, 0, 8, 3, 0, 0});
    REQUIRE_THAT(error_of([&] { read_idx_pair(images, labels); }),
                 Contains(images) && Contains("truncated"));
  }
  SECTION("truncated gzip stream") {
    write_gzip(images + ".full", idx_images(3, 40, 50));
    Bytes gz = read_raw(images + ".full");
    gz.resize(gz.size() / 2);
    write_file(images, gz);
    REQUIRE_THAT(error_of([&] { read_idx_pair(images, labels); }),
                 Contains(images) && Contains("corrupt or truncated"));
  }
  SECTION("trailing bytes") {
    Bytes b = idx_images(3, 4, 5);
    b.push_back(0);
    write_file(images, b);
    REQUIRE_THAT(error_of([&] { read_idx_pair(images, labels); }), Contains("1 bytes after"));
  }
  SECTION("wrong magic: files swapped") {
    write_file(images, idx_images(3, 4, 5));
    const std::string message = error_of([&] { read_idx_pair(labels, images); });
    REQUIRE_THAT(message,
                 Contains("magic number 0x00000801, expected 0x00000803") && Contains("swapped"));
  }
  SECTION("wrong magic: not IDX at all") {
    write_file(images, Bytes{'P', 'K', 3, 4, 0, 0, 0, 0});
    REQUIRE_THAT(error_of([&] { read_idx_pair(images, labels); }),
                 Contains("0x504b0304") && Contains("not an IDX"));
  }
  SECTION("image and label counts differ") {
    write_file(images, idx_images(4, 4, 5));
    const std::string message = error_of([&] { read_idx_pair(images, labels); });
    REQUIRE_THAT(message, Contains("4 images") && Contains("3 labels"));
  }
}

TEST_CASE("IDX reader: the installed Fashion-MNIST (dataset-fashion-mnist)", "[data]") {
  // Not optional: scripts/setup.sh installs the package, and its absence must be visible.
  ImageSet train, test;
  try {
    train = load_idx_dataset(kDefaultIdxDir, "train");
    test = load_idx_dataset(kDefaultIdxDir, "test");
  } catch (const ddpm::Error& e) {
    FAIL(e.what());
  }
  REQUIRE(train.images.shape() == Shape{60000, 28, 28, 1});
  REQUIRE(test.images.shape() == Shape{10000, 28, 28, 1});
  for (const ImageSet* set : {&train, &test}) {
    const float* px = set->images.data<float>();
    const auto [lo, hi] = std::minmax_element(px, px + set->images.numel());
    REQUIRE(*lo == -1.0f);
    REQUIRE(*hi == 1.0f);
    // Fashion-MNIST is balanced: 6000 (train) or 1000 (test) images of each of the 10 classes.
    std::vector<int> per_class(10, 0);
    for (int label : set->labels) {
      REQUIRE((label >= 0 && label < 10));
      ++per_class[static_cast<size_t>(label)];
    }
    for (int count : per_class) REQUIRE(count == set->size() / 10);
  }
}

// ---- CIFAR-10
// ------------------------------------------------------------------------------------

TEST_CASE("CIFAR-10 reader: planar CHW records become NHWC pixels", "[data]") {
  TempDir dir;
  auto byte_at = [](int record, int c, int p) {
    return static_cast<uint8_t>((record * 7 + c * 50 + p) % 256);
  };
  Bytes file;
  for (int record = 0; record < 2; ++record) {
    file.push_back(static_cast<uint8_t>(record + 3));  // label
    for (int c = 0; c < 3; ++c)
      for (int p = 0; p < 1024; ++p) file.push_back(byte_at(record, c, p));
  }
  // The unpacked tarball's layout: <dir>/cifar-10-batches-bin/test_batch.bin.
  fs::create_directories(dir.path / "cifar-10-batches-bin");
  write_file((dir.path / "cifar-10-batches-bin" / "test_batch.bin").string(), file);

  ImageSet set = load_cifar10(dir.path.string(), "test");
  REQUIRE(set.images.shape() == Shape{2, 32, 32, 3});
  REQUIRE(set.labels == std::vector<int>{3, 4});
  const float* px = set.images.data<float>();
  for (int record = 0; record < 2; ++record)
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x)
        for (int c = 0; c < 3; ++c)
          REQUIRE(px[((record * 32 + y) * 32 + x) * 3 + c] ==
                  pixel_from_byte(byte_at(record, c, y * 32 + x)));

  SECTION("a size that is not a whole number of records") {
    Bytes cut(file.begin(), file.end() - 5);
    write_file(dir / "bad.bin", cut);
    REQUIRE_THAT(error_of([&] { read_cifar10_files({dir / "bad.bin"}); }),
                 Contains(dir / "bad.bin") && Contains("3073"));
  }
  SECTION("missing training batches") {
    REQUIRE_THAT(error_of([&] { load_cifar10(dir.path.string(), "train"); }),
                 Contains("data_batch_1.bin") && Contains("does not exist"));
  }
}

// ---- image folders
// -------------------------------------------------------------------------------

TEST_CASE("image folder: sorted PNGs of one size; mismatched sizes and empty folders fail",
          "[data]") {
  TempDir dir;
  auto rgb = [](int image, int x, int y, int c) {
    return static_cast<uint8_t>(image * 100 + x * 20 + y * 7 + c);
  };
  for (int image : {1, 0}) {  // written out of order: loading sorts by name
    Bytes pixels;
    for (int y = 0; y < 3; ++y)
      for (int x = 0; x < 4; ++x)
        for (int c = 0; c < 3; ++c) pixels.push_back(rgb(image, x, y, c));
    const std::string name = dir / (std::string(image ? "b" : "a") + ".png");
    REQUIRE(stbi_write_png(name.c_str(), 4, 3, 3, pixels.data(), 12) != 0);
  }
  write_file(dir / "notes.txt", Bytes{'h', 'i'});  // not an image: ignored

  ImageSet set = load_image_folder(dir.path.string(), 3);
  REQUIRE(set.images.shape() == Shape{2, 3, 4, 3});
  REQUIRE(set.labels.empty());
  const float* px = set.images.data<float>();
  for (int image = 0; image < 2; ++image)
    for (int y = 0; y < 3; ++y)
      for (int x = 0; x < 4; ++x)
        for (int c = 0; c < 3; ++c)
          REQUIRE(px[((image * 3 + y) * 4 + x) * 3 + c] == pixel_from_byte(rgb(image, x, y, c)));
  REQUIRE(load_image_folder(dir.path.string(), 1).images.shape() == Shape{2, 3, 4, 1});

  const Bytes wide(5 * 3 * 3, 128);
  REQUIRE(stbi_write_png((dir / "c.png").c_str(), 5, 3, 3, wide.data(), 15) != 0);
  REQUIRE_THAT(
      error_of([&] { load_image_folder(dir.path.string(), 3); }),
      Contains(dir / "c.png") && Contains("5x3") && Contains("4x3") && Contains("same size"));

  TempDir empty;
  REQUIRE_THAT(error_of([&] { load_image_folder(empty.path.string(), 3); }),
               Contains(empty.path.string()) && Contains("no .png"));
  REQUIRE_THAT(error_of([&] { load_image_folder(dir.path.string(), 2); }),
               Contains("1 (gray) or 3"));
}

// ---- toy 2-D sets
// --------------------------------------------------------------------------------

TEST_CASE("toy 2-D sets: shape, range, determinism and names", "[data]") {
  for (const std::string& name : toy2d_names()) {
    INFO(name);
    ImageSet set = make_toy2d(name, 2000, 42);
    REQUIRE(set.images.shape() == Shape{2000, 1, 1, 2});
    const std::vector<double> v = set.images.to_vector();
    for (double x : v) REQUIRE(std::fabs(x) < 1.1);
    REQUIRE(*std::max_element(v.begin(), v.end()) > 0.5);  // spread out, not collapsed
    REQUIRE(*std::min_element(v.begin(), v.end()) < -0.5);
    REQUIRE(make_toy2d(name, 2000, 42).images.to_vector() == v);
    REQUIRE(make_toy2d(name, 2000, 43).images.to_vector() != v);
    // A smaller draw is a prefix of a larger one.
    const std::vector<double> prefix = make_toy2d(name, 10, 42).images.to_vector();
    REQUIRE(std::equal(prefix.begin(), prefix.end(), v.begin()));
    REQUIRE((set.labels.empty() || set.labels.size() == 2000));
  }
  // 8 Gaussians: each point sits near its mode on the circle of radius 0.8.
  ImageSet g = make_toy2d("8gaussians", 1000, 7);
  const float* xy = g.images.data<float>();
  std::vector<int> per_mode(8, 0);
  for (int64_t i = 0; i < 1000; ++i) {
    const int mode = g.labels[static_cast<size_t>(i)];
    ++per_mode[static_cast<size_t>(mode)];
    const double cx = 0.8 * std::cos(mode * M_PI / 4), cy = 0.8 * std::sin(mode * M_PI / 4);
    REQUIRE(std::hypot(xy[2 * i] - cx, xy[2 * i + 1] - cy) < 0.25);
  }
  for (int count : per_mode) REQUIRE(count > 80);
  // Checkerboard: every point lies in a cell whose column and row have the same parity.
  ImageSet board = make_toy2d("checkerboard", 1000, 7);
  const float* b = board.images.data<float>();
  for (int64_t i = 0; i < 1000; ++i) {
    const int column = static_cast<int>(std::floor((b[2 * i] + 1) * 2));
    const int row = static_cast<int>(std::floor((b[2 * i + 1] + 1) * 2));
    REQUIRE((column + row) % 2 == 0);
  }

  REQUIRE_THAT(error_of([] { make_toy2d("moons", 10, 0); }),
               Contains("moons") && Contains("swissroll, 8gaussians, checkerboard"));
  REQUIRE_THAT(error_of([] { make_toy2d("swissroll", 0, 0); }), Contains("positive"));
}

// ---- batching and shuffling ---------------------------------------------------------------------

TEST_CASE("gather_batch copies the chosen images and mirrors the ones Philox picks", "[data]") {
  const int64_t n = 3, h = 2, w = 3, c = 2;
  std::vector<float> values(static_cast<size_t>(n * h * w * c));
  std::iota(values.begin(), values.end(), 0.0f);
  ImageSet set{Tensor::from_vector(values, {n, h, w, c}), {}, "counting"};
  auto source = [&](int64_t i, int64_t y, int64_t x, int64_t ch) {
    return values[static_cast<size_t>(((i * h + y) * w + x) * c + ch)];
  };

  const std::vector<int64_t> plain_indices = {2, 0, 2};
  Tensor plain = gather_batch(set, plain_indices, false, 1, 2);
  REQUIRE(plain.shape() == Shape{3, h, w, c});
  for (int64_t b = 0; b < 3; ++b)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        for (int64_t ch = 0; ch < c; ++ch)
          REQUIRE(plain.data<float>()[((b * h + y) * w + x) * c + ch] ==
                  source(plain_indices[static_cast<size_t>(b)], y, x, ch));

  const uint64_t seed = 1234, stream = 5;
  std::vector<int64_t> indices(32);
  for (size_t i = 0; i < indices.size(); ++i) indices[i] = static_cast<int64_t>(i % 3);
  Tensor flipped = gather_batch(set, indices, true, seed, stream);
  int mirrored = 0;
  for (int64_t b = 0; b < 32; ++b) {
    const bool flip = philox::uniform(seed, stream, static_cast<uint64_t>(b)) < 0.5f;
    mirrored += flip;
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        for (int64_t ch = 0; ch < c; ++ch)
          REQUIRE(flipped.data<float>()[((b * h + y) * w + x) * c + ch] ==
                  source(indices[static_cast<size_t>(b)], y, flip ? w - 1 - x : x, ch));
  }
  REQUIRE((mirrored > 0 && mirrored < 32));  // both cases were exercised

  REQUIRE_THAT(error_of([&] {
                 gather_batch(set, {0, 3}, false, 0, 0);
               }),
               Contains("index 3") && Contains("3 images"));
}

TEST_CASE("epoch_permutation is a deterministic permutation that changes every epoch", "[data]") {
  const std::vector<int64_t> p = epoch_permutation(1000, 99, 3);
  std::vector<int64_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> identity(1000);
  std::iota(identity.begin(), identity.end(), int64_t{0});
  REQUIRE(sorted == identity);
  REQUIRE(p != identity);
  REQUIRE(epoch_permutation(1000, 99, 3) == p);  // recomputable from (seed, epoch)
  REQUIRE(epoch_permutation(1000, 99, 4) != p);
  REQUIRE(epoch_permutation(1000, 98, 3) != p);
  REQUIRE(epoch_permutation(0, 1, 1).empty());
  REQUIRE(epoch_permutation(1, 1, 1) == std::vector<int64_t>{0});
  // Every position receives every element about equally often over many epochs.
  std::vector<int> first(10, 0);
  for (uint64_t epoch = 0; epoch < 2000; ++epoch)
    ++first[static_cast<size_t>(epoch_permutation(10, 5, epoch)[0])];
  for (int count : first) REQUIRE((count > 140 && count < 260));
}

// ---- PNG output
// -----------------------------------------------------------------------------------

TEST_CASE("write_png_grid tiles images with padding and maps [-1, 1] to 0..255", "[data]") {
  TempDir dir;
  // Three 2x2 RGB images; image i pixel (x, y) channel c has a known value; a few out of range.
  const int64_t n = 3, s = 2;
  std::vector<float> values;
  auto value = [](int64_t i, int64_t y, int64_t x, int64_t c) {
    return -1.0f + 0.25f * static_cast<float>(i + y + 2 * x) + 0.1f * static_cast<float>(c);
  };
  for (int64_t i = 0; i < n; ++i)
    for (int64_t y = 0; y < s; ++y)
      for (int64_t x = 0; x < s; ++x)
        for (int64_t c = 0; c < 3; ++c) values.push_back(value(i, y, x, c));
  values[0] = -7.0f;  // clamps to 0
  values[1] = 3.0f;   // clamps to 255
  const std::string path = dir / "grid.png";
  write_png_grid(path, Tensor::from_vector(values, {n, s, s, 3}), 2, 1);
  REQUIRE(!fs::exists(path + ".tmp"));

  StbImage img = decode(path);
  REQUIRE(img.w == 1 + 2 * (s + 1));
  REQUIRE(img.h == 1 + 2 * (s + 1));
  REQUIRE(img.channels == 3);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t y = 0; y < s; ++y)
      for (int64_t x = 0; x < s; ++x)
        for (int64_t c = 0; c < 3; ++c) {
          const int gx = static_cast<int>(1 + (i % 2) * (s + 1) + x),
                    gy = static_cast<int>(1 + (i / 2) * (s + 1) + y);
          REQUIRE(img.at(gx, gy, static_cast<int>(c)) ==
                  byte_from_pixel(values[static_cast<size_t>(((i * s + y) * s + x) * 3 + c)]));
        }
  REQUIRE(img.at(1, 1, 0) == 0);
  REQUIRE(img.at(1, 1, 1) == 255);
  REQUIRE(img.at(0, 0, 0) == 0);  // padding
  REQUIRE(img.at(6, 6, 1) == 0);  // the empty fourth cell
  for (int b = 0; b < 256; ++b)
    REQUIRE(byte_from_pixel(pixel_from_byte(static_cast<uint8_t>(b))) == b);

  // Gray images give a 1-channel PNG.
  const std::string gray = dir / "gray.png";
  write_png_grid(gray, Tensor::from_vector(std::vector<float>{-1, 0, 1, 0.5f}, {1, 2, 2, 1}), 1, 0);
  StbImage g = decode(gray);
  REQUIRE((g.w == 2 && g.h == 2 && g.channels == 1));
  REQUIRE(
      (g.at(0, 0, 0) == 0 && g.at(1, 0, 0) == 128 && g.at(0, 1, 0) == 255 && g.at(1, 1, 0) == 191));

  const std::string bad = dir / "no_such_dir/grid.png";
  REQUIRE_THAT(error_of([&] {
                 write_png_grid(bad, Tensor::zeros({1, 2, 2, 3}), 1);
               }),
               Contains(bad));
  REQUIRE_THAT(error_of([&] {
                 write_png_grid(path, Tensor::zeros({1, 2, 2, 2}), 1);
               }),
               Contains("C = 1 or 3"));
}

TEST_CASE("write_line_plot and write_points_plot draw the series in their colours", "[data]") {
  TempDir dir;
  Series loss{{}, {}, "loss"}, ema{{}, {}, "ema loss"};
  for (int i = 0; i <= 200; ++i) {
    loss.x.push_back(i * 50);
    loss.y.push_back(0.05 + 1.0 / (1.0 + i) + 0.02 * std::sin(i));
    ema.x.push_back(i * 50);
    ema.y.push_back(0.05 + 1.0 / (1.0 + i));
  }
  for (bool log_y : {false, true}) {
    const std::string path = dir / (log_y ? "log.png" : "linear.png");
    write_line_plot(path, {loss, ema}, "Training loss", "step", "loss (mse)", log_y);
    StbImage img = decode(path);
    REQUIRE((img.w == kLinePlotWidth && img.h == kLinePlotHeight && img.channels == 3));
    REQUIRE(count_color(img, plot_series_color(0)) > 200);
    REQUIRE(count_color(img, plot_series_color(1)) > 200);
    REQUIRE(count_color(img, {255, 255, 255}) > img.w * img.h / 2);  // mostly background
    REQUIRE(count_color(img, {30, 30, 30}) > 500);                   // axes and text
  }
  // Few points get markers; a gap (zero on a log axis) is skipped, not an error.
  Series terms{{0, 1, 2, 3}, {2.0, 0.0, 0.5, 0.01}, "L_t"};
  write_line_plot(dir / "terms.png", {terms}, "bits/dim", "t", "bits", true);
  REQUIRE(count_color(decode(dir / "terms.png"), plot_series_color(0)) > 50);
  REQUIRE_THAT(error_of([&] {
                 write_line_plot(dir / "x.png", {Series{{1, 2}, {1}, "bad"}}, "", "", "");
               }),
               Contains("'bad'") && Contains("2 x values but 1 y values"));
  // Degenerate input still gives a chart: a single point, and a series with nothing plottable.
  write_line_plot(dir / "one.png", {Series{{5}, {0.3}, "one"}, Series{{1, 2}, {NAN, NAN}, "none"}},
                  "degenerate", "x", "y", true);
  REQUIRE(count_color(decode(dir / "one.png"), plot_series_color(0)) >= 25);  // the 5x5 marker

  ImageSet toy = make_toy2d("8gaussians", 500, 1);
  const std::string points = dir / "points.png";
  write_points_plot(points,
                    {points_series(toy.images, "data"),
                     points_series(make_toy2d("checkerboard", 500, 1).images, "samples")},
                    "8 gaussians");
  StbImage img = decode(points);
  REQUIRE((img.w == kPointsPlotSize && img.h == kPointsPlotSize));
  REQUIRE(count_color(img, plot_series_color(0)) > 500);
  REQUIRE(count_color(img, plot_series_color(1)) > 500);
}
