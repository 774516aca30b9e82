// cpu_lora.cpp: the multi-LoRA op on the CPU. For each segment of tokens sharing an adapter slot:
// shrink t = x A^T [n, rank], then expand y += t B^T, at the slot's real rank (rank 0 / slot -1: skipped).
#include <vector>

#include "backend/cpu/cpu_backend.h"

namespace ls {

const char* lora_module_name(LoraModule module) {
  static const char* const kNames[kNumLoraModules] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                      "gate_proj", "up_proj", "down_proj"};
  return kNames[static_cast<int>(module)];
}

void CpuBackend::lora(const BatchMeta& batch, Tensor x, const LoraModuleWeights& weights, Tensor y) {
  if (!batch.has_lora || weights.num_slots == 0) return;
  LS_CHECK(x.cols == weights.in_dim && y.cols == weights.out_dim && x.rows == y.rows) << "lora shape mismatch";
  std::vector<float> shrunk;
  for (int32_t g = 0; g < batch.num_lora_segments; ++g) {
    const int32_t slot = batch.lora_seg_slot[g];
    if (slot < 0) continue;
    LS_CHECK(slot < weights.num_slots) << "lora slot " << slot << " beyond the slot table";
    const int32_t rank = weights.ranks[slot];
    if (rank == 0) continue;
    const int32_t begin = batch.lora_seg_start[g], n = batch.lora_seg_start[g + 1] - begin;
    const auto* a = static_cast<const float*>(weights.a[slot]);
    const auto* b = static_cast<const float*>(weights.b[slot]);
    shrunk.assign(static_cast<size_t>(n) * rank, 0.0f);
    cpu_gemm_nt(x.ptr<float>() + begin * x.ld, x.ld, a, weights.in_dim, shrunk.data(), rank, n, rank,
                weights.in_dim, 0.0f);
    cpu_gemm_nt(shrunk.data(), rank, b, rank, y.ptr<float>() + begin * y.ld, y.ld, n, weights.out_dim, rank, 1.0f);
  }
}

}  // namespace ls
