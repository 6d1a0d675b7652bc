// safetensors reading and writing: round trips, the exact byte layout, and one test per way a
// file can be malformed, each checking that the error says what went wrong.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "engine/io/safetensors.h"
#include "engine/tensor.h"

namespace fs = std::filesystem;
using Catch::Contains;
using ddpm::DType;
using ddpm::Tensor;

namespace {

// A fresh directory per test case, removed (with its contents) when the case ends.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
    path_ = fs::temp_directory_path() /
            ("ddpm_safetensors_" + std::to_string(::getpid()) + "_" + std::to_string(stamp) + "_" +
             std::to_string(rd()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ignored);
    fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

std::vector<uint8_t> tensor_bytes(const Tensor& t) {
  const auto* p = static_cast<const uint8_t*>(t.numel() > 0 ? t.raw() : nullptr);
  return p ? std::vector<uint8_t>(p, p + t.nbytes()) : std::vector<uint8_t>{};
}

// A file built by hand: the length field, `header` verbatim, then `data_bytes` bytes of data.
std::vector<uint8_t> hand_made(const std::string& header, size_t data_bytes, uint64_t claimed_length) {
  std::vector<uint8_t> bytes;
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<uint8_t>(claimed_length >> (8 * i)));
  bytes.insert(bytes.end(), header.begin(), header.end());
  for (size_t i = 0; i < data_bytes; ++i) bytes.push_back(static_cast<uint8_t>(i));
  return bytes;
}
std::vector<uint8_t> hand_made(const std::string& header, size_t data_bytes) {
  return hand_made(header, data_bytes, header.size());
}

ddpm::NamedTensors parse(const std::vector<uint8_t>& bytes) {
  return ddpm::parse_safetensors(bytes, "handmade.safetensors");
}

}  // namespace

TEST_CASE("safetensors round trip keeps dtypes, shapes, bytes and order", "[safetensors]") {
  TempDir dir;
  const std::vector<ddpm::Shape> shapes = {{}, {0}, {3}, {2, 3}, {2, 0, 4}, {2, 3, 4, 5}};
  std::vector<std::pair<std::string, Tensor>> tensors;
  uint64_t stream = 0;
  for (DType dtype : {DType::F32, DType::F64, DType::BF16}) {
    for (const ddpm::Shape& shape : shapes) {
      // Names deliberately not in alphabetical order, so order preservation is tested.
      const std::string name = "t" + std::to_string(99 - stream) + "." + ddpm::dtype_name(dtype);
      // The CPU draws only float32/float64; bfloat16 comes from rounding a float32 draw.
      const DType draw = dtype == DType::BF16 ? DType::F32 : dtype;
      tensors.emplace_back(name, Tensor::normal(shape, 7, stream++, 0.0, 1.0, draw).to(dtype));
    }
  }
  const std::string path = dir.file("round.safetensors");
  ddpm::save_safetensors(path, tensors);
  REQUIRE(!fs::exists(path + ".tmp"));

  const ddpm::NamedTensors loaded = ddpm::load_safetensors(path);
  REQUIRE(loaded.metadata.empty());
  REQUIRE(loaded.tensors.size() == tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    INFO("tensor " << tensors[i].first);
    const Tensor& got = loaded.tensors[i].second;
    REQUIRE(loaded.tensors[i].first == tensors[i].first);
    REQUIRE(got.dtype() == tensors[i].second.dtype());
    REQUIRE(got.shape() == tensors[i].second.shape());
    REQUIRE(got.device() == ddpm::Device::CPU);
    REQUIRE(tensor_bytes(got) == tensor_bytes(tensors[i].second));
    REQUIRE(loaded.at(tensors[i].first).same(got));
  }

  // The in-memory parser reads the same file to the same result.
  const ddpm::NamedTensors parsed = ddpm::parse_safetensors(read_bytes(path), path);
  REQUIRE(parsed.tensors.size() == loaded.tensors.size());
  for (size_t i = 0; i < parsed.tensors.size(); ++i)
    REQUIRE(tensor_bytes(parsed.tensors[i].second) == tensor_bytes(loaded.tensors[i].second));
}

TEST_CASE("safetensors metadata round trips and saving overwrites an existing file", "[safetensors]") {
  TempDir dir;
  const std::string path = dir.file("meta.safetensors");
  const std::map<std::string, std::string> metadata = {
      {"format", "pt"}, {"step", "1200"}, {"empty", ""}, {"unicode", "\xce\xb2_t schedule"}};
  ddpm::save_safetensors(path, {{"w", Tensor::ones({2, 2})}}, {{"old", "yes"}});
  ddpm::save_safetensors(path, {{"w", Tensor::full({2, 2}, 3.0)}}, metadata);
  const ddpm::NamedTensors loaded = ddpm::load_safetensors(path);
  REQUIRE(loaded.metadata == metadata);
  REQUIRE(loaded.at("w").to_vector() == std::vector<double>{3, 3, 3, 3});
}

