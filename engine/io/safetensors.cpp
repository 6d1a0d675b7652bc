#include "engine/io/safetensors.h"

#include "engine/io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

namespace ddpm {

// Tensor bytes go to and from disk unconverted, which is only right on a little-endian host.
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__)
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes a little-endian host");
#endif

namespace {

// ordered_json keeps the header's key order, so entries written in a given order read back in it.
using Json = nlohmann::ordered_json;

const char* const kMetadataKey = "__metadata__";
const char* const kCorruptHint = "the file is corrupt or not a safetensors file; re-export it or use an earlier checkpoint";
const char* const kTruncatedHint = "was the write interrupted? use an earlier checkpoint";

// One tensor as the header describes it; offsets are relative to the data section.
struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin;
  uint64_t end;
};

struct Header {
  std::vector<Entry> entries;  // sorted by data offset
  std::map<std::string, std::string> metadata;
};

template <class... Parts>
[[noreturn]] void bad_file(const std::string& source, const Parts&... parts) {
  detail::fail("safetensors file '", source, "': ", parts...);
}

// Reads errno first, before anything else can overwrite it.
[[noreturn]] void os_failure(const std::string& what, const std::string& path, const char* hint) {
  const std::string reason = std::strerror(errno);
  detail::fail(what, " '", path, "': ", reason, "; ", hint);
}

// ---- dtypes ----------------------------------------------------------------------------------

const char* dtype_code(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::BF16: return "BF16";
  }
  return "?";
}

bool parse_dtype(const std::string& code, DType& out) {
  for (DType t : {DType::F32, DType::F64, DType::BF16}) {
    if (code == dtype_code(t)) {
      out = t;
      return true;
    }
  }
  return false;
}

// ---- little-endian length field ------------------------------------------------------------

uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

void append_le64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xffu));
}

// ---- header parsing --------------------------------------------------------------------------

// Validates the 8-byte length field against the file size and returns the header length.
uint64_t header_length(const uint8_t* first8, uint64_t file_bytes, const std::string& source) {
  const uint64_t n = read_le64(first8);
  if (n > kSafetensorsMaxHeaderBytes)
    bad_file(source, "the header length ", n, " bytes is oversized (the limit is ",
             kSafetensorsMaxHeaderBytes, " bytes); ", kCorruptHint);
  if (n > file_bytes - 8)
    bad_file(source, "the file is truncated: the header claims ", n, " bytes but only ",
             file_bytes - 8, " bytes follow the length field; ", kTruncatedHint);
  return n;
}

uint64_t require_unsigned(const Json& v, const std::string& source, const std::string& what) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  const char* why = v.is_number_integer() ? "is negative"
                    : v.is_number()       ? "is not an integer"
                                          : "is not a number";
  bad_file(source, what, " ", why, " (got ", v.dump(), "); ", kCorruptHint);
}

const Json& require_field(const Json& entry, const char* field, const std::string& name,
                          const std::string& source) {
  auto it = entry.find(field);
  if (it == entry.end())
    bad_file(source, "tensor '", name, "' has no \"", field, "\" field; ", kCorruptHint);
  return *it;
}

Shape parse_shape(const Json& v, const std::string& name, const std::string& source) {
  if (!v.is_array())
    bad_file(source, "tensor '", name, "': \"shape\" must be an array of non-negative integers, got ",
             v.dump(), "; ", kCorruptHint);
  Shape shape;
  for (const Json& d : v) {
    const uint64_t dim = require_unsigned(d, source, "tensor '" + name + "': a shape dimension");
    if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      bad_file(source, "tensor '", name, "': shape dimension ", dim, " is too large; ", kCorruptHint);
    shape.push_back(static_cast<int64_t>(dim));
  }
  return shape;
}

// numel(shape) * element_size, or false when it does not fit in 64 bits.
bool byte_size(const Shape& shape, size_t element_size, uint64_t& out) {
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) {
    out = 0;
    return true;
  }
  uint64_t n = element_size;
  for (int64_t d : shape) {
    const uint64_t ud = static_cast<uint64_t>(d);
    if (n > std::numeric_limits<uint64_t>::max() / ud) return false;
    n *= ud;
  }
  out = n;
  return true;
}

