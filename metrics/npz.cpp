#include "metrics/npz.h"

#include <zlib.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include "engine/error.h"

namespace ddpm {

namespace {
size_t dtype_bytes(const std::string& dtype) {
  if (dtype == "<f8") return 8;
  if (dtype == "<f4") return 4;
  detail::fail("npy: unsupported dtype '", dtype, "' (only little-endian float64 '<f8' and float32 '<f4')");
}

template <class T>
NpyArray make(const std::vector<T>& values, std::vector<int64_t> shape, const char* dtype) {
  NpyArray a;
  a.dtype = dtype;
  a.shape = std::move(shape);
  DDPM_CHECK(static_cast<size_t>(a.size()) == values.size(), "npy: ", values.size(), " values do not fill the shape");
  a.bytes.resize(values.size() * sizeof(T));
  std::memcpy(a.bytes.data(), values.data(), a.bytes.size());
  return a;
}

template <class Out>
std::vector<Out> convert(const NpyArray& a) {
  std::vector<Out> out(static_cast<size_t>(a.size()));
  for (size_t i = 0; i < out.size(); ++i) {
    if (a.dtype == "<f8") {
      double v;
      std::memcpy(&v, a.bytes.data() + i * 8, 8);
      out[i] = static_cast<Out>(v);
    } else {
      float v;
      std::memcpy(&v, a.bytes.data() + i * 4, 4);
      out[i] = static_cast<Out>(v);
    }
  }
  return out;
}

void put16(std::string& s, uint32_t v) {
  s += static_cast<char>(v & 0xff);
  s += static_cast<char>((v >> 8) & 0xff);
}
void put32(std::string& s, uint32_t v) {
  put16(s, v & 0xffff);
  put16(s, v >> 16);
}
uint32_t get16(const std::vector<char>& b, size_t at) {
  return static_cast<uint32_t>(static_cast<uint8_t>(b[at])) | static_cast<uint32_t>(static_cast<uint8_t>(b[at + 1])) << 8;
}
uint32_t get32(const std::vector<char>& b, size_t at) { return get16(b, at) | get16(b, at + 2) << 16; }
uint64_t get64(const std::vector<char>& b, size_t at) {
  return static_cast<uint64_t>(get32(b, at)) | static_cast<uint64_t>(get32(b, at + 4)) << 32;
}
}  // namespace

NpyArray NpyArray::of(const std::vector<double>& values, std::vector<int64_t> shape) { return make(values, std::move(shape), "<f8"); }
NpyArray NpyArray::of(const std::vector<float>& values, std::vector<int64_t> shape) { return make(values, std::move(shape), "<f4"); }

int64_t NpyArray::size() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}
std::vector<double> NpyArray::doubles() const { return convert<double>(*this); }
std::vector<float> NpyArray::floats() const { return convert<float>(*this); }

std::vector<char> npy_bytes(const NpyArray& a) {
  dtype_bytes(a.dtype);
  std::string shape = "(";
  for (int64_t s : a.shape) shape += std::to_string(s) + ", ";
  if (a.shape.size() > 1) shape.resize(shape.size() - 2);  // "(3, 4)"; one dimension keeps "(3,)"
  if (a.shape.size() == 1) shape.resize(shape.size() - 1);
  shape += ")";
  std::string header = "{'descr': '" + a.dtype + "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Padded with spaces and ended by '\n' so that the data starts at a multiple of 64 bytes.
  const size_t total = (10 + header.size() + 1 + 63) / 64 * 64;
  header.resize(total - 10 - 1, ' ');
  header += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  put16(out, static_cast<uint32_t>(header.size()));
  out += header;
  std::vector<char> bytes(out.begin(), out.end());
  bytes.insert(bytes.end(), a.bytes.begin(), a.bytes.end());
  return bytes;
}