TEST_CASE("safetensors byte layout matches the format for a tiny tensor", "[safetensors]") {
  TempDir dir;
  const std::string path = dir.file("tiny.safetensors");
  ddpm::save_safetensors(path, {{"a", Tensor::from_vector(std::vector<float>{1.0f, 2.0f}, {2})}});
  const std::vector<uint8_t> bytes = read_bytes(path);
  REQUIRE(bytes.size() >= 16);

  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[static_cast<size_t>(i)];
  REQUIRE(bytes.size() == 8 + n + 8);
  REQUIRE((8 + n) % 8 == 0);  // the data section is 8-byte aligned

  const std::string header(bytes.begin() + 8, bytes.begin() + 8 + static_cast<long>(n));
  REQUIRE(header.find_last_not_of(' ') + 1 >= header.size() - 7);  // at most 7 padding spaces
  const nlohmann::json expected = {{"a", {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {0, 8}}}}};
  REQUIRE(nlohmann::json::parse(header) == expected);

  const float want[2] = {1.0f, 2.0f};
  REQUIRE(std::memcmp(bytes.data() + bytes.size() - 8, want, 8) == 0);
  // And spelled out, independently of the host: 1.0f = 0x3f800000, 2.0f = 0x40000000, little-endian.
  const std::vector<uint8_t> tail(bytes.end() - 8, bytes.end());
  REQUIRE(tail == std::vector<uint8_t>{0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40});
}

TEST_CASE("safetensors reads a hand-made file with metadata and sorts by offset", "[safetensors]") {
  // "b" comes first in the header but second in the data.
  const std::string header =
      R"({"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]},)"
      R"("__metadata__":{"k":"v"},"a":{"dtype":"F64","shape":[],"data_offsets":[0,8]}})";
  const ddpm::NamedTensors t = parse(hand_made(header, 12));
  REQUIRE(t.tensors.size() == 2);
  REQUIRE(t.tensors[0].first == "a");
  REQUIRE(t.tensors[1].first == "b");
  REQUIRE(t.at("a").shape().empty());
  REQUIRE(t.at("b").dtype() == DType::BF16);
  REQUIRE(t.metadata.at("k") == "v");
  REQUIRE_THROWS_WITH(t.at("c"), Contains("no tensor named 'c'") && Contains("'a', 'b'"));
}

TEST_CASE("safetensors rejects truncated files", "[safetensors]") {
  const std::string ok = R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})";
  SECTION("shorter than the length field") {
    REQUIRE_THROWS_WITH(parse({1, 2, 3}), Contains("handmade.safetensors") && Contains("truncated") &&
                                              Contains("found 3"));
  }
  SECTION("header runs past the end of the file") {
    REQUIRE_THROWS_WITH(parse(hand_made(ok, 0, 1000)), Contains("truncated") && Contains("1000"));
  }
  SECTION("tensor data runs past the end of the file") {
    REQUIRE_THROWS_WITH(parse(hand_made(ok, 10)), Contains("truncated") && Contains("tensor 'a'") &&
                                                      Contains("use an earlier checkpoint"));
  }
  SECTION("a saved file cut short on disk") {
    TempDir dir;
    const std::string path = dir.file("cut.safetensors");
    ddpm::save_safetensors(path, {{"x", Tensor::ones({64})}});
    fs::resize_file(path, fs::file_size(path) - 5);
    REQUIRE_THROWS_WITH(ddpm::load_safetensors(path), Contains(path) && Contains("truncated"));
  }
}

TEST_CASE("safetensors rejects an oversized header length", "[safetensors]") {
  const std::vector<uint8_t> bytes = hand_made("{}", 0, 200u * 1000u * 1000u);
  REQUIRE_THROWS_WITH(parse(bytes), Contains("oversized"));
  // The file loader checks the length before allocating or reading anything.
  TempDir dir;
  const std::string path = dir.file("huge_header.safetensors");
  write_bytes(path, bytes);
  REQUIRE_THROWS_WITH(ddpm::load_safetensors(path), Contains(path) && Contains("oversized"));
}

TEST_CASE("safetensors rejects headers that are not a JSON object", "[safetensors]") {
  REQUIRE_THROWS_WITH(parse(hand_made(R"({"a": {"dtype": )", 0)), Contains("not valid JSON"));
  REQUIRE_THROWS_WITH(parse(hand_made("[1, 2]", 0)), Contains("must be a JSON object"));
  REQUIRE_THROWS_WITH(parse(hand_made(R"({"a": 3})", 0)), Contains("tensor 'a' must be a JSON object"));
}

