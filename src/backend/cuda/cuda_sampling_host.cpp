// cuda_sampling_host.cpp: the sampling ops the CUDA backend has no kernel for yet (penalties, log-probabilities,
// typical-p draws) run on the host through the CPU backend's reference rows: the logits come down, the result
// goes back up. Correct and synchronous; kernels replace these one by one (each then tested against the CPU
// twin like every other op).
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cuda/cuda_backend.h"

namespace ls {
namespace {

std::vector<float> download_rows(Backend& b, const Tensor& logits) {
  std::vector<float> host(static_cast<size_t>(logits.rows * logits.cols));
  for (int64_t r = 0; r < logits.rows; ++r)
    b.copy_to_host(host.data() + r * logits.cols, logits.ptr<float>() + r * logits.ld, logits.cols * sizeof(float));
  return host;
}

}  // namespace

void CudaBackend::sample_on_host(Tensor logits, const SamplingParams* params, int32_t* tokens) {
  const std::vector<float> host = download_rows(*this, logits);
  std::vector<int32_t> out(static_cast<size_t>(logits.rows));
  for (int64_t r = 0; r < logits.rows; ++r) out[r] = sample_row_host(host.data() + r * logits.cols, logits.cols, params[r]);
  copy_to_device(tokens, out.data(), out.size() * sizeof(int32_t));
}

void CudaBackend::apply_penalties(Tensor logits, const TokenCounts& counts) {
  LS_CHECK(logits.dtype == DType::kF32 && counts.num_rows == logits.rows) << "cuda backend: apply_penalties shape";
  LS_CHECK(!capturing_) << "cuda backend: apply_penalties cannot be captured";
  if (logits.rows == 0) return;
  std::vector<float> host = download_rows(*this, logits);
  apply_penalties_host(host.data(), logits.cols, logits.cols, counts);
  for (int64_t r = 0; r < logits.rows; ++r)
    copy_to_device(logits.ptr<float>() + r * logits.ld, host.data() + r * logits.cols, logits.cols * sizeof(float));
}

void CudaBackend::logprobs(Tensor logits, const int32_t* targets, int32_t top_n, float* logprob, int32_t* top_ids,
                           float* top_logprobs) {
  LS_CHECK(logits.dtype == DType::kF32) << "cuda backend: logprobs input must be float32";
  LS_CHECK(top_n >= 0 && top_n <= kMaxTopLogprobs) << "cuda backend: top_n out of range";
  LS_CHECK(!capturing_) << "cuda backend: logprobs cannot be captured";
  if (logits.rows == 0) return;
  const std::vector<float> host = download_rows(*this, logits);
  const auto rows = static_cast<size_t>(logits.rows), n = static_cast<size_t>(top_n);
  std::vector<int32_t> t(rows), ids(rows * n);
  std::vector<float> lp(rows), top(rows * n);
  copy_to_host(t.data(), targets, rows * sizeof(int32_t));
  for (size_t r = 0; r < rows; ++r)
    logprobs_row_host(host.data() + r * logits.cols, logits.cols, t[r], top_n, &lp[r], ids.data() + r * n,
                      top.data() + r * n);
  copy_to_device(logprob, lp.data(), rows * sizeof(float));
  if (n == 0) return;
  copy_to_device(top_ids, ids.data(), ids.size() * sizeof(int32_t));
  copy_to_device(top_logprobs, top.data(), top.size() * sizeof(float));
}

}  // namespace ls
