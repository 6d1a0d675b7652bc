// Every file the program writes is replaced atomically: readers, and a run resumed after a crash or
// kill -9, see either the old file or the complete new one, never a partial one. The bytes go to
// PATH.tmp, which is synced, renamed onto PATH, and then the directory is synced so that the rename
// itself survives a power loss.
#pragma once
#include <cstddef>
#include <string>

namespace ddpm {

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);  // creates PATH.tmp (truncating a stale one)
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();  // without commit(): removes PATH.tmp and leaves PATH as it was

  void write(const void* data, size_t bytes);
  void commit();  // fsync, close, rename onto PATH, fsync the directory

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

void write_file_atomically(const std::string& path, const void* data, size_t bytes);
inline void write_file_atomically(const std::string& path, const std::string& text) {
  write_file_atomically(path, text.data(), text.size());
}

}  // namespace ddpm
