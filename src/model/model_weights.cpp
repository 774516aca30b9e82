// model_weights.cpp: weight loading (name and shape checks, q/k/v and gate/up fusion, tied embeddings) and
// seeded dummy weights. Matrices go through Backend::allocate_weight / upload_weight (the backend's weight
// format: packed and possibly bf16 / int8 on the CPU), norms and biases stay plain compute-dtype rows.
#include "model/model_weights.h"

#include <cmath>
#include <cstring>

#include "io/safetensors.h"

namespace ls {
namespace {

// Allocates backend tensors and collects their memory.
class TensorAllocator {
 public:
  TensorAllocator(Backend& backend, ModelWeights& weights) : backend_(backend), weights_(weights) {}
  Result<Tensor> make(int64_t rows, int64_t cols) {
    const DType dtype = backend_.compute_dtype();
    LS_ASSIGN_OR_RETURN(Buffer buffer, backend_.allocate(static_cast<size_t>(rows * cols) * dtype_size(dtype)));
    Tensor t = buffer.as_tensor(dtype, rows, cols);
    weights_.num_bytes += buffer.bytes();
    weights_.memory.push_back(std::move(buffer));
    return t;
  }
  // A weight matrix in the backend's weight format (Backend::allocate_weight); `source`: the checkpoint's dtype.
  Result<Tensor> make_weight(int64_t rows, int64_t cols, DType source) {
    LS_ASSIGN_OR_RETURN(WeightMatrix w, backend_.allocate_weight(rows, cols, source));
    weights_.num_bytes += w.memory.bytes();
    weights_.memory.push_back(std::move(w.memory));
    return w.tensor;
  }

 private:
  Backend& backend_;
  ModelWeights& weights_;
};

// Reads named file tensors (each [rows_i, cols]) stacked by rows into one float32 host matrix; `source`
// receives the first tensor's file dtype.
Result<std::vector<float>> read_stacked(const WeightFiles& files, const std::vector<std::string>& names,
                                        const std::vector<int64_t>& rows, int64_t cols, DType* source = nullptr) {
  std::vector<float> out;
  for (size_t i = 0; i < names.size(); ++i) {
    const TensorView* t = files.find(names[i]);
    if (!t) return not_found("missing weight \"" + names[i] + "\"");
    if (!is_float_dtype(t->dtype))
      return invalid_argument("weight \"" + names[i] + "\" has dtype " + std::string(dtype_name(t->dtype)) +
                              " (F32, F16 or BF16 expected)");
    const bool vector = rows[i] == 1;
    const bool shape_ok = vector ? (t->shape.size() == 1 && t->shape[0] == cols)
                                 : (t->shape.size() == 2 && t->shape[0] == rows[i] && t->shape[1] == cols);
    if (!shape_ok) {
      const std::string want = vector ? "[" + std::to_string(cols) + "]"
                                      : "[" + std::to_string(rows[i]) + ", " + std::to_string(cols) + "]";
      return invalid_argument("weight \"" + names[i] + "\" has shape " + t->shape_string() + ", config.json implies " + want);
    }
    if (source && i == 0) *source = t->dtype;
    const size_t offset = out.size();
    out.resize(offset + static_cast<size_t>(t->num_elements()));
    convert_to_f32(t->data, t->dtype, static_cast<size_t>(t->num_elements()), out.data() + offset);
  }
  return out;
}

struct LoadContext {
  const WeightFiles& files;
  Backend& backend;
  TensorAllocator& alloc;