NpyArray parse_npy(const std::vector<char>& b, const std::string& what) {
  DDPM_CHECK(b.size() >= 10 && std::memcmp(b.data(), "\x93NUMPY", 6) == 0, "npy: ", what, " is not a .npy array");
  const int major = b[6];
  const size_t header_len = major == 1 ? get16(b, 8) : get32(b, 8), start = major == 1 ? 10 : 12;
  DDPM_CHECK(major >= 1 && major <= 3 && b.size() >= start + header_len, "npy: ", what, " has a truncated header");
  const std::string header(b.data() + start, header_len);
  auto value_of = [&](const std::string& key) {
    const size_t at = header.find("'" + key + "'");
    DDPM_CHECK(at != std::string::npos, "npy: ", what, " has no '", key, "' in its header: ", header);
    size_t from = header.find(':', at) + 1;
    while (header[from] == ' ') ++from;
    const char close = header[from] == '(' ? ')' : header[from] == '\'' ? '\'' : ',';
    const size_t end = header.find(close, from + 1);
    return header.substr(from, end - from + (close == ',' ? 0 : 1));
  };
  NpyArray a;
  a.dtype = value_of("descr");
  a.dtype = a.dtype.substr(1, a.dtype.size() - 2);
  DDPM_CHECK(a.dtype == "<f8" || a.dtype == "<f4", "npy: ", what, " holds dtype '", a.dtype,
             "'; only little-endian float64 and float32 are supported");
  DDPM_CHECK(value_of("fortran_order").rfind("False", 0) == 0, "npy: ", what, " is in Fortran order; save it in C order");
  std::stringstream shape(value_of("shape"));
  for (char c; shape >> c;) {
    if (c >= '0' && c <= '9') {
      shape.putback(c);
      int64_t v;
      shape >> v;
      a.shape.push_back(v);
    }
  }
  const size_t n = static_cast<size_t>(a.size()) * dtype_bytes(a.dtype), data = start + header_len;
  DDPM_CHECK(b.size() == data + n, "npy: ", what, " should hold ", n, " bytes of data after its header, has ",
             b.size() - data);
  a.bytes.assign(b.begin() + static_cast<std::ptrdiff_t>(data), b.end());
  return a;
}

void write_npz(const std::string& path, const std::vector<std::pair<std::string, NpyArray>>& arrays) {
  std::string out, central;
  for (const auto& [name, array] : arrays) {
    const std::vector<char> data = npy_bytes(array);
    const std::string file = name + ".npy";
    DDPM_CHECK(data.size() < 0xffffffffull && out.size() < 0xffffffffull, "npz: ", path,
               " would exceed 4 GiB, which this writer does not support (no zip64)");
    const uint32_t crc = static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size())));
    const uint32_t offset = static_cast<uint32_t>(out.size()), size = static_cast<uint32_t>(data.size());
    // Local file header: version 2.0, no flags, stored, time 00:00 on 1980-01-01.
    auto common = [&](std::string& s) {
      put16(s, 20);
      put16(s, 0);
      put16(s, 0);
      put16(s, 0);
      put16(s, 0x21);
      put32(s, crc);
      put32(s, size);
      put32(s, size);
      put16(s, static_cast<uint32_t>(file.size()));
      put16(s, 0);
    };
    put32(out, 0x04034b50);
    common(out);
    out += file;
    out.append(data.begin(), data.end());
    put32(central, 0x02014b50);
    put16(central, 20);  // made by: version 2.0
    common(central);
    put16(central, 0);  // comment length
    put16(central, 0);  // disk
    put16(central, 0);  // internal attributes
    put32(central, 0);  // external attributes
    put32(central, offset);
    central += file;
  }
  const uint32_t directory_at = static_cast<uint32_t>(out.size());
  out += central;
  put32(out, 0x06054b50);
  put16(out, 0);
  put16(out, 0);
  put16(out, static_cast<uint32_t>(arrays.size()));
  put16(out, static_cast<uint32_t>(arrays.size()));
  put32(out, static_cast<uint32_t>(central.size()));
  put32(out, directory_at);
  put16(out, 0);
  const std::string temp = path + ".tmp";
  {
    std::ofstream f(temp, std::ios::binary);
    f.write(out.data(), static_cast<std::streamsize>(out.size()));
    DDPM_CHECK(f.good(), "npz: cannot write '", temp, "'; check the directory exists and is writable");
  }
  DDPM_CHECK(std::rename(temp.c_str(), path.c_str()) == 0, "npz: cannot rename '", temp, "' to '", path, "'");
}