Entry parse_entry(const std::string& name, const Json& v, uint64_t data_bytes, const std::string& source) {
  if (!v.is_object())
    bad_file(source, "tensor '", name, "' must be a JSON object, got ", v.dump(), "; ", kCorruptHint);
  Entry e;
  e.name = name;

  const Json& dtype = require_field(v, "dtype", name, source);
  if (!dtype.is_string())
    bad_file(source, "tensor '", name, "': \"dtype\" must be a string, got ", dtype.dump(), "; ", kCorruptHint);
  if (!parse_dtype(dtype.get<std::string>(), e.dtype))
    bad_file(source, "tensor '", name, "' has unknown dtype ", dtype.dump(),
             "; this engine reads F32, F64 and BF16: convert the tensor to one of them");

  e.shape = parse_shape(require_field(v, "shape", name, source), name, source);

  const Json& offsets = require_field(v, "data_offsets", name, source);
  if (!offsets.is_array() || offsets.size() != 2)
    bad_file(source, "tensor '", name, "': \"data_offsets\" must be [begin, end], got ", offsets.dump(),
             "; ", kCorruptHint);
  e.begin = require_unsigned(offsets[0], source, "tensor '" + name + "': data_offsets begin");
  e.end = require_unsigned(offsets[1], source, "tensor '" + name + "': data_offsets end");
  if (e.begin > e.end)
    bad_file(source, "tensor '", name, "': data_offsets [", e.begin, ", ", e.end,
             "] begin after end; ", kCorruptHint);
  if (e.end > data_bytes)
    bad_file(source, "the file is truncated: tensor '", name, "' ends at data byte ", e.end,
             " but the data section has only ", data_bytes, " bytes; ", kTruncatedHint);

  uint64_t expected = 0;
  const bool fits = byte_size(e.shape, dtype_size(e.dtype), expected);
  if (!fits || expected != e.end - e.begin)
    bad_file(source, "inconsistent tensor '", name, "': ", dtype.get<std::string>(), shape_str(e.shape),
             " needs ", fits ? std::to_string(expected) : std::string("more than 2^64"),
             " bytes but data_offsets [", e.begin, ", ", e.end, "] span ", e.end - e.begin, "; ",
             kCorruptHint);
  return e;
}

std::map<std::string, std::string> parse_metadata(const Json& v, const std::string& source) {
  std::map<std::string, std::string> metadata;
  if (!v.is_object())
    bad_file(source, "\"", kMetadataKey, "\" must be an object of strings, got ", v.dump(), "; ", kCorruptHint);
  for (const auto& item : v.items()) {
    if (!item.value().is_string())
      bad_file(source, "metadata value for '", item.key(), "' must be a string, got ",
               item.value().dump(), "; ", kCorruptHint);
    metadata[item.key()] = item.value().get<std::string>();
  }
  return metadata;
}

// The tensors must tile the data section exactly: sorted by offset, each starts where the
// previous one ended, and the last ends at the end of the section.
void check_coverage(const std::vector<Entry>& sorted, uint64_t data_bytes, const std::string& source) {
  uint64_t cursor = 0;
  const Entry* previous = nullptr;
  for (const Entry& e : sorted) {
    if (e.begin < cursor)
      bad_file(source, "tensor '", e.name, "' [", e.begin, ", ", e.end, ") is overlapping tensor '",
               previous->name, "' [", previous->begin, ", ", previous->end, "); ", kCorruptHint);
    if (e.begin > cursor)
      bad_file(source, "inconsistent data layout: data bytes [", cursor, ", ", e.begin,
               ") before tensor '", e.name, "' belong to no tensor; ", kCorruptHint);
    cursor = e.end;
    previous = &e;
  }
  if (cursor != data_bytes)
    bad_file(source, "inconsistent data layout: the data section has ", data_bytes,
             " bytes but the tensors cover only ", cursor, " (trailing bytes belong to no tensor); ",
             kCorruptHint);
}

Header parse_header(const uint8_t* text, uint64_t length, uint64_t data_bytes, const std::string& source) {
  Json json;
  try {
    json = Json::parse(text, text + length);
  } catch (const nlohmann::json::exception& e) {
    bad_file(source, "the header is not valid JSON (", e.what(), "); ", kCorruptHint);
  }
  if (!json.is_object())
    bad_file(source, "the header must be a JSON object, got a ", json.type_name(), "; ", kCorruptHint);

  Header header;
  for (const auto& item : json.items()) {
    if (item.key() == kMetadataKey)
      header.metadata = parse_metadata(item.value(), source);
    else
      header.entries.push_back(parse_entry(item.key(), item.value(), data_bytes, source));
  }
  // Stable, so zero-byte tensors sharing an offset keep the header's order.
  std::stable_sort(header.entries.begin(), header.entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  check_coverage(header.entries, data_bytes, source);
  return header;
}

// ---- file handles ----------------------------------------------------------------------------

// Closes the descriptor on every path out of a function.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Reads exactly `n` bytes at `offset`; a short read means the file shrank under us.
void read_exact(int fd, void* dst, uint64_t n, uint64_t offset, const std::string& path) {
  auto* p = static_cast<uint8_t*>(dst);
  while (n > 0) {
    const ssize_t got = ::pread(fd, p, n, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) os_failure("load_safetensors: cannot read", path, "check the file and the disk");
    if (got == 0)
      bad_file(path, "the file is truncated: it ended while reading byte ", offset,
               " (did it change while being read?); ", kTruncatedHint);
    p += got;
    n -= static_cast<uint64_t>(got);
    offset += static_cast<uint64_t>(got);
  }
}

// ---- saving ----------------------------------------------------------------------------------

void check_names(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors) {
  std::set<std::string> seen;
  for (const auto& [name, t] : tensors) {
    DDPM_CHECK(!name.empty(), "save_safetensors '", path, "': a tensor has an empty name; give every tensor a name");
    DDPM_CHECK(name != kMetadataKey, "save_safetensors '", path, "': '", kMetadataKey,
               "' is reserved for metadata; rename the tensor");
    DDPM_CHECK(seen.insert(name).second, "save_safetensors '", path, "': the name '", name,
               "' is used twice; names must be unique");
    DDPM_CHECK(t.defined() && t.impl().storage != nullptr, "save_safetensors '", path, "': tensor '", name,
               "' has no data (", t.describe(), "); bind or fill it before saving");
  }
}

// The length field plus the JSON header, padded with spaces so the data section starts at a
// multiple of 8 bytes (the format allows trailing spaces in the header).
std::string encode_header(const std::vector<std::pair<std::string, Tensor>>& tensors,
                          const std::map<std::string, std::string>& metadata) {
  Json json = Json::object();
  if (!metadata.empty()) json[kMetadataKey] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    const uint64_t end = offset + t.nbytes();
    json[name] = {{"dtype", dtype_code(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {offset, end}}};
    offset = end;
  }
  std::string text = json.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string out;
  append_le64(out, text.size());
  return out + text;
}

}  // namespace

