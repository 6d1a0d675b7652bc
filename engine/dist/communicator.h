// Data-parallel collectives between the processes ("ranks") of one training job.
//
// A job is launched by an MPI launcher (`mpirun -np N ddpm train ...`); each rank trains on its own
// shard of every global batch, and the ranks meet in these collectives: parameters broadcast from
// rank 0 at the start, one in-place sum of the gradient buffer per step, a few host scalars (the
// loss, a stop flag) and the per-sample losses the importance sampler needs. Without a launcher
// world() is a single rank whose collectives do nothing, so the program behaves exactly as a
// one-process program.
//
// Backends: MPI (Open MPI) for launching and for CPU tensors; NCCL for CUDA tensors when the build
// has it (else CUDA tensors are staged through host memory and reduced by MPI).
#pragma once
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace ddpm {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int local_rank() const = 0;  // among the ranks on this machine: picks the GPU
  bool is_root() const { return rank() == 0; }

  // t (contiguous float32/float64, CPU or CUDA) becomes the elementwise sum over ranks, in place.
  virtual void sum(const Tensor& t) = 0;
  // Every rank's t becomes rank `root`'s.
  virtual void broadcast(const Tensor& t, int root = 0) = 0;
  // Host values: elementwise sum over ranks, in place.
  virtual void sum(std::vector<double>& values) = 0;
  // Every rank's `mine` (equal lengths on every rank), concatenated in rank order.
  virtual std::vector<double> all_gather(const std::vector<double>& mine) = 0;
  // Ends the whole job (every rank) with `status`: what a rank does after an error of its own,
  // so that the other ranks do not wait forever in a collective.
  [[noreturn]] virtual void abort(int status) = 0;
  // "single process", "mpi, 4 ranks (nccl for cuda tensors)", ...
  virtual std::string describe() const = 0;
};

// This process's communicator, created on first use: MPI's world when an MPI launcher started the
// process (and the build has MPI), else a single rank. With MPI it also makes GPU local_rank()
// modulo the device count this process's device, and gives each rank on a machine an equal share
// of its cores for OpenMP and BLAS (unless OMP_NUM_THREADS is set).
Communicator& world();

// True when an MPI launcher started this process (its environment says so), whether or not the
// build has MPI.
bool launched_by_mpi();

}  // namespace ddpm