TEST_CASE("safetensors rejects entries with missing or mistyped fields", "[safetensors]") {
  REQUIRE_THROWS_WITH(parse(hand_made(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", 4)),
                      Contains("no \"dtype\" field"));
  REQUIRE_THROWS_WITH(parse(hand_made(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", 4)),
                      Contains("no \"shape\" field"));
  REQUIRE_THROWS_WITH(parse(hand_made(R"({"a":{"dtype":"F32","shape":[1]}})", 4)),
                      Contains("no \"data_offsets\" field"));
  REQUIRE_THROWS_WITH(parse(hand_made(R"({"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", 4)),
                      Contains("\"dtype\" must be a string"));
  REQUIRE_THROWS_WITH(parse(hand_made(R"({"a":{"dtype":"F32","shape":"1","data_offsets":[0,4]}})", 4)),
                      Contains("\"shape\" must be an array"));
  REQUIRE_THROWS_WITH(parse(hand_made(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4]}})", 4)),
                      Contains("must be [begin, end]"));
  REQUIRE_THROWS_WITH(parse(hand_made(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,"4"]}})", 4)),
                      Contains("data_offsets end is not a number"));
  REQUIRE_THROWS_WITH(parse(hand_made(R"({"__metadata__":{"k":1}})", 0)),
                      Contains("metadata value for 'k' must be a string"));
}

TEST_CASE("safetensors rejects unknown dtypes and bad shapes", "[safetensors]") {
  REQUIRE_THROWS_WITH(parse(hand_made(R"({"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", 4)),
                      Contains("unknown dtype \"F16\"") && Contains("F32, F64 and BF16"));
  REQUIRE_THROWS_WITH(parse(hand_made(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4)),
                      Contains("shape dimension is negative"));
  REQUIRE_THROWS_WITH(parse(hand_made(R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4)),
                      Contains("shape dimension is not an integer"));
  REQUIRE_THROWS_WITH(parse(hand_made(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", 4)),
                      Contains("begin after end"));
}

TEST_CASE("safetensors rejects inconsistent and overlapping data layouts", "[safetensors]") {
  SECTION("byte length does not match the shape") {
    REQUIRE_THROWS_WITH(parse(hand_made(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8)),
                        Contains("inconsistent tensor 'a'") && Contains("needs 12 bytes"));
  }
  SECTION("a shape too large to count") {
    const std::string h =
        R"({"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}})";
    REQUIRE_THROWS_WITH(parse(hand_made(h, 8)), Contains("inconsistent") && Contains("more than 2^64"));
  }
  SECTION("two tensors overlap") {
    const std::string h = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                          R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
    REQUIRE_THROWS_WITH(parse(hand_made(h, 12)), Contains("overlapping") && Contains("'a'") && Contains("'b'"));
  }
  SECTION("a gap between tensors") {
    const std::string h = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                          R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";
    REQUIRE_THROWS_WITH(parse(hand_made(h, 12)), Contains("inconsistent") && Contains("belong to no tensor"));
  }
  SECTION("trailing bytes after the last tensor") {
    const std::string h = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
    REQUIRE_THROWS_WITH(parse(hand_made(h, 6)), Contains("inconsistent") && Contains("trailing bytes"));
  }
}

TEST_CASE("safetensors load reports missing files and directories", "[safetensors]") {
  TempDir dir;
  const std::string missing = dir.file("nope.safetensors");
  REQUIRE_THROWS_WITH(ddpm::load_safetensors(missing),
                      Contains("cannot open") && Contains(missing) && Contains("No such file"));
  REQUIRE_THROWS_WITH(ddpm::load_safetensors(dir.path().string()), Contains("not a regular file"));
}

TEST_CASE("safetensors save rejects bad names", "[safetensors]") {
  TempDir dir;
  const std::string path = dir.file("names.safetensors");
  const Tensor t = Tensor::zeros({1});
  REQUIRE_THROWS_WITH(ddpm::save_safetensors(path, {{"", t}}), Contains("empty name"));
  REQUIRE_THROWS_WITH(ddpm::save_safetensors(path, {{"a", t}, {"a", t}}), Contains("'a' is used twice"));
  REQUIRE_THROWS_WITH(ddpm::save_safetensors(path, {{"__metadata__", t}}), Contains("reserved"));
  REQUIRE_THROWS_WITH(ddpm::save_safetensors(path, {{"u", Tensor()}}), Contains("tensor 'u' has no data"));
  REQUIRE(!fs::exists(path));
}

TEST_CASE("safetensors failed saves throw and leave the existing file untouched", "[safetensors]") {
  TempDir dir;
  const std::string path = dir.file("keep.safetensors");
  ddpm::save_safetensors(path, {{"w", Tensor::ones({4})}});
  const std::vector<uint8_t> before = read_bytes(path);
  const Tensor replacement = Tensor::zeros({8});

  SECTION("the temporary file cannot be created") {
    // A directory squatting on the temporary name blocks the write even for root.
    fs::create_directory(path + ".tmp");
    REQUIRE_THROWS_WITH(ddpm::save_safetensors(path, {{"w", replacement}}),
                        Contains("cannot create") && Contains(path + ".tmp") && Contains("Is a directory"));
    REQUIRE(read_bytes(path) == before);
  }
  SECTION("the directory does not exist") {
    const std::string nowhere = dir.file("no_such_dir/x.safetensors");
    REQUIRE_THROWS_WITH(ddpm::save_safetensors(nowhere, {{"w", replacement}}),
                        Contains(nowhere) && Contains("No such file"));
  }
  REQUIRE((!fs::exists(path + ".tmp") || fs::is_directory(path + ".tmp")));
}
