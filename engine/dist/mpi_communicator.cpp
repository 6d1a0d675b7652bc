// The MPI communicator: Open MPI (or any MPI) for launching and for CPU tensors; NCCL for CUDA
// tensors when the build has it, else CUDA tensors go through host memory.
#include <mpi.h>
#include <omp.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <memory>
#include <thread>

#include "engine/device.h"
#include "engine/dist/communicator.h"
#include "engine/error.h"
#if DDPM_WITH_NCCL
#include "engine/dist/nccl_group.h"
#endif

namespace ddpm {

namespace {

void check_mpi(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  detail::fail("MPI: ", what, " failed: ", std::string(text, static_cast<size_t>(length)));
}

MPI_Datatype mpi_type_of(const Tensor& t, const char* op) {
  switch (t.dtype()) {
    case DType::F32: return MPI_FLOAT;
    case DType::F64: return MPI_DOUBLE;
    default: detail::fail("communicator ", op, ": expected a float32 or float64 tensor, got ", t.describe());
  }
}

// MPI counts are int: reduce a long buffer in pieces of at most INT_MAX elements.
template <class Fn>
void in_chunks(int64_t n, size_t element_bytes, void* data, Fn fn) {
  auto* bytes = static_cast<char*>(data);
  for (int64_t done = 0; done < n;) {
    const int count = static_cast<int>(std::min<int64_t>(n - done, INT_MAX));
    fn(bytes + static_cast<size_t>(done) * element_bytes, count);
    done += count;
  }
}

void finalize_at_exit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    int provided = 0;
    check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    std::atexit(finalize_at_exit);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    MPI_Comm local;  // the ranks that share this machine's memory
    check_mpi(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local),
              "MPI_Comm_split_type");
    MPI_Comm_rank(local, &local_rank_);
    MPI_Comm_size(local, &local_size_);
    MPI_Comm_free(&local);
    share_cores();
    if (cuda_available()) {
      use_cuda_device(local_rank_);
#if DDPM_WITH_NCCL
      nccl_ = std::make_unique<NcclGroup>(rank_, size_, [](void* id, int bytes) {
        check_mpi(MPI_Bcast(id, bytes, MPI_BYTE, 0, MPI_COMM_WORLD), "MPI_Bcast of the NCCL id");
      });
#endif
    }
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }

  void sum(const Tensor& t) override {
#if DDPM_WITH_NCCL
    if (t.device() == Device::CUDA && nccl_) return nccl_->sum(t);
#endif
    if (t.device() != Device::CPU) return through_host(t, [this](const Tensor& h) { sum(h); });
    const MPI_Datatype type = mpi_type_of(t, "sum");
    in_chunks(t.numel(), dtype_size(t.dtype()), t.raw(), [&](void* p, int count) {
      check_mpi(MPI_Allreduce(MPI_IN_PLACE, p, count, type, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
    });
  }

  void broadcast(const Tensor& t, int root) override {
#if DDPM_WITH_NCCL
    if (t.device() == Device::CUDA && nccl_) return nccl_->broadcast(t, root);
#endif
    if (t.device() != Device::CPU) return through_host(t, [this, root](const Tensor& h) { broadcast(h, root); });
    const MPI_Datatype type = mpi_type_of(t, "broadcast");
    in_chunks(t.numel(), dtype_size(t.dtype()), t.raw(), [&](void* p, int count) {
      check_mpi(MPI_Bcast(p, count, type, root, MPI_COMM_WORLD), "MPI_Bcast");
    });
  }

  void sum(std::vector<double>& values) override {
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_DOUBLE, MPI_SUM,
                            MPI_COMM_WORLD),
              "MPI_Allreduce");
  }

  std::vector<double> all_gather(const std::vector<double>& mine) override {
    std::vector<double> all(mine.size() * static_cast<size_t>(size_));
    check_mpi(MPI_Allgather(mine.data(), static_cast<int>(mine.size()), MPI_DOUBLE, all.data(),
                            static_cast<int>(mine.size()), MPI_DOUBLE, MPI_COMM_WORLD),
              "MPI_Allgather");
    return all;
  }

  [[noreturn]] void abort(int status) override {
    MPI_Abort(MPI_COMM_WORLD, status);
    std::_Exit(status);  // MPI_Abort does not return; this keeps [[noreturn]] honest
  }

  std::string describe() const override {
    std::string s = "mpi, " + std::to_string(size_) + (size_ == 1 ? " rank" : " ranks");
#if DDPM_WITH_NCCL
    if (nccl_) s += " (nccl for cuda tensors)";
#endif
    return s;
  }

 private:
  // Ranks on one machine split its cores: OpenMP (and the OpenMP build of OpenBLAS) would
  // otherwise start one thread per core in every rank and oversubscribe them.
  void share_cores() const {
    if (std::getenv("OMP_NUM_THREADS")) return;
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    omp_set_num_threads(std::max(1, cores / local_size_));
  }

  template <class Fn>
  static void through_host(const Tensor& t, Fn fn) {
    const Tensor host = t.to(Device::CPU);
    fn(host);
    t.copy_from(host);
  }

  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
#if DDPM_WITH_NCCL
  std::unique_ptr<NcclGroup> nccl_;
#endif
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator() { return std::make_unique<MpiCommunicator>(); }

}  // namespace ddpm
