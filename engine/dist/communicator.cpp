// world(): the single-process communicator, and the choice between it and MPI's.
#include "engine/dist/communicator.h"

#include <cstdlib>
#include <memory>

#include "engine/error.h"

namespace ddpm {

#if DDPM_WITH_MPI
std::unique_ptr<Communicator> make_mpi_communicator();  // engine/dist/mpi_communicator.cpp
#endif

namespace {

class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  void sum(const Tensor&) override {}
  void broadcast(const Tensor&, int) override {}
  void sum(std::vector<double>&) override {}
  std::vector<double> all_gather(const std::vector<double>& mine) override { return mine; }
  [[noreturn]] void abort(int status) override { std::exit(status); }
  std::string describe() const override { return "single process"; }
};

std::unique_ptr<Communicator> make_world() {
  if (!launched_by_mpi()) return std::make_unique<SingleProcess>();
#if DDPM_WITH_MPI
  return make_mpi_communicator();
#else
  detail::fail("this process was started by an MPI launcher, but this build of ddpm has no MPI; "
               "install libopenmpi-dev (scripts/setup.sh) and rebuild, or run without mpirun");
#endif
}

}  // namespace

bool launched_by_mpi() {
  // Open MPI's mpirun, PMIx-based launchers (srun, prterun) and MPICH's Hydra set these.
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"})
    if (std::getenv(name)) return true;
  return false;
}

Communicator& world() {
  static const std::unique_ptr<Communicator> instance = make_world();
  return *instance;
}

}  // namespace ddpm
