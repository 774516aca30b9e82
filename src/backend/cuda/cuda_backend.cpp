// cuda_backend.cpp: CudaBackend's device setup, memory, copies, batch upload and graph capture. The ops are in
// cuda_ops.cpp.
#include "backend/cuda/cuda_backend.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels/fill.h"

namespace ls {
namespace {

constexpr size_t kBatchArenaBytes = 32u << 20;      // every index array of one step
constexpr size_t kParamsArenaBytes = 256u << 10;    // sampling params of one step
constexpr size_t kPenaltyArenaBytes = 8u << 20;     // token counts of apply_penalties (rows go in groups that fit)
constexpr size_t kGemmWorkspaceBytes = 32u << 20;
constexpr size_t kConvertChunkFloats = 16u << 20;   // upload_f32 converts 64 MB at a time
constexpr size_t kArrivalCounters = 1u << 16;       // decode attention: sequences x KV heads per step

class CudaGraph final : public OpGraph {
 public:
  CudaGraph(cudaGraphExec_t exec, cudaStream_t stream) : exec_(exec), stream_(stream) {}
  ~CudaGraph() override { cudaGraphExecDestroy(exec_); }
  void replay() override { LS_CUDA_CHECK(cudaGraphLaunch(exec_, stream_)); }

 private:
  cudaGraphExec_t exec_;
  cudaStream_t stream_;
};

}  // namespace

Result<std::unique_ptr<Backend>> make_cuda_backend(const CudaBackendOptions& options) {
  LS_ASSIGN_OR_RETURN(std::unique_ptr<CudaBackend> b, CudaBackend::create(options));
  return std::unique_ptr<Backend>(std::move(b));
}

CudaBackend* as_cuda_backend(Backend& backend) { return dynamic_cast<CudaBackend*>(&backend); }

Result<std::unique_ptr<CudaBackend>> CudaBackend::create(const CudaBackendOptions& options) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0)
    return unavailable(std::string("no CUDA device: ") + (err != cudaSuccess ? cudaGetErrorString(err) : "0 devices"));
  std::unique_ptr<CudaBackend> b(new CudaBackend());
  if (cudaSetDevice(0) != cudaSuccess) return unavailable("cudaSetDevice(0) failed");
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) return unavailable("cudaGetDeviceProperties failed");
  if (prop.major < 9) return unavailable(std::string("the CUDA backend needs sm_90 (Hopper); found ") + prop.name);
  b->num_sms_ = prop.multiProcessorCount;
  b->options_ = options;
  if (cudaStreamCreateWithFlags(&b->stream_, cudaStreamNonBlocking) != cudaSuccess ||
      cudaStreamCreateWithFlags(&b->copy_stream_, cudaStreamNonBlocking) != cudaSuccess ||
      cudaEventCreateWithFlags(&b->ops_mark_, cudaEventDisableTiming) != cudaSuccess ||
      cudaStreamCreateWithFlags(&b->side_stream_, cudaStreamNonBlocking) != cudaSuccess)
    return unavailable("cudaStreamCreate failed");
  for (cudaEvent_t* e : {&b->fork_event_, &b->join_event_})
    if (cudaEventCreateWithFlags(e, cudaEventDisableTiming) != cudaSuccess) return unavailable("cudaEventCreate failed");
  LS_ASSIGN_OR_RETURN(b->gemm_, cuda::CudaGemm::create(b->stream_, kGemmWorkspaceBytes, options.gemm_tune));
  LS_ASSIGN_OR_RETURN(b->batch_upload_, cuda::StagedUpload::create(kBatchArenaBytes));
  LS_ASSIGN_OR_RETURN(b->params_upload_, cuda::StagedUpload::create(kParamsArenaBytes));
  LS_ASSIGN_OR_RETURN(b->penalty_upload_, cuda::StagedUpload::create(kPenaltyArenaBytes));
  LS_ASSIGN_OR_RETURN(b->arrivals_, b->allocate(kArrivalCounters * sizeof(int32_t)));
  LS_CUDA_CHECK(cudaMemsetAsync(b->arrivals_.data(), 0, b->arrivals_.bytes(), b->stream_));
  LS_ASSIGN_OR_RETURN(b->lora_counters_, b->allocate(2 * sizeof(int32_t)));
  LS_CUDA_CHECK(cudaMemsetAsync(b->lora_counters_.data(), 0, b->lora_counters_.bytes(), b->stream_));
  return b;
}

void CudaBackend::set_options(const CudaBackendOptions& options) {
  LS_CHECK(!capturing_) << "cuda backend: options changed while capturing a graph";
  options_ = options;
  gemm_->set_tune(options.gemm_tune);
}

std::vector<std::string> CudaBackend::gemm_plans() const { return gemm_->describe(); }

