// Dropout folded into another op's output (group_norm): the dropout op's mask, addressed the same
// way (engine/op_args.h dropout_fwd), so a fused op equals the op followed by dropout.
#pragma once
#include <cstdint>

namespace ddpm {

// out[i] *= keep(i) / (1 - p), keep(i) = philox::uniform(seed, stream, offset + i) >= float(p), i the
// flat index in the output. p = 0: no dropout.
struct DropoutMask {
  double p = 0.0;
  uint64_t seed = 0, stream = 0, offset = 0;
};

}  // namespace ddpm
