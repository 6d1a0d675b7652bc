// The small UNet the GPU tests train and compare: 16x16x3 images, two levels (32 and 64
// channels), attention at 8x8 with two heads, dropout 0.1. out_channels 6: a learned-range
// variance head; 3: epsilon only.
#pragma once
#include "models/unet.h"

namespace ddpm::test {

inline UNetConfig small_gpu_unet(int out_channels) {
  UNetConfig c;
  c.resolution = 16, c.in_channels = 3, c.out_channels = out_channels, c.base_channels = 32, c.channel_mult = {1, 2};
  c.num_res_blocks = 1, c.attention_resolutions = {8}, c.heads = 2, c.dropout = 0.1;
  return c;
}

}  // namespace ddpm::test
