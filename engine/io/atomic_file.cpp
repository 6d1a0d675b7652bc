#include "engine/io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "engine/error.h"

namespace ddpm {

namespace {
[[noreturn]] void os_failure(const char* what, const std::string& path, const char* advice) {
  const std::string reason = std::strerror(errno);
  detail::fail(what, " '", path, "': ", reason, "; ", advice);
}

std::string directory_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}
}  // namespace

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)), tmp_(path_ + ".tmp") {
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) os_failure("cannot create", tmp_, "check that the directory exists and is writable");
}

AtomicFile::~AtomicFile() {
  if (committed_) return;
  if (fd_ >= 0) ::close(fd_);
  std::remove(tmp_.c_str());
}

void AtomicFile::write(const void* data, size_t bytes) {
  DDPM_CHECK(fd_ >= 0 && !committed_, "AtomicFile: write to '", path_, "' after commit");
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::write(fd_, p, bytes);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) os_failure("cannot write", tmp_, "check that the disk is not full");
    p += n, bytes -= static_cast<size_t>(n);
  }
}

void AtomicFile::commit() {
  DDPM_CHECK(fd_ >= 0 && !committed_, "AtomicFile: '", path_, "' committed twice");
  // The data must reach the disk before the rename does, or a crash could leave PATH naming a file
  // whose blocks were never written.
  if (::fsync(fd_) != 0) os_failure("cannot sync", tmp_, "check the disk");
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) os_failure("cannot close", tmp_, "check the disk");
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0)
    os_failure("cannot rename the temporary file onto", path_, "check that the destination is writable");
  committed_ = true;
  const std::string dir = directory_of(path_);
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) os_failure("cannot open the directory", dir, "check its permissions");
  const bool synced = ::fsync(dir_fd) == 0;
  ::close(dir_fd);
  if (!synced) os_failure("cannot sync the directory", dir, "check the disk");
}

void write_file_atomically(const std::string& path, const void* data, size_t bytes) {
  AtomicFile file(path);
  file.write(data, bytes);
  file.commit();
}

}  // namespace ddpm
