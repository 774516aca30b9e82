// cmd_serve.cpp: `loraserve serve`, the HTTP server: loads the base model, registers the start-up adapters
// (each validated against the base; a bad one stops start-up with its reason), starts the engine and the
// HTTP listener, and on SIGTERM/SIGINT stops accepting, lets running requests finish (bounded) and exits 0.
// It accepts the launcher flags TGI, LoRAX and vLLM users carry over, as their docs spell them.
#include <signal.h>

#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "core/timing.h"
#include "engine/engine.h"
#include "engine/served_model.h"
#include "lora/s3_adapter_source.h"
#include "server/adapter_specs.h"
#include "server/api.h"
#include "server/http_server.h"

namespace ls::app {
namespace {

struct ServeArgs {
  std::string model, model_positional, model_id;
  std::string host = "0.0.0.0";
  int port = 8080;
  std::string device = "cpu";
  std::string tokenizer, load_format = "safetensors";
  std::vector<std::string> served_model_names;
  std::string lora_adapters;                 // TGI (also LORA_ADAPTERS)
  std::vector<std::string> lora_modules;     // vLLM
  std::vector<std::string> adapter_dirs;     // roots searched by name on first use (directories, s3:// URLs)
  std::string adapter_cache_dir;             // downloads from object storage ("" = the default)
  double adapter_cache_gib = 8;
  bool enable_lora_management = false;       // also VLLM_ALLOW_RUNTIME_LORA_UPDATING
  bool enable_lora = false;
  int max_lora_rank = 0, max_loras = 4, max_cpu_loras = 0;
  int max_model_len = 0, max_num_seqs = 256, max_num_batched_tokens = 0;
  int max_concurrent_requests = 1024, max_input_tokens = 0, max_total_tokens = 0;
  int max_best_of = 2, max_stop_sequences = 4, max_top_n_tokens = 5;
  std::vector<std::string> api_keys;         // also LORASERVE_API_KEY
  std::vector<std::string> admin_keys;       // the management routes' key (also LORASERVE_ADMIN_KEY)
  int io_threads = 2, block_size = 16, cpu_threads = 0;
  std::string cpu_weights = "f32";
  double gpu_memory_utilization = 0.9, kv_cache_gib = 0, shutdown_grace = 30;
  bool enforce_eager = false;
  std::string dtype = "auto";
  bool trust_remote_code = false;
  bool no_ui = false;                        // no page at GET / (it is then TGI's health route)
  int parent_pid = 0;                        // > 0: stop as on SIGTERM when this process, our parent, ends
};

int fail(const Status& status) {
  std::fprintf(stderr, "loraserve: %s\n", status.to_string().c_str());
  return 1;
}

Result<std::vector<server::AdapterSpec>> adapter_specs(const ServeArgs& a) {
  LS_ASSIGN_OR_RETURN(std::vector<server::AdapterSpec> specs, server::parse_tgi_adapter_list(a.lora_adapters));
  for (const std::string& m : a.lora_modules) {
    LS_ASSIGN_OR_RETURN(server::AdapterSpec spec, server::parse_vllm_lora_module(m));
    specs.push_back(std::move(spec));
  }
  return specs;
}

Status register_adapters(Engine& engine, const std::vector<server::AdapterSpec>& specs) {
  for (const server::AdapterSpec& s : specs) {
    const auto t0 = std::chrono::steady_clock::now();
    Status added = engine.add_adapter(s.name, s.source, s.base_model_name);
    if (!added.is_ok()) return Status(added.code(), "adapter " + s.name + " (" + s.source + "): " + added.message());
    for (const AdapterInfo& info : engine.adapters()) {
      if (info.name != s.name) continue;
      std::string targets;
      for (const std::string& t : info.target_modules) targets += (targets.empty() ? "" : ",") + t;
      std::fprintf(stderr, "loraserve: adapter %s: %s (rank %d, %s, %.1f MiB) in %.2f s\n", info.name.c_str(),
                   info.path.c_str(), info.rank, targets.c_str(), static_cast<double>(info.bytes) / (1 << 20),
                   seconds_since(t0));
    }
  }
  return Status::ok();
}

// The page's address as a browser on this machine reaches it (a wildcard listen address becomes localhost).
void print_page_address(const std::string& listen_host, unsigned port) {
  const bool any = listen_host == "0.0.0.0" || listen_host == "::" || listen_host.empty();
  const std::string host = any                                          ? "localhost"
                           : listen_host.find(':') != std::string::npos ? "[" + listen_host + "]"
                                                                        : listen_host;
  std::fprintf(stderr, "loraserve: playground and dashboard: http://%s:%u/\n", host.c_str(), port);
}

// Blocks SIGINT and SIGTERM in this thread and every thread it starts afterwards; run_serve's sigwait takes them.
sigset_t block_shutdown_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

// With --parent-pid: the kernel sends SIGTERM (taken by run_serve's sigwait: the usual graceful stop) when the
// thread that started us ends. Set here, after exec, so a supervisor needs no code between fork and exec (a
// Python preexec_fn forks a multi-threaded runtime such as Ray's worker, whose gRPC threads then misbehave in the
// child). A parent that is already gone is an error.
Status follow_parent(int parent_pid) {
  if (parent_pid <= 0) return Status::ok();
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (::getppid() != parent_pid)
    return invalid_argument("--parent-pid " + std::to_string(parent_pid) + " is not this process's parent (it exited?)");
  return Status::ok();
}

// Every connection is a file descriptor: take the hard limit (distributions default the soft one to 1024).
void raise_open_file_limit() {
  struct rlimit lim {};
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
}

int run_serve(ServeArgs a) {
  if (a.model.empty()) a.model = !a.model_id.empty() ? a.model_id : a.model_positional;
  if (a.model.empty()) return fail(invalid_argument("give the model: --model DIR|org/name (or --model-id, or MODEL)"));
  if (a.port < 0 || a.port > 65535) return fail(invalid_argument("--port must be in [0, 65535]"));
  auto specs = adapter_specs(a);
  if (!specs.is_ok()) return fail(specs.status());
  // vLLM's filesystem resolver, as vLLM users configure it: VLLM_PLUGINS=lora_filesystem_resolver with
  // VLLM_LORA_RESOLVER_CACHE_DIR=DIR makes DIR a root searched by name (read once, here).
  const char* plugins = std::getenv("VLLM_PLUGINS");
  const char* resolver_dir = std::getenv("VLLM_LORA_RESOLVER_CACHE_DIR");
  if (plugins && std::string(plugins).find("lora_filesystem_resolver") != std::string::npos) {
    if (!resolver_dir || !*resolver_dir)
      return fail(invalid_argument("VLLM_PLUGINS=lora_filesystem_resolver needs VLLM_LORA_RESOLVER_CACHE_DIR"));
    a.adapter_dirs.push_back(resolver_dir);
  }
  if (Status s = check_adapter_roots(a.adapter_dirs); !s.is_ok()) return fail(s);
  const sigset_t signals = block_shutdown_signals();
  if (Status s = follow_parent(a.parent_pid); !s.is_ok()) return fail(s);
  raise_open_file_limit();

  const auto t0 = std::chrono::steady_clock::now();
  std::fprintf(stderr, "loraserve: loading %s on %s\n", a.model.c_str(), a.device.c_str());
  ServedModelOptions mo;
  mo.model = a.model;
  mo.tokenizer = a.tokenizer;
  mo.served_names = a.served_model_names;
  mo.backend.device = a.device;
  mo.backend.cpu_threads = a.cpu_threads;
  mo.backend.cpu_weights = a.cpu_weights;
  mo.load_format = a.load_format;
  auto served = ServedModel::load(mo);
  if (!served.is_ok()) return fail(served.status());
  ServedModel& model = **served;
  if (!model.has_tokenizer()) return fail(not_found("the model has no tokenizer.json (give --tokenizer DIR)"));
  const ModelConfig& c = model.config();
  std::fprintf(stderr, "loraserve: weights loaded in %.2f s: %s, %lld layers, hidden %lld, vocab %lld\n",
               seconds_since(t0), model.dir().c_str(), static_cast<long long>(c.num_layers),
               static_cast<long long>(c.hidden_size), static_cast<long long>(c.vocab_size));

  EngineOptions eo;
  eo.max_num_seqs = a.max_num_seqs;
  eo.max_num_batched_tokens = a.max_num_batched_tokens;
  eo.max_loras = a.max_loras;
  eo.max_lora_rank = a.max_lora_rank;
  eo.max_model_len = a.max_model_len;
  eo.block_size = a.block_size;
  eo.kv_cache_bytes = static_cast<int64_t>(a.kv_cache_gib * (1 << 30));
  eo.gpu_memory_utilization = a.gpu_memory_utilization;
  eo.max_queued_requests = std::max(4096, a.max_concurrent_requests);
  eo.cuda_graphs = !a.enforce_eager;
  eo.adapter_dirs = a.adapter_dirs;
  eo.max_cpu_loras = a.max_cpu_loras;
  eo.remote_adapters = RemoteAdapterOptions::from_environment();  // AWS_* credentials and endpoint
  if (!a.adapter_cache_dir.empty()) eo.remote_adapters.cache_dir = a.adapter_cache_dir;
  eo.remote_adapters.cache_max_bytes = static_cast<int64_t>(a.adapter_cache_gib * (1 << 30));
  auto created = Engine::create(model, eo);
  if (!created.is_ok()) return fail(created.status());
  Engine& engine = **created;
  const EngineLimits& L = engine.limits();
  std::fprintf(stderr,
               "loraserve: KV cache: %d blocks of %d tokens = %lld tokens (%.1f MiB); max_model_len %d, "
               "max_num_seqs %d, max_num_batched_tokens %d, max_loras %d\n",
               L.num_kv_blocks, L.block_size, static_cast<long long>(L.kv_tokens()),
               static_cast<double>(L.kv_bytes) / (1 << 20), L.max_model_len, L.max_num_seqs,
               L.max_num_batched_tokens, L.max_loras);
  if (Status s = register_adapters(engine, specs.value()); !s.is_ok()) return fail(s);
  engine.start();

  server::ServerOptions so;
  so.http.host = a.host;
  so.http.port = static_cast<uint16_t>(a.port);
  so.http.io_threads = a.io_threads;
  so.api_keys = a.api_keys;
  so.admin_keys = a.admin_keys;
  so.max_concurrent_requests = a.max_concurrent_requests;
  so.enable_lora_management = a.enable_lora_management;
  so.ui = !a.no_ui;
  so.limits.max_input_tokens = a.max_input_tokens;
  so.limits.max_total_tokens = a.max_total_tokens;
  so.limits.max_best_of = a.max_best_of;
  so.limits.max_stop_sequences = a.max_stop_sequences;
  so.limits.max_top_n_tokens = a.max_top_n_tokens;
  server::Api api(engine, so);
  so.http.error_response = [&api](const std::string& path, int status, const std::string& message) {
    return api.transport_error(path, status, message);
  };
  server::HttpServer http(so.http, [&api](const server::HttpRequest& r, const server::RouteContext& ctx) {
    return api.handle(r, ctx);
  });
  if (Status s = http.start(); !s.is_ok()) {
    engine.shutdown(0);
    return fail(s);
  }
  std::fprintf(stderr, "loraserve: serving %s with %zu adapter(s); listening on http://%s:%u (TGI/LoRAX and OpenAI "
               "APIs; /openapi.json, /metrics)%s\n",
               model.id().c_str(), engine.adapters().size(), a.host.c_str(), http.port(),
               a.api_keys.empty() ? "" : "; API key required");
  if (so.ui) print_page_address(a.host, http.port());
  std::fflush(stderr);

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  std::fprintf(stderr, "loraserve: %s: no new requests; finishing running ones (up to %.0f s)\n",
               signal_number == SIGINT ? "SIGINT" : "SIGTERM", a.shutdown_grace);
  http.stop_accepting();
  engine.shutdown(a.shutdown_grace);
  http.shutdown(5);
  std::fprintf(stderr, "loraserve: stopped\n");
  return 0;
}

}  // namespace

void register_serve_command(CLI::App& app, CommandRunner& runner) {
  static ServeArgs args;
  CLI::App* cmd = app.add_subcommand("serve", "serve the model and its adapters over HTTP (TGI/LoRAX and OpenAI APIs)");
  cmd->add_option("model_positional", args.model_positional, "the model (vLLM style: loraserve serve MODEL)");
  cmd->add_option("--model", args.model, "model directory or Hub repo id in the local Hub cache");
  cmd->add_option("--model-id", args.model_id, "the model (TGI's spelling of --model)");
  cmd->add_option("--host,--hostname", args.host, "address to listen on (default 0.0.0.0)");
  cmd->add_option("--port,-p", args.port, "port to listen on (default 8080; 0: any free port)");
  cmd->add_option("--device", args.device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--tokenizer", args.tokenizer, "directory (or Hub id) of tokenizer.json and the chat template");
  cmd->add_option("--load-format", args.load_format, "safetensors (default), auto or dummy (random weights)");
  cmd->add_option("--served-model-name", args.served_model_names, "names clients use for the base model")
      ->expected(1, -1);
  cmd->add_option("--lora-adapters", args.lora_adapters,
                  "TGI: comma-separated adapters: Hub id, id@revision or name=/path")
      ->envname("LORA_ADAPTERS");
  cmd->add_option("--lora-modules", args.lora_modules,
                  "vLLM: adapters as name=path or JSON {\"name\",\"path\",\"base_model_name\"}")
      ->expected(1, -1);
  cmd->add_flag("--enable-lora", args.enable_lora, "vLLM: accepted (adapters are always enabled)");
  cmd->add_option("--max-lora-rank", args.max_lora_rank, "refuse adapters of a larger rank; sizes the device LoRA memory to max_loras x this many rank rows (0: any rank, 256 rows per slot)");
  cmd->add_option("--max-loras", args.max_loras, "distinct adapters in one step (device slots)");
  cmd->add_option("--max-cpu-loras", args.max_cpu_loras, "adapters kept in host memory (0: no limit)");
  cmd->add_option("--adapter-dir", args.adapter_dirs,
                  "a directory (or s3://bucket/prefix) whose subdirectories are adapters, loaded by name on first "
                  "request (repeatable)")
      ->expected(1, -1);
  cmd->add_option("--adapter-cache-dir", args.adapter_cache_dir,
                  "where adapters from object storage are downloaded (default: ~/.cache/loraserve/adapters)");
  cmd->add_option("--adapter-cache-gib", args.adapter_cache_gib, "size cap of that cache in GiB (0: none)");
  cmd->add_flag("--enable-lora-management", args.enable_lora_management,
                "POST /v1/load_lora_adapter and /v1/unload_lora_adapter (vLLM's runtime LoRA updating)")
      ->envname("VLLM_ALLOW_RUNTIME_LORA_UPDATING");
  cmd->add_option("--max-model-len", args.max_model_len, "prompt + output tokens per request (default: the model's)");
  cmd->add_option("--max-num-seqs", args.max_num_seqs, "sequences in one step");
  cmd->add_option("--max-num-batched-tokens", args.max_num_batched_tokens, "tokens in one step");
  cmd->add_option("--max-concurrent-requests", args.max_concurrent_requests,
                  "generation requests in flight; beyond: 429 (TGI)");
  cmd->add_option("--max-input-tokens,--max-input-length", args.max_input_tokens,
                  "TGI: prompt tokens (default: max_model_len - 1)");
  cmd->add_option("--max-total-tokens", args.max_total_tokens, "TGI: prompt + new tokens (default: max_model_len)");
  cmd->add_option("--max-best-of", args.max_best_of, "TGI: largest best_of");
  cmd->add_option("--max-stop-sequences", args.max_stop_sequences, "TGI: stop sequences per request");
  cmd->add_option("--max-top-n-tokens", args.max_top_n_tokens, "TGI: largest top_n_tokens");
  cmd->add_option("--api-key", args.api_keys, "require Authorization: Bearer KEY on generation and model routes")
      ->envname("LORASERVE_API_KEY");
  cmd->add_option("--admin-key", args.admin_keys,
                  "require Authorization: Bearer KEY on the adapter management routes (instead of --api-key)")
      ->envname("LORASERVE_ADMIN_KEY");
  cmd->add_option("--io-threads", args.io_threads, "HTTP I/O threads")->check(CLI::Range(1, 64));
  cmd->add_option("--cpu-threads", args.cpu_threads, "cpu: compute threads (0: one per core)")->check(CLI::Range(0, 1024));
  cmd->add_option("--cpu-weights", args.cpu_weights,
                  "cpu: weight storage, f32 (default, the reference), bf16 (fp16 checkpoints stay fp16) or int8")
      ->check(CLI::IsMember({"f32", "bf16", "int8"}));
  cmd->add_option("--block-size", args.block_size, "tokens per KV block");
  cmd->add_option("--gpu-memory-utilization", args.gpu_memory_utilization,
                  "cuda: fraction of device memory the process may use");
  cmd->add_option("--kv-cache-gib", args.kv_cache_gib, "KV cache size in GiB (default: derived)");
  cmd->add_flag("--enforce-eager", args.enforce_eager, "vLLM: no CUDA graphs");
  cmd->add_option("--dtype", args.dtype, "vLLM: accepted (the backend fixes the dtype: cpu float32, cuda bfloat16)");
  cmd->add_flag("--trust-remote-code", args.trust_remote_code, "vLLM: accepted (no remote code is ever run)");
  cmd->add_option("--shutdown-grace", args.shutdown_grace, "seconds running requests may take after SIGTERM");
  cmd->add_option("--parent-pid", args.parent_pid,
                  "stop as on SIGTERM when this process (the one that started the server) ends: for supervisors")
      ->check(CLI::Range(1, 1 << 30));
  cmd->add_flag("--no-ui", args.no_ui, "no playground and dashboard page at GET / (/ is then a health check)");
  cmd->callback([&runner] { runner = [] { return run_serve(args); }; });
}

}  // namespace ls::app
