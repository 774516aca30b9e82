// lora_stream_probe.h: the readers of bench/lora_stream_probe (lora_stream_probe.cpp says what they measure). No
// kernels here, so the host compiler can include it.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace ls::bench {

// A decode step of 128 tokens, one rank-16 adapter each, reading q/k/v's B of a Llama-3-8B layer: per token two
// 2048-column runs of q's B and one run each of k's and v's (64 and 32 KB), a block per run.
constexpr int kProbeTokens = 128, kProbeRank = 16, kProbeBlocks = kProbeTokens * 4;
constexpr int64_t kProbeQ = 4096, kProbeKv = 1024, kProbeRun = 2048;

// One arena per module, adapter t's B at t * out_dim * rank elements (bf16), as LoraSlots lays them out.
struct StreamArenas {
  const unsigned char* q;
  const unsigned char* k;
  const unsigned char* v;
};

// Every block reads its run once: by 16-byte loads into registers (8 in flight per thread), or with `bulk` by the
// LoRA expand's bulk path (16 KB bulk copies into shared memory, two in flight); 256 threads, at most 4 blocks per
// SM. `sink` [kProbeBlocks] floats is written only if a sum comes out 12345.678 (never, for the probe's data).
cudaError_t launch_stream_reader(const StreamArenas& a, bool bulk, float* sink, cudaStream_t stream);

}  // namespace ls::bench
