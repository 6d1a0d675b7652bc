// OpKind: the identity of every entry of engine/ops.def (ops, composites and plain kernels).
// Autograd nodes carry it; op_name() gives the name for messages.
#pragma once

namespace ddpm {

enum class OpKind {
#define DDPM_OP(name) name,
#define DDPM_KERNEL(name) name,
#define DDPM_COMPOSITE(name) name,
#include "engine/ops.def"
};

const char* op_name(OpKind kind);

}  // namespace ddpm
