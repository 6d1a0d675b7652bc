// NumPy .npz files (a zip archive of .npy arrays), so that reference statistics interoperate with
// pytorch-fid: np.load(path)["mu"], ["sigma"]. Writes stored (uncompressed) entries with CRC-32
// and a fixed timestamp, so equal arrays give byte-identical files; reads stored or deflated
// entries (np.savez_compressed) and zip64 archives. Little-endian C-order float64 / float32 only.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace ddpm {

struct NpyArray {
  std::string dtype;           // "<f8" or "<f4"
  std::vector<int64_t> shape;  // C order
  std::vector<char> bytes;     // the raw little-endian values

  static NpyArray of(const std::vector<double>& values, std::vector<int64_t> shape);
  static NpyArray of(const std::vector<float>& values, std::vector<int64_t> shape);
  int64_t size() const;                   // product of the shape
  std::vector<double> doubles() const;    // converted from either dtype
  std::vector<float> floats() const;      // converted from either dtype
};

// The bytes of one .npy file (format version 1.0) and its parse.
std::vector<char> npy_bytes(const NpyArray& array);
NpyArray parse_npy(const std::vector<char>& bytes, const std::string& what);

// Arrays are written in the order given, each as "<name>.npy". Written atomically (temp + rename).
void write_npz(const std::string& path, const std::vector<std::pair<std::string, NpyArray>>& arrays);
// Throws naming the path on a missing, truncated or corrupt file, or an unsupported array.
std::map<std::string, NpyArray> read_npz(const std::string& path);

}  // namespace ddpm
