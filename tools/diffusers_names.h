// How the engine's UNet parameters correspond to diffusers' UNet2DModel state dict: names and
// layouts. The engine nests the reference DDPM implementation's way (down.1.block.0.conv1,
// up.<level>, stored by level) and keeps conv weights [Cout, K, K, Cin] (NHWC); diffusers names
// blocks by position (down_blocks.1.resnets.0.conv1, up_blocks.<levels-1-level>) and keeps
// PyTorch's [Cout, Cin, K, K].
#pragma once
#include <string>

#include "engine/tensor.h"

namespace ddpm {

// The diffusers name of engine parameter `name` of a UNet with `levels` resolutions
// (channel_mult's length). Throws, naming the parameter, for one diffusers has no place for.
std::string diffusers_name_of(const std::string& name, int levels);

// Legacy attention names of old diffusers checkpoints (query, key, value, proj_attn) and their
// current names (to_q, to_k, to_v, to_out.0); a name without them is returned as is.
std::string modern_attention_name(const std::string& diffusers_name);

// Engine layout <-> diffusers layout of one parameter: conv weights [O,K,K,I] <-> [O,I,K,K];
// every other tensor is the same. Float32 CPU tensors in and out.
Tensor to_diffusers_layout(const Tensor& engine_value);
Tensor from_diffusers_layout(const Tensor& diffusers_value);

}  // namespace ddpm
