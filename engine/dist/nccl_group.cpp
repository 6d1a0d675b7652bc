// NcclGroup: one NCCL communicator over every rank, its calls ordered on the engine's one stream
// (kernels/cuda/context.h), so a reduction runs after the backward kernels that wrote the
// gradients and before the optimizer kernels that read them, with no host synchronization.
#include "engine/dist/nccl_group.h"

#include <nccl.h>

#include "engine/error.h"
#include "kernels/cuda/context.h"

namespace ddpm {

namespace {

void check_nccl(ncclResult_t result, const char* what) {
  if (result == ncclSuccess) return;
  detail::fail("NCCL: ", what, " failed: ", ncclGetErrorString(result), " (", ncclGetLastError(nullptr),
               "); NCCL_DEBUG=INFO prints NCCL's own account");
}

ncclDataType_t nccl_type_of(const Tensor& t, const char* op) {
  DDPM_CHECK(t.device() == Device::CUDA, "nccl ", op, ": expected a CUDA tensor, got ", t.describe());
  switch (t.dtype()) {
    case DType::F32: return ncclFloat32;
    case DType::F64: return ncclFloat64;
    case DType::BF16: return ncclBfloat16;
  }
  detail::fail("nccl ", op, ": unsupported dtype in ", t.describe());
}

}  // namespace

struct NcclGroup::State {
  ncclComm_t comm = nullptr;
};

NcclGroup::NcclGroup(int rank, int size, const std::function<void(void*, int)>& share_id)
    : state_(std::make_unique<State>()) {
  ncclUniqueId id{};
  if (rank == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
  share_id(&id, static_cast<int>(sizeof id));
  check_nccl(ncclCommInitRank(&state_->comm, size, id, rank), "ncclCommInitRank");
}

NcclGroup::~NcclGroup() {
  if (state_->comm) ncclCommDestroy(state_->comm);
}

void NcclGroup::sum(const Tensor& t) {
  const ncclDataType_t type = nccl_type_of(t, "sum");
  check_nccl(ncclAllReduce(t.raw(), t.raw(), static_cast<size_t>(t.numel()), type, ncclSum, state_->comm,
                           cuda::stream()),
             "ncclAllReduce");
}

void NcclGroup::broadcast(const Tensor& t, int root) {
  const ncclDataType_t type = nccl_type_of(t, "broadcast");
  check_nccl(ncclBroadcast(t.raw(), t.raw(), static_cast<size_t>(t.numel()), type, root, state_->comm,
                           cuda::stream()),
             "ncclBroadcast");
}

}  // namespace ddpm