// ---- public API ------------------------------------------------------------------------------

const Tensor& NamedTensors::at(const std::string& name) const {
  for (const auto& [key, t] : tensors)
    if (key == name) return t;
  std::string present;
  for (const auto& item : tensors) present += (present.empty() ? "'" : ", '") + item.first + "'";
  detail::fail("safetensors: no tensor named '", name, "'; the file has ",
               present.empty() ? std::string("no tensors") : present,
               "; check the name or that the checkpoint matches the model");
}

NamedTensors parse_safetensors(const std::vector<uint8_t>& bytes, const std::string& source_name) {
  if (bytes.size() < 8)
    bad_file(source_name, "the file is truncated: expected at least 8 bytes for the header length, found ",
             bytes.size(), "; ", kTruncatedHint);
  const uint64_t header_bytes = header_length(bytes.data(), bytes.size(), source_name);
  const uint64_t data_start = 8 + header_bytes;
  Header header = parse_header(bytes.data() + 8, header_bytes, bytes.size() - data_start, source_name);

  NamedTensors out;
  out.metadata = std::move(header.metadata);
  for (const Entry& e : header.entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype);
    if (t.nbytes() > 0) std::memcpy(t.raw(), bytes.data() + data_start + e.begin, t.nbytes());
    out.tensors.emplace_back(e.name, std::move(t));
  }
  return out;
}

// Reads the header, validates it against the file size, then reads each tensor straight into its
// storage: the file is read once and never held in memory twice.
NamedTensors load_safetensors(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) os_failure("load_safetensors: cannot open", path, "check that the path is right and readable");
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) os_failure("load_safetensors: cannot stat", path, "check the file");
  if (!S_ISREG(info.st_mode))
    detail::fail("load_safetensors: '", path, "' is not a regular file; pass the path of a .safetensors file");
  const uint64_t file_bytes = static_cast<uint64_t>(info.st_size);

  if (file_bytes < 8)
    bad_file(path, "the file is truncated: expected at least 8 bytes for the header length, found ",
             file_bytes, "; ", kTruncatedHint);
  uint8_t first8[8];
  read_exact(fd.get(), first8, 8, 0, path);
  const uint64_t header_bytes = header_length(first8, file_bytes, path);
  std::vector<uint8_t> text(header_bytes);
  read_exact(fd.get(), text.data(), header_bytes, 8, path);
  const uint64_t data_start = 8 + header_bytes;
  Header header = parse_header(text.data(), header_bytes, file_bytes - data_start, path);

  NamedTensors out;
  out.metadata = std::move(header.metadata);
  for (const Entry& e : header.entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype);
    if (t.nbytes() > 0) read_exact(fd.get(), t.raw(), t.nbytes(), data_start + e.begin, path);
    out.tensors.emplace_back(e.name, std::move(t));
  }
  return out;
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  check_names(path, tensors);
  std::vector<Tensor> host;
  host.reserve(tensors.size());
  for (const auto& item : tensors) host.push_back(item.second.to(Device::CPU));
  std::string header;
  try {
    header = encode_header(tensors, metadata);
  } catch (const nlohmann::json::exception& e) {
    detail::fail("save_safetensors '", path, "': cannot encode the header (", e.what(),
                 "); tensor names and metadata must be valid UTF-8");
  }

  AtomicFile file(path);
  file.write(header.data(), header.size());
  for (const Tensor& t : host)
    if (t.nbytes() > 0) file.write(t.raw(), t.nbytes());
  file.commit();
}

}  // namespace ddpm