  // Loads and fuses `names` (stacked by rows) into one backend tensor of [sum(rows), cols]: a weight matrix in
  // the backend's weight format, or, for vectors (norms, biases), one compute-dtype row.
  Result<Tensor> load(const std::vector<std::string>& names, const std::vector<int64_t>& rows, int64_t cols) {
    DType source = DType::kF32;
    LS_ASSIGN_OR_RETURN(std::vector<float> host, read_stacked(files, names, rows, cols, &source));
    int64_t total_rows = 0;
    for (int64_t r : rows) total_rows += r;
    if (rows.size() >= 1 && rows[0] == 1) {
      LS_ASSIGN_OR_RETURN(Tensor t, alloc.make(1, cols * static_cast<int64_t>(rows.size())));
      backend.upload_f32(t.data, host.data(), host.size());
      return t;
    }
    LS_ASSIGN_OR_RETURN(Tensor t, alloc.make_weight(total_rows, cols, source));
    backend.upload_weight(t, host.data());
    return t;
  }
};

Status load_layer(LoadContext& ctx, const ModelConfig& c, int64_t l, LayerWeights& w) {
  const std::string p = "model.layers." + std::to_string(l) + ".";
  const int64_t h = c.hidden_size, q = c.q_size(), kv = c.kv_size(), inter = c.intermediate_size;
  LS_ASSIGN_OR_RETURN(w.input_norm, ctx.load({p + "input_layernorm.weight"}, {1}, h));
  LS_ASSIGN_OR_RETURN(w.post_attention_norm, ctx.load({p + "post_attention_layernorm.weight"}, {1}, h));
  const std::string a = p + "self_attn.", m = p + "mlp.";
  LS_ASSIGN_OR_RETURN(w.qkv, ctx.load({a + "q_proj.weight", a + "k_proj.weight", a + "v_proj.weight"}, {q, kv, kv}, h));
  LS_ASSIGN_OR_RETURN(w.o, ctx.load({a + "o_proj.weight"}, {h}, q));
  LS_ASSIGN_OR_RETURN(w.gate_up, ctx.load({m + "gate_proj.weight", m + "up_proj.weight"}, {inter, inter}, h));
  LS_ASSIGN_OR_RETURN(w.down, ctx.load({m + "down_proj.weight"}, {h}, inter));
  if (c.qkv_bias) {
    // Biases are vectors of different lengths; stack them through a host concat.
    std::vector<float> bias;
    for (auto [name, n] : {std::pair{a + "q_proj.bias", q}, {a + "k_proj.bias", kv}, {a + "v_proj.bias", kv}}) {
      LS_ASSIGN_OR_RETURN(auto part, read_stacked(ctx.files, {name}, {1}, n));
      bias.insert(bias.end(), part.begin(), part.end());
    }
    LS_ASSIGN_OR_RETURN(w.qkv_bias, ctx.alloc.make(1, q + 2 * kv));
    ctx.backend.upload_f32(w.qkv_bias.data, bias.data(), bias.size());
  }
  if (c.o_bias) {
    LS_ASSIGN_OR_RETURN(w.o_bias, ctx.load({a + "o_proj.bias"}, {1}, h));
  }
  if (c.mlp_bias) {
    LS_ASSIGN_OR_RETURN(w.gate_up_bias, ctx.load({m + "gate_proj.bias", m + "up_proj.bias"}, {1, 1}, inter));
    LS_ASSIGN_OR_RETURN(w.down_bias, ctx.load({m + "down_proj.bias"}, {1}, h));
  }
  return Status::ok();
}

}  // namespace

Result<ModelWeights> load_model_weights(const std::string& model_dir, const ModelConfig& c, Backend& backend) {
  LS_ASSIGN_OR_RETURN(WeightFiles files, WeightFiles::open_model_dir(model_dir));
  ModelWeights w;
  TensorAllocator alloc(backend, w);
  LoadContext ctx{files, backend, alloc};
  auto fail = [&](const Status& s) { return s.with_context(model_dir); };
  auto embed = ctx.load({"model.embed_tokens.weight"}, {c.vocab_size}, c.hidden_size);
  if (!embed.is_ok()) return fail(embed.status());
  w.embed = embed.value();
  auto norm = ctx.load({"model.norm.weight"}, {1}, c.hidden_size);
  if (!norm.is_ok()) return fail(norm.status());
  w.final_norm = norm.value();
  if (c.tie_word_embeddings) {
    w.lm_head = w.embed;
  } else {
    auto head = ctx.load({"lm_head.weight"}, {c.vocab_size}, c.hidden_size);
    if (!head.is_ok()) return fail(head.status());
    w.lm_head = head.value();
  }
  w.layers.resize(static_cast<size_t>(c.num_layers));
  for (int64_t l = 0; l < c.num_layers; ++l)
    if (Status s = load_layer(ctx, c, l, w.layers[l]); !s.is_ok()) return fail(s);
  return w;
}

}  // namespace ls

namespace ls {

Result<ModelWeights> dummy_model_weights(const ModelConfig& c, Backend& backend, uint64_t seed) {
  ModelWeights w;
  TensorAllocator alloc(backend, w);
  uint64_t next_seed = seed;
  // Matrices uniform in +-1/sqrt(in) keep activations O(1) through depth; norms near 1.
  auto matrix = [&](int64_t rows, int64_t cols) -> Result<Tensor> {
    LS_ASSIGN_OR_RETURN(Tensor t, alloc.make_weight(rows, cols, DType::kF32));
    const float bound = 1.0f / std::sqrt(static_cast<float>(cols));
    backend.fill_uniform(t, next_seed++, -bound, bound);
    return t;
  };
  auto bias = [&](int64_t cols) -> Result<Tensor> {  // same values as a 1-row matrix
    LS_ASSIGN_OR_RETURN(Tensor t, alloc.make(1, cols));
    const float bound = 1.0f / std::sqrt(static_cast<float>(cols));
    backend.fill_uniform(t, next_seed++, -bound, bound);
    return t;
  };
  auto norm = [&](int64_t cols) -> Result<Tensor> {
    LS_ASSIGN_OR_RETURN(Tensor t, alloc.make(1, cols));
    backend.fill_uniform(t, next_seed++, 0.9f, 1.1f);
    return t;
  };
  const int64_t h = c.hidden_size, q = c.q_size(), kv = c.kv_size(), inter = c.intermediate_size;
  LS_ASSIGN_OR_RETURN(w.embed, matrix(c.vocab_size, h));
  LS_ASSIGN_OR_RETURN(w.final_norm, norm(h));
  if (c.tie_word_embeddings) {
    w.lm_head = w.embed;
  } else {
    LS_ASSIGN_OR_RETURN(w.lm_head, matrix(c.vocab_size, h));
  }
  w.layers.resize(static_cast<size_t>(c.num_layers));
  for (LayerWeights& l : w.layers) {
    LS_ASSIGN_OR_RETURN(l.input_norm, norm(h));
    LS_ASSIGN_OR_RETURN(l.post_attention_norm, norm(h));
    LS_ASSIGN_OR_RETURN(l.qkv, matrix(q + 2 * kv, h));
    LS_ASSIGN_OR_RETURN(l.o, matrix(h, q));
    LS_ASSIGN_OR_RETURN(l.gate_up, matrix(2 * inter, h));
    LS_ASSIGN_OR_RETURN(l.down, matrix(h, inter));
    if (c.qkv_bias) {
      LS_ASSIGN_OR_RETURN(l.qkv_bias, bias(q + 2 * kv));
    }
    if (c.o_bias) {
      LS_ASSIGN_OR_RETURN(l.o_bias, bias(h));
    }
    if (c.mlp_bias) {
      LS_ASSIGN_OR_RETURN(l.gate_up_bias, bias(2 * inter));
      LS_ASSIGN_OR_RETURN(l.down_bias, bias(h));
    }
  }
  return w;
}

}  // namespace ls