std::map<std::string, NpyArray> read_npz(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  DDPM_CHECK(f.good(), "npz: cannot open '", path, "'");
  const std::vector<char> b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  // The end-of-central-directory record: the last 0x06054b50 signature (a comment may follow it).
  size_t end = std::string::npos;
  for (size_t i = b.size() >= 22 ? b.size() - 22 + 1 : 0; i-- > 0;)
    if (get32(b, i) == 0x06054b50) {
      end = i;
      break;
    }
  DDPM_CHECK(end != std::string::npos, "npz: '", path, "' is not a zip archive (truncated or corrupt)");
  uint64_t entries = get16(b, end + 10), directory = get32(b, end + 16);
  if (directory == 0xffffffffu || entries == 0xffff) {  // zip64: its locator sits just before
    DDPM_CHECK(end >= 20 && get32(b, end - 20) == 0x07064b50, "npz: '", path, "' has a broken zip64 directory");
    const uint64_t record = get64(b, end - 20 + 8);
    DDPM_CHECK(record + 56 <= b.size() && get32(b, record) == 0x06064b50, "npz: '", path, "' has a broken zip64 record");
    entries = get64(b, record + 32);
    directory = get64(b, record + 48);
  }
  std::map<std::string, NpyArray> arrays;
  size_t at = directory;
  for (uint64_t e = 0; e < entries; ++e) {
    DDPM_CHECK(at + 46 <= b.size() && get32(b, at) == 0x02014b50, "npz: '", path, "' has a corrupt central directory");
    const uint32_t method = get16(b, at + 10), crc = get32(b, at + 16);
    uint64_t packed = get32(b, at + 20), size = get32(b, at + 24), local = get32(b, at + 42);
    const size_t name_len = get16(b, at + 28), extra_len = get16(b, at + 30), comment_len = get16(b, at + 32);
    const std::string name(b.data() + at + 46, name_len);
    // zip64 extra field (id 1): the 64-bit values, in this order, of those stored as 0xffffffff.
    for (size_t x = at + 46 + name_len; x + 4 <= at + 46 + name_len + extra_len;) {
      const uint32_t id = get16(b, x), len = get16(b, x + 2);
      if (id == 1) {
        size_t v = x + 4;
        if (size == 0xffffffffu) size = get64(b, v), v += 8;
        if (packed == 0xffffffffu) packed = get64(b, v), v += 8;
        if (local == 0xffffffffu) local = get64(b, v);
      }
      x += 4 + len;
    }
    at += 46 + name_len + extra_len + comment_len;
    DDPM_CHECK(local + 30 <= b.size() && get32(b, local) == 0x04034b50, "npz: '", path, "': entry ", name,
               " has a corrupt local header");
    const size_t data = local + 30 + get16(b, local + 26) + get16(b, local + 28);
    DDPM_CHECK(data + packed <= b.size(), "npz: '", path, "' is truncated (entry ", name, ")");
    std::vector<char> content(static_cast<size_t>(size));
    if (method == 0) {
      DDPM_CHECK(packed == size, "npz: '", path, "': entry ", name, " is stored with mismatched sizes");
      std::memcpy(content.data(), b.data() + data, size);
    } else if (method == 8) {
      z_stream z{};
      DDPM_CHECK(inflateInit2(&z, -MAX_WBITS) == Z_OK, "npz: zlib inflateInit2 failed");
      z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(b.data() + data));
      z.avail_in = static_cast<uInt>(packed);
      z.next_out = reinterpret_cast<Bytef*>(content.data());
      z.avail_out = static_cast<uInt>(size);
      const int status = inflate(&z, Z_FINISH);
      inflateEnd(&z);
      DDPM_CHECK(status == Z_STREAM_END && z.total_out == size, "npz: '", path, "': entry ", name,
                 " does not inflate to its stated size (corrupt)");
    } else {
      detail::fail("npz: '", path, "': entry ", name, " uses zip compression method ", method,
                   "; only stored (0) and deflate (8) are supported");
    }
    const uint32_t actual = static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(content.data()), static_cast<uInt>(content.size())));
    DDPM_CHECK(actual == crc, "npz: '", path, "': entry ", name, " fails its CRC-32 check (corrupt)");
    std::string key = name;
    if (key.size() > 4 && key.compare(key.size() - 4, 4, ".npy") == 0) key.resize(key.size() - 4);
    arrays[key] = parse_npy(content, path + ":" + name);
  }
  return arrays;
}

}  // namespace ddpm