CudaBackend::~CudaBackend() {
  if (stream_) cudaStreamSynchronize(stream_);
  gemm_.reset();
  convert_staging_ = Buffer();
  attention_scratch_ = Buffer();
  arrivals_ = Buffer();
  skinny_accumulator_ = Buffer();
  lora_scratch_ = Buffer();
  lora_sums_ = Buffer();
  lora_counters_ = Buffer();
  batch_upload_ = cuda::StagedUpload();
  params_upload_ = cuda::StagedUpload();
  penalty_upload_ = cuda::StagedUpload();
  if (copy_stream_) cudaStreamSynchronize(copy_stream_);
  if (ops_mark_) cudaEventDestroy(ops_mark_);
  if (side_stream_) cudaStreamSynchronize(side_stream_);
  for (cudaEvent_t e : {fork_event_, join_event_})
    if (e) cudaEventDestroy(e);
  if (side_stream_) cudaStreamDestroy(side_stream_);
  if (copy_stream_) cudaStreamDestroy(copy_stream_);
  if (stream_) cudaStreamDestroy(stream_);
}

Backend::MemoryInfo CudaBackend::memory_info() const {
  MemoryInfo info;
  LS_CUDA_CHECK(cudaMemGetInfo(&info.free, &info.total));
  return info;
}

Result<Buffer> CudaBackend::allocate(size_t bytes) {
  LS_CHECK(!capturing_) << "cuda backend: allocation while capturing a graph";
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, std::max<size_t>(bytes, 256));
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free allocation error
    return resource_exhausted("cudaMalloc of " + std::to_string(bytes) + " bytes failed: " + cudaGetErrorString(err));
  }
  return Buffer(p, bytes, [](void* q) { cudaFree(q); });
}

void CudaBackend::copy_to_device(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  LS_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
  LS_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the caller may free src at once
}

