// attention.h: launchers of paged causal attention (GQA, optional sliding window) over the KV cache:
// decode (one query token per sequence; split-K over the context on the tensor cores, then a combine;
// attention_decode.cu),
// prefill chunks (flash-attention tiles on the tensor cores; attention_prefill.cu), and a plain kernel for
// head dims or group sizes the fast paths do not instantiate (attention_generic.cu).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "backend/cuda/kernels/stream.h"

namespace ls::cuda {

// Which decode kernel runs: the tensor-core one (default), or the older CUDA-core one that tests and benchmarks
// compare it with (CudaBackendOptions::decode_attention). Fixed per backend before graphs are captured.
enum class DecodeKernel { kTensorCore, kSimt };

struct AttentionArgs {
  // The batch (device arrays) and its host scalars.
  const int32_t* query_start = nullptr;   // [num_seqs + 1]
  const int32_t* positions = nullptr;     // [num_tokens]
  const int32_t* context_lens = nullptr;  // [num_seqs]
  const int32_t* block_tables = nullptr;  // [num_seqs * max_blocks_per_seq]
  int32_t num_tokens = 0, num_seqs = 0, max_blocks_per_seq = 0, max_query_len = 0, max_context_len = 0;
  // q [T, num_heads * head_dim] and out (same shape), bf16.
  const void* q = nullptr;
  int64_t q_ld = 0;
  void* out = nullptr;
  int64_t out_ld = 0;
  // The layer's cache: [blocks, block_size, num_kv_heads, head_dim] bf16.
  const void* k_cache = nullptr;
  const void* v_cache = nullptr;
  int64_t block_size = 0, num_kv_heads = 0, head_dim = 0, num_heads = 0;
  int32_t block_shift = -1;  // log2(block_size) when a power of two, else -1 (set by the launchers)
  float scale = 1.0f;
  int64_t sliding_window = 0;
  DecodeKernel decode_kernel = DecodeKernel::kTensorCore;  // launch_attention_decode: which kernel
};

// Decode: every sequence has exactly one query token (max_query_len == 1).
bool attention_decode_supported(const AttentionArgs& a);
// Float32 scratch the decode path needs (0 when it splits no context).
int64_t attention_decode_scratch_floats(const AttentionArgs& a, int num_sms);
cudaError_t launch_attention_decode(const AttentionArgs& a, float* scratch, int num_sms, Stream stream);

bool attention_prefill_supported(const AttentionArgs& a);
cudaError_t launch_attention_prefill(const AttentionArgs& a, Stream stream);

// Any head_dim <= 256, any batch.
cudaError_t launch_attention_generic(const AttentionArgs& a, Stream stream);

}  // namespace ls::cuda
