#include "tools/diffusers_names.h"

#include <sstream>
#include <vector>

#include "engine/error.h"

namespace ddpm {

namespace {
std::vector<std::string> split(const std::string& name) {
  std::vector<std::string> parts;
  std::stringstream in(name);
  for (std::string p; std::getline(in, p, '.');) parts.push_back(p);
  return parts;
}

std::string join(const std::vector<std::string>& parts, size_t from) {
  std::string out;
  for (size_t i = from; i < parts.size(); ++i) out += (out.empty() ? "" : ".") + parts[i];
  return out;
}

// Inside a residual block: norm1, conv1, temb_proj, norm2, conv2, nin_shortcut + ".weight"/".bias".
std::string resnet_part(const std::string& rest, const std::string& whole) {
  static const std::pair<const char*, const char*> renames[] = {
      {"norm1.", "norm1."}, {"conv1.", "conv1."}, {"temb_proj.", "time_emb_proj."},
      {"norm2.", "norm2."}, {"conv2.", "conv2."}, {"nin_shortcut.", "conv_shortcut."}};
  for (const auto& [from, to] : renames)
    if (rest.rfind(from, 0) == 0) return to + rest.substr(std::string(from).size());
  detail::fail("diffusers: the engine parameter '", whole, "' has no counterpart in UNet2DModel");
}

std::string attention_part(const std::string& rest, const std::string& whole) {
  static const std::pair<const char*, const char*> renames[] = {
      {"norm.", "group_norm."}, {"q.", "to_q."}, {"k.", "to_k."}, {"v.", "to_v."}, {"proj_out.", "to_out.0."}};
  for (const auto& [from, to] : renames)
    if (rest.rfind(from, 0) == 0) return to + rest.substr(std::string(from).size());
  detail::fail("diffusers: the engine parameter '", whole, "' has no counterpart in UNet2DModel");
}

// "block.j.rest" or "attn.j.rest" or "downsample.rest"/"upsample.rest" of one level.
std::string level_part(const std::vector<std::string>& p, const std::string& whole) {
  if (p.size() >= 4 && p[2] == "block") return "resnets." + p[3] + "." + resnet_part(join(p, 4), whole);
  if (p.size() >= 4 && p[2] == "attn") return "attentions." + p[3] + "." + attention_part(join(p, 4), whole);
  if (p.size() >= 3 && p[2] == "downsample") return "downsamplers.0.conv." + join(p, 3);
  if (p.size() >= 3 && p[2] == "upsample") return "upsamplers.0.conv." + join(p, 3);
  detail::fail("diffusers: the engine parameter '", whole, "' has no counterpart in UNet2DModel");
}
}  // namespace

std::string diffusers_name_of(const std::string& name, int levels) {
  const std::vector<std::string> p = split(name);
  const std::string& head = p.at(0);
  if (head == "conv_in" || head == "conv_out") return name;
  if (head == "norm_out") return "conv_norm_out." + join(p, 1);
  if (head == "temb_dense" && p.size() >= 3 && (p[1] == "0" || p[1] == "1"))
    return std::string("time_embedding.linear_") + (p[1] == "0" ? "1." : "2.") + join(p, 2);
  if (head == "mid_block_1") return "mid_block.resnets.0." + resnet_part(join(p, 1), name);
  if (head == "mid_block_2") return "mid_block.resnets.1." + resnet_part(join(p, 1), name);
  if (head == "mid_attn_1") return "mid_block.attentions.0." + attention_part(join(p, 1), name);
  if ((head == "down" || head == "up") && p.size() >= 3) {
    const int level = std::stoi(p[1]);
    const int index = head == "down" ? level : levels - 1 - level;  // diffusers orders up blocks top first
    return (head == "down" ? "down_blocks." : "up_blocks.") + std::to_string(index) + "." + level_part(p, name);
  }
  detail::fail("diffusers: the engine parameter '", name, "' has no counterpart in UNet2DModel");
}

std::string modern_attention_name(const std::string& n) {
  static const std::pair<const char*, const char*> renames[] = {
      {".query.", ".to_q."}, {".key.", ".to_k."}, {".value.", ".to_v."}, {".proj_attn.", ".to_out.0."}};
  for (const auto& [from, to] : renames) {
    const size_t at = n.find(from);
    if (at != std::string::npos && n.find(".attentions.") != std::string::npos)
      return n.substr(0, at) + to + n.substr(at + std::string(from).size());
  }
  return n;
}

namespace {
// A rank-4 float32 conv weight between PyTorch's [O, I, K, K] and the engine's [O, K, K, I].
Tensor move_axis(const Tensor& x, bool channels_last) {
  const Shape s = x.shape();
  // channels_last: [O, I, K1, K2] -> [O, K1, K2, I]; else [O, K1, K2, I] -> [O, I, K1, K2]
  const Shape out = channels_last ? Shape{s[0], s[2], s[3], s[1]} : Shape{s[0], s[3], s[1], s[2]};
  Tensor y = Tensor::empty(out);
  const float* src = x.data<float>();
  float* dst = y.data<float>();
  for (int64_t o = 0; o < s[0]; ++o)
    for (int64_t a = 0; a < s[1]; ++a)
      for (int64_t b = 0; b < s[2]; ++b)
        for (int64_t c = 0; c < s[3]; ++c) {
          const int64_t from = ((o * s[1] + a) * s[2] + b) * s[3] + c;
          const int64_t to = channels_last ? ((o * s[2] + b) * s[3] + c) * s[1] + a   // [o, b, c, a]
                                           : ((o * s[3] + c) * s[1] + a) * s[2] + b;  // [o, c, a, b]
          dst[to] = src[from];
        }
  return y;
}
}  // namespace

Tensor to_diffusers_layout(const Tensor& v) {
  const Tensor x = v.to(Device::CPU).to(DType::F32);
  return x.rank() == 4 ? move_axis(x, false) : x;
}

Tensor from_diffusers_layout(const Tensor& v) {
  const Tensor x = v.to(Device::CPU).to(DType::F32);
  return x.rank() == 4 ? move_axis(x, true) : x;
}

}  // namespace ddpm