void CudaBackend::copy_to_host(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  LS_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
  LS_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::synchronize() { LS_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

void CudaBackend::upload_f32(void* dst, const float* src, size_t n) {
  if (n == 0) return;
  if (!convert_staging_.data()) convert_staging_ = allocate(kConvertChunkFloats * sizeof(float)).value();
  auto* staging = static_cast<float*>(convert_staging_.data());
  for (size_t done = 0; done < n; done += kConvertChunkFloats) {
    const size_t count = std::min(kConvertChunkFloats, n - done);
    // Stream order keeps the next chunk's copy behind this chunk's conversion.
    LS_CUDA_CHECK(cudaMemcpyAsync(staging, src + done, count * sizeof(float), cudaMemcpyHostToDevice, stream_));
    LS_CUDA_CHECK(cuda::launch_f32_to_bf16(staging, static_cast<uint16_t*>(dst) + done, static_cast<int64_t>(count),
                                           launch_stream()));
  }
  LS_CUDA_CHECK(cudaStreamSynchronize(stream_));  // src may be freed when we return
}

void CudaBackend::fill_uniform(Tensor t, uint64_t seed, float lo, float hi) {
  LS_CHECK(t.dtype == DType::kBF16 || t.dtype == DType::kF32) << "cuda backend: fill_uniform of bf16 or f32 only";
  LS_CUDA_CHECK(cuda::launch_fill_uniform(t.data, t.ld, t.rows, t.cols, t.dtype == DType::kF32, seed, lo, hi, launch_stream()));
}

BatchMeta CudaBackend::upload_batch(const BatchMeta& host) {
  LS_CHECK(!capturing_) << "cuda backend: upload_batch while capturing a graph (upload before capture)";
  struct Part {
    const int32_t* src;
    int64_t count;
    const int32_t** dst;
  };
  BatchMeta d = host;
  const int64_t T = host.num_tokens, S = host.num_seqs, G = host.num_lora_segments;
  const Part parts[] = {
      {host.token_ids, T, &d.token_ids},
      {host.positions, T, &d.positions},
      {host.kv_slots, T, &d.kv_slots},
      {host.query_start, S + 1, &d.query_start},
      {host.context_lens, S, &d.context_lens},
      {host.block_tables, S * host.max_blocks_per_seq, &d.block_tables},
      {host.logit_rows, host.num_logit_rows, &d.logit_rows},
      {host.lora_seg_start, G + 1, &d.lora_seg_start},
      {host.lora_seg_slot, G, &d.lora_seg_slot},
      {host.token_lora_slot, T, &d.token_lora_slot},
  };
  auto* staging = static_cast<char*>(batch_upload_.begin());
  auto* device = static_cast<char*>(batch_upload_.device());
  size_t offset = 0;
  for (const Part& p : parts) {
    if (!p.src) {
      *p.dst = nullptr;
      continue;
    }
    const size_t bytes = static_cast<size_t>(p.count) * sizeof(int32_t);
    LS_CHECK(offset + bytes <= batch_upload_.capacity())
        << "batch metadata exceeds the " << batch_upload_.capacity() << "-byte arena";
    std::memcpy(staging + offset, p.src, bytes);
    *p.dst = reinterpret_cast<const int32_t*>(device + offset);
    offset += (bytes + 15) / 16 * 16;
  }
  batch_upload_.commit(offset, stream_);
  return d;
}

Result<Buffer> CudaBackend::allocate_host(size_t bytes) {
  void* p = nullptr;
  if (cudaMallocHost(&p, std::max<size_t>(bytes, 1)) != cudaSuccess) {
    cudaGetLastError();
    return resource_exhausted("pinned host allocation of " + std::to_string(bytes) + " bytes failed");
  }
  return Buffer(p, bytes, [](void* q) { cudaFreeHost(q); });
}

uint64_t CudaBackend::copy_beside(const HostCopy* copies, size_t n, CopyAfter after) {
  LS_CHECK(!capturing_) << "cuda backend: copy_beside while capturing a graph";
  // kOps: the copies go after every op queued so far (they may overwrite what those ops read). Either way they go
  // after the copies queued before (one stream), and later ops never wait for them.
  if (after == CopyAfter::kOps) {
    LS_CUDA_CHECK(cudaEventRecord(ops_mark_, stream_));
    LS_CUDA_CHECK(cudaStreamWaitEvent(copy_stream_, ops_mark_, 0));
  }
  for (size_t i = 0; i < n; ++i) {
    const HostCopy& c = copies[i];
    if (c.width == 0 || c.rows == 0) continue;
    if (c.rows == 1) {
      LS_CUDA_CHECK(cudaMemcpyAsync(c.dst, c.src, c.width, cudaMemcpyHostToDevice, copy_stream_));
    } else {
      LS_CUDA_CHECK(cudaMemcpy2DAsync(c.dst, c.dst_pitch, c.src, c.src_pitch, c.width, c.rows, cudaMemcpyHostToDevice,
                                      copy_stream_));
    }
  }
  return copy_fences_.record(copy_stream_);
}

uint64_t CudaBackend::ops_fence() {
  LS_CHECK(!capturing_) << "cuda backend: ops_fence while capturing a graph";
  return op_fences_.record(stream_);
}

CudaBackend::StreamFences::~StreamFences() {
  for (auto& f : pending_) cudaEventDestroy(f.second);
  for (cudaEvent_t e : spare_) cudaEventDestroy(e);
}

uint64_t CudaBackend::StreamFences::record(cudaStream_t stream) {
  cudaEvent_t e = nullptr;
  if (!spare_.empty()) {
    e = spare_.back();
    spare_.pop_back();
  } else {
    LS_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  }
  LS_CUDA_CHECK(cudaEventRecord(e, stream));
  pending_.emplace_back(++last_, e);
  return last_;
}

bool CudaBackend::StreamFences::done(uint64_t fence) {
  while (!pending_.empty() && fence > done_) {
    const cudaError_t err = cudaEventQuery(pending_.front().second);
    if (err == cudaErrorNotReady) break;
    LS_CUDA_CHECK(err);
    done_ = pending_.front().first;
    spare_.push_back(pending_.front().second);
    pending_.pop_front();
  }
  return fence <= done_;
}

void CudaBackend::StreamFences::wait(uint64_t fence) {
  for (const auto& f : pending_) {
    if (f.first > fence) break;
    LS_CUDA_CHECK(cudaEventSynchronize(f.second));
  }
  done(fence);
}

float* CudaBackend::scratch(Buffer& buffer, size_t n) {
  const size_t bytes = n * sizeof(float);
  if (buffer.bytes() < bytes) {
    LS_CHECK(!capturing_) << "cuda backend: scratch must grow while capturing a graph (warm up before capture)";
    if (buffer.data()) retired_scratch_.push_back(std::move(buffer));
    buffer = allocate(std::max<size_t>(bytes, 4u << 20)).value();
  }
  return static_cast<float*>(buffer.data());
}

float* CudaBackend::zeroed_scratch(Buffer& buffer, size_t n) {
  const size_t bytes = n * sizeof(float);
  if (buffer.bytes() < bytes) {
    LS_CHECK(!capturing_) << "cuda backend: scratch must grow while capturing a graph (warm up before capture)";
    if (buffer.data()) retired_scratch_.push_back(std::move(buffer));
    buffer = allocate(std::max<size_t>(bytes, 4u << 20)).value();
    LS_CUDA_CHECK(cudaMemsetAsync(buffer.data(), 0, buffer.bytes(), stream_));
  }
  return static_cast<float*>(buffer.data());
}

Status CudaBackend::begin_capture() {
  if (capturing_) return internal_error("cuda backend: already capturing");
  LS_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  capturing_ = true;
  return Status::ok();
}

Result<std::unique_ptr<OpGraph>> CudaBackend::end_capture() {
  if (!capturing_) return internal_error("cuda backend: end_capture without begin_capture");
  capturing_ = false;
  cudaGraph_t graph = nullptr;
  LS_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
  cudaGraphExec_t exec = nullptr;
  const cudaError_t err = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  if (err != cudaSuccess) return internal_error(std::string("cudaGraphInstantiate: ") + cudaGetErrorString(err));
  return std::unique_ptr<OpGraph>(new CudaGraph(exec, stream_));
}

}  // namespace ls
