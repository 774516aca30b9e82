// transformer.cpp: model loading and the forward pass. Per layer (the input RMSNorm done by the layer before, or
// for layer 0 on the embeddings): fused QKV projection (+bias) with the q/k/v LoRA into its column slices, RoPE and
// the KV write (one linear_lora_rope_kv_write), paged attention, output projection (+LoRA) with the residual add and
// RMSNorm (one linear_lora_add_rms_norm), fused gate/up (+LoRA) with SiLU-mul (one linear_lora_silu_mul), down projection
// (+LoRA) with the residual add and the next layer's input RMSNorm (the final norm after the last layer).
#include "model/transformer.h"

#include <cmath>
#include <initializer_list>
#include <utility>

namespace ls {

Result<std::unique_ptr<Transformer>> Transformer::load(const std::string& model_dir, Backend& backend,
                                                       const LoadOptions& options) {
  LS_ASSIGN_OR_RETURN(ModelConfig config, load_model_config(model_dir));
  auto weights = options.dummy_weights ? dummy_model_weights(config, backend, options.dummy_seed)
                                       : load_model_weights(model_dir, config, backend);
  if (!weights.is_ok()) return weights.status();
  const std::vector<float> inv_freq = config.rope_inv_freq();
  LS_ASSIGN_OR_RETURN(Buffer inv_buffer, backend.allocate(inv_freq.size() * sizeof(float)));
  backend.copy_to_device(inv_buffer.data(), inv_freq.data(), inv_freq.size() * sizeof(float));
  return std::make_unique<Transformer>(std::move(config), std::move(weights).value(), backend, std::move(inv_buffer));
}

Transformer::Transformer(ModelConfig config, ModelWeights weights, Backend& backend, Buffer inv_freq)
    : config_(std::move(config)), weights_(std::move(weights)), backend_(&backend), inv_freq_(std::move(inv_freq)),
      ws_(std::make_unique<ForwardWorkspace>()) {}

Transformer::~Transformer() = default;

Status Transformer::reserve_workspace(ForwardWorkspace& w, int64_t num_tokens, int64_t num_rows) const {
  const DType dt = backend_->compute_dtype();
  auto make = [&](Buffer& buffer, Tensor& tensor, int64_t rows, int64_t cols, DType dtype) -> Status {
    LS_ASSIGN_OR_RETURN(buffer, backend_->allocate(static_cast<size_t>(rows * cols) * dtype_size(dtype)));
    tensor = buffer.as_tensor(dtype, rows, cols);
    return Status::ok();
  };
  const ModelConfig& c = config_;
  if (num_tokens > w.token_capacity) {
    const int64_t n = std::max<int64_t>(num_tokens, 2 * w.token_capacity);
    LS_RETURN_IF_ERROR(make(w.residual, w.t_residual, n, c.hidden_size, dt));
    LS_RETURN_IF_ERROR(make(w.normed, w.t_normed, n, c.hidden_size, dt));
    LS_RETURN_IF_ERROR(make(w.qkv, w.t_qkv, n, c.q_size() + 2 * c.kv_size(), dt));
    LS_RETURN_IF_ERROR(make(w.attn, w.t_attn, n, c.q_size(), dt));
    LS_RETURN_IF_ERROR(make(w.proj, w.t_proj, n, c.hidden_size, dt));
    LS_RETURN_IF_ERROR(make(w.gate_up, w.t_gate_up, n, 2 * c.intermediate_size, dt));
    LS_RETURN_IF_ERROR(make(w.act, w.t_act, n, c.intermediate_size, dt));
    w.token_capacity = n;
  }
  if (num_rows > w.row_capacity) {
    const int64_t n = std::max<int64_t>(num_rows, 2 * w.row_capacity);
    LS_RETURN_IF_ERROR(make(w.final_rows, w.t_final_rows, n, c.hidden_size, dt));
    LS_RETURN_IF_ERROR(make(w.logits, w.t_logits, n, c.vocab_size, DType::kF32));
    w.row_capacity = n;
  }
  return Status::ok();
}

namespace {

// The modules (up to three, column slices of one projection's output) that read the same x, with their slot
// tables; modules that no resident adapter targets are left out.
struct LoraTargets {
  LoraModuleWeights w[3];
  Tensor ys[3];
  int n = 0;
};
LoraTargets lora_targets(const BatchMeta& meta, const LoraTable* lora, int64_t layer,
                         std::initializer_list<std::pair<LoraModule, Tensor>> targets) {
  LoraTargets t;
  if (lora && meta.has_lora) {
    for (const auto& [m, y] : targets) {
      t.w[t.n] = lora->module(layer, m);
      if (t.w[t.n].max_rank > 0) t.ys[t.n++] = y;
    }
  }
  return t;
}

}  // namespace

void Transformer::run_layer(int64_t l, const BatchMeta& meta, const KvCache& kv, const LoraTable* lora,
                            ForwardWorkspace& ws) const {
  Backend& b = *backend_;
  const ModelConfig& c = config_;
  const LayerWeights& w = weights_.layers[l];
  const int64_t T = meta.num_tokens, q = c.q_size(), kvs = c.kv_size(), inter = c.intermediate_size;
  Tensor residual = ws.t_residual.row_slice(0, T), x = ws.t_normed.row_slice(0, T);
  Tensor qkv = ws.t_qkv.row_slice(0, T), attn = ws.t_attn.row_slice(0, T), proj = ws.t_proj.row_slice(0, T);
  Tensor gate_up = ws.t_gate_up.row_slice(0, T), act = ws.t_act.row_slice(0, T);

  const auto eps = static_cast<float>(c.rms_norm_eps);
  // x holds this layer's normalized input (the layer before normalized it); the first normalizes the embeddings.
  if (l == 0) b.rms_norm(residual, w.input_norm, eps, x);
  Tensor tq = qkv.col_slice(0, q), tk = qkv.col_slice(q, kvs), tv = qkv.col_slice(q + kvs, kvs);
  const LoraTargets qkv_lora =
      lora_targets(meta, lora, l, {{LoraModule::kQ, tq}, {LoraModule::kK, tk}, {LoraModule::kV, tv}});
  b.linear_lora_rope_kv_write(meta, x, w.qkv, w.qkv_bias, qkv, qkv_lora.w, qkv_lora.ys, qkv_lora.n, tq, tk, tv,
                              static_cast<const float*>(inv_freq_.data()), c.head_dim, kv.layer(l));
  AttentionParams params;
  params.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  params.num_heads = c.num_heads;
  params.sliding_window = c.sliding_window;
  b.attention(meta, tq, kv.layer(l), params, attn);
  const LoraTargets o = lora_targets(meta, lora, l, {{LoraModule::kO, proj}});
  b.linear_lora_add_rms_norm(meta, attn, w.o, w.o_bias, proj, o.w, o.ys, o.n, residual, w.post_attention_norm, eps,
                             x);
  // The adapters' gate and up deltas join the product before the activation.
  const LoraTargets gu = lora_targets(meta, lora, l,
                                      {{LoraModule::kGate, gate_up.col_slice(0, inter)},
                                       {LoraModule::kUp, gate_up.col_slice(inter, inter)}});
  b.linear_lora_silu_mul(meta, x, w.gate_up, w.gate_up_bias, gate_up, act, gu.w, gu.ys, gu.n);
  const Tensor next_norm = l + 1 < c.num_layers ? weights_.layers[l + 1].input_norm : weights_.final_norm;
  const LoraTargets down = lora_targets(meta, lora, l, {{LoraModule::kDown, proj}});
  b.linear_lora_add_rms_norm(meta, act, w.down, w.down_bias, proj, down.w, down.ys, down.n, residual, next_norm,
                             eps, x);
}

Result<Tensor> Transformer::forward_device(const ForwardBatch& batch, KvCache& kv, const LoraTable* lora,
                                           PackedBatch* packed) {
  const int32_t num_slots = lora ? lora->num_slots() : 0;
  LS_ASSIGN_OR_RETURN(*packed, pack_batch(batch, kv.block_size(), kv.num_blocks(), config_.vocab_size, num_slots));
  for (const SequenceStep& s : batch.seqs) {
    if (s.lora_slot >= 0 && !lora->occupied(s.lora_slot))
      return invalid_argument("lora slot " + std::to_string(s.lora_slot) + " holds no adapter");
  }
  LS_RETURN_IF_ERROR(reserve_workspace(*ws_, packed->meta.num_tokens, std::max<int32_t>(packed->meta.num_logit_rows, 1)));
  const BatchMeta meta = backend_->upload_batch(packed->meta);
  return run_uploaded(meta, kv, lora, *ws_);
}

Tensor Transformer::run_uploaded(const BatchMeta& meta, const KvCache& kv, const LoraTable* lora,
                                 ForwardWorkspace& ws) const {
  Backend& b = *backend_;
  const int64_t T = meta.num_tokens, R = meta.num_logit_rows;
  LS_CHECK(T <= ws.token_capacity && R <= ws.row_capacity) << "forward workspace smaller than the batch";
  b.embedding(meta, weights_.embed, ws.t_residual.row_slice(0, T));
  for (int64_t l = 0; l < config_.num_layers; ++l) run_layer(l, meta, kv, lora, ws);
  // The last layer left the final norm's output in x: logits only for the wanted rows.
  Tensor x = ws.t_normed.row_slice(0, T);
  Tensor logits = ws.t_logits.row_slice(0, R);
  if (R == 0) return logits;
  Tensor rows = ws.t_final_rows.row_slice(0, R);
  b.gather_logit_rows(meta, x, rows);
  b.linear(rows, weights_.lm_head, Tensor{}, logits);
  return logits;
}

Result<std::vector<float>> Transformer::forward(const ForwardBatch& batch, KvCache& kv, const LoraTable* lora) {
  PackedBatch packed;
  LS_ASSIGN_OR_RETURN(Tensor logits, forward_device(batch, kv, lora, &packed));
  std::vector<float> host(static_cast<size_t>(logits.rows * logits.cols));
  backend_->copy_to_host(host.data(), logits.data, host.size() * sizeof(float));
  return host;
}

}  // namespace ls
