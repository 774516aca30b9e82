// lora_weights.h: how the LoRA ops see resident adapters. For one (layer, module) pair, LoraModuleWeights
// holds per adapter slot a pointer to A [rank, in] and to B [out, rank] (scale already folded into B), and the
// slot's rank for this module (0: the adapter does not target it). The arrays live in backend memory and are
// indexed by slot; the device-slot manager (lora/LoraSlots) keeps them current and never moves them, so CUDA
// graphs may record them and read whichever adapters the slots hold at replay.
#pragma once

#include <cstdint>

namespace ls {

// The seven adaptable projections of a Llama-family layer.
enum class LoraModule : int { kQ = 0, kK, kV, kO, kGate, kUp, kDown };
inline constexpr int kNumLoraModules = 7;
// The largest adapter rank the LoRA ops take (the CUDA kernels' per-token scratch is sized by it).
inline constexpr int32_t kLoraMaxRank = 256;
// "q_proj", ...: the module's name as PEFT's target_modules and the checkpoints spell it.
inline const char* lora_module_name(LoraModule module) {
  constexpr const char* kNames[kNumLoraModules] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                   "gate_proj", "up_proj", "down_proj"};
  return kNames[static_cast<int>(module)];
}

struct LoraModuleWeights {
  const void* const* a = nullptr;  // [num_slots] -> A [rank, in_dim]
  const void* const* b = nullptr;  // [num_slots] -> B [out_dim, rank]
  const int32_t* ranks = nullptr;  // [num_slots]
  int32_t num_slots = 0;
  int32_t max_rank = 0;            // host scalar: the largest rank of any slot for this module (0: none adapts it)
  int64_t in_dim = 0;
  int64_t out_dim = 0;
};

// The resident adapters as the forward pass sees them (implemented by lora/LoraSlots), so the model depends
// only on the backend, not on how adapters are loaded or cached.
class LoraTable {
 public:
  virtual ~LoraTable() = default;
  virtual int32_t num_slots() const = 0;
  virtual bool occupied(int32_t slot) const = 0;
  virtual LoraModuleWeights module(int64_t layer, LoraModule m) const = 0;
};

}  // namespace ls
