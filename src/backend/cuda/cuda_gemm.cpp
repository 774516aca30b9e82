// cuda_gemm.cpp: cuBLASLt plans. Row-major out[m, n] = x[m, k] W[n, k]^T is, in cuBLASLt's column-major
// terms, D[n, m] = op(A) B with A = W seen as a [k, n] column-major matrix (transposed) and B = x seen as
// [k, m]; so W is operand A, x operand B, and out's rows are D's columns.
#include "backend/cuda/cuda_gemm.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels/fill.h"
#include "core/timing.h"

namespace ls::cuda {
namespace {

int alignment_of(const void* p, int64_t ld, size_t elem) {
  const uint64_t addr = reinterpret_cast<uint64_t>(p) | static_cast<uint64_t>(ld * static_cast<int64_t>(elem));
  for (int a : {16, 8, 4}) {
    if (addr % a == 0) return a;
  }
  return 2;
}

constexpr int kCandidates = 32;
constexpr int kSearchCandidates = 64;  // GemmTune::kSearch: the heuristic's candidates it varies
constexpr int kTuneReps = 5;
constexpr uint32_t kSearchSplits[] = {1, 2, 3, 4, 5, 6, 8, 10, 12, 16};

// One attribute of an algorithm through cuBLASLt's getter for its configuration or its capabilities (zero where
// the getter fails).
template <typename T, typename Attr>
T attribute_of(cublasStatus_t (*get)(const cublasLtMatmulAlgo_t*, Attr, void*, size_t, size_t*),
               const cublasLtMatmulAlgo_t& algo, Attr attr) {
  T v{};
  size_t written = 0;
  return get(&algo, attr, &v, sizeof(v), &written) == CUBLAS_STATUS_SUCCESS ? v : T{};
}
template <typename T>
T config_of(const cublasLtMatmulAlgo_t& algo, cublasLtMatmulAlgoConfigAttributes_t attr) {
  return attribute_of<T>(cublasLtMatmulAlgoConfigGetAttribute, algo, attr);
}
template <typename T>
T cap_of(const cublasLtMatmulAlgo_t& algo, cublasLtMatmulAlgoCapAttributes_t attr) {
  return attribute_of<T>(cublasLtMatmulAlgoCapGetAttribute, algo, attr);
}

}  // namespace

struct CudaGemm::Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool tuned = false;
  float us = 0.0f;     // the chosen algorithm's median tuning time (0: not timed)
  int candidates = 1;  // how many were timed
  ~Plan() {
    if (d) cublasLtMatrixLayoutDestroy(d);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};

Result<std::unique_ptr<CudaGemm>> CudaGemm::create(cudaStream_t stream, size_t workspace_bytes,
                                                  CudaBackendOptions::GemmTune tune) {
  cublasLtHandle_t handle = nullptr;
  if (cublasLtCreate(&handle) != CUBLAS_STATUS_SUCCESS) return unavailable("cublasLtCreate failed");
  void* workspace = nullptr;
  if (cudaMalloc(&workspace, workspace_bytes) != cudaSuccess) {
    cublasLtDestroy(handle);
    return resource_exhausted("cannot allocate the cuBLASLt workspace");
  }
  return std::unique_ptr<CudaGemm>(new CudaGemm(stream, handle, workspace, workspace_bytes, tune));
}

CudaGemm::CudaGemm(cudaStream_t stream, cublasLtHandle_t handle, void* workspace, size_t workspace_bytes,
                   CudaBackendOptions::GemmTune tune)
    : stream_(stream), handle_(handle), workspace_(workspace), workspace_bytes_(workspace_bytes) {
  set_tune(tune);
}

void CudaGemm::set_tune(CudaBackendOptions::GemmTune tune) {
  tune_ = tune != CudaBackendOptions::GemmTune::kOff;
  search_ = tune == CudaBackendOptions::GemmTune::kSearch;
  cold_ = tune == CudaBackendOptions::GemmTune::kCold || search_;
}

CudaGemm::~CudaGemm() {
  plans_.clear();
  if (flush_) cudaFree(flush_);
  cudaFree(workspace_);
  cublasLtDestroy(handle_);
}

CudaGemm::Plan& CudaGemm::plan_for(const GemmArgs& g, bool capturing) {
  const int ax = alignment_of(g.x, g.ldx, 2), aw = alignment_of(g.w, g.ldw, 2);
  const int ao = alignment_of(g.out, g.ldo, g.out_f32 ? 4 : 2);
  const Key key{g.m, g.n, g.k, g.ldx, g.ldw, g.ldo, (g.out_f32 ? 1 : 0) | (g.bias ? 2 : 0), ax, aw, ao, g.sm_target};
  auto it = plans_.find(key);
  if (it != plans_.end()) return *it->second;

  auto plan = std::make_unique<Plan>();
  LS_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t trans = CUBLAS_OP_T, no_trans = CUBLAS_OP_N;
  LS_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans, sizeof(trans)));
  LS_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, &no_trans, sizeof(no_trans)));
  if (g.bias) {
    const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
    const cudaDataType_t bias_type = CUDA_R_16BF;
    LS_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
    LS_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type,
                                                   sizeof(bias_type)));
  }
  if (g.sm_target > 0) {
    const int32_t sms = g.sm_target;
    LS_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_SM_COUNT_TARGET, &sms, sizeof(sms)));
  }
  const cudaDataType_t out_type = g.out_f32 ? CUDA_R_32F : CUDA_R_16BF;
  LS_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->a, CUDA_R_16BF, g.k, g.n, g.ldw));
  LS_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->b, CUDA_R_16BF, g.k, g.m, g.ldx));
  LS_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->d, out_type, g.n, g.m, g.ldo));

  cublasLtMatmulPreference_t pref = nullptr;
  LS_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t ws = workspace_bytes_;
  const uint32_t a32 = static_cast<uint32_t>(aw), b32 = static_cast<uint32_t>(ax), d32 = static_cast<uint32_t>(ao);
  LS_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
  LS_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &a32, sizeof(a32)));
  LS_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &b32, sizeof(b32)));
  LS_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &d32, sizeof(d32)));
  LS_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &d32, sizeof(d32)));
  std::vector<cublasLtMatmulHeuristicResult_t> results(search_ ? kSearchCandidates : kCandidates);
  int count = 0;
  LS_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(handle_, plan->desc, plan->a, plan->b, plan->d, plan->d, pref,
                                                 static_cast<int>(results.size()), results.data(), &count));
  cublasLtMatmulPreferenceDestroy(pref);
  LS_CHECK(count > 0) << "cuBLASLt has no algorithm for m=" << g.m << " n=" << g.n << " k=" << g.k
                      << (g.out_f32 ? " (f32 out)" : "") << (g.bias ? " with bias" : "");
  plan->algo = results[0].algo;
  plan->candidates = 1;
  if (tune_ && !capturing) {
    std::vector<cublasLtMatmulAlgo_t> candidates;
    for (int i = 0; i < count; ++i) {
      if (results[i].state == CUBLAS_STATUS_SUCCESS) candidates.push_back(results[i].algo);
    }
    if (search_) candidates = variants(*plan, candidates);
    if (candidates.size() > 1) tune(*plan, g, candidates);
  }
  return *plans_.emplace(key, std::move(plan)).first->second;
}

// Times each candidate on the real operands (they are only written to `out`, which the caller overwrites), as
// the forward pass runs it: with the weights cold in L2 (a read sweep of twice the L2 size before each timed
// launch, leaving clean lines; the decode step's ~16 GB of weights never stay there) and with the GPU busy
// from the sweep on, so the events time the kernel and not the host's launch latency. Median of kTuneReps per
// candidate. GemmTune::kWarm skips the sweep (the first version's way: repeated launches on L2-warm
// weights), for comparison.
void CudaGemm::tune(Plan& plan, const GemmArgs& g, const std::vector<cublasLtMatmulAlgo_t>& candidates) {
  if (cold_ && !flush_ && flush_bytes_ == 0) {
    int device = 0, l2 = 0;
    LS_CUDA_CHECK(cudaGetDevice(&device));
    LS_CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, device));
    flush_bytes_ = std::max<size_t>(2 * static_cast<size_t>(l2), 16u << 20);
    if (cudaMalloc(&flush_, flush_bytes_) != cudaSuccess) {  // tune without the flush rather than fail
      (void)cudaGetLastError();
      flush_ = nullptr;  // flush_bytes_ stays set: no second try
    }
  }
  cudaEvent_t start, stop;
  LS_CUDA_CHECK(cudaEventCreate(&start));
  LS_CUDA_CHECK(cudaEventCreate(&stop));
  double best = -1.0;
  for (const cublasLtMatmulAlgo_t& algo : candidates) {
    enqueue(plan, g, algo);  // warm-up
    std::vector<double> times;
    for (int rep = 0; rep < kTuneReps; ++rep) {
      if (flush_) LS_CUDA_CHECK(launch_read_sweep(flush_, static_cast<int64_t>(flush_bytes_), Stream{stream_, false}));
      LS_CUDA_CHECK(cudaEventRecord(start, stream_));
      enqueue(plan, g, algo);
      LS_CUDA_CHECK(cudaEventRecord(stop, stream_));
      LS_CUDA_CHECK(cudaEventSynchronize(stop));
      float ms = 0;
      LS_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
      times.push_back(ms);
    }
    const double t = median(times);
    if (best < 0 || t < best) {
      best = t;
      plan.algo = algo;
    }
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  plan.tuned = true;
  plan.us = static_cast<float>(best * 1000.0);
  plan.candidates = static_cast<int>(candidates.size());
}

// Each seed as it is, and where its algorithm splits K, with every split count of kSearchSplits and every
// reduction scheme the algorithm supports, that cublasLtMatmulAlgoCheck accepts within the workspace. The heuristic
// returns each tile shape with one split count of its own choosing; the decode projections' narrow outputs (few
// tiles for 132 SMs) are where other counts may stream the weights faster.
std::vector<cublasLtMatmulAlgo_t> CudaGemm::variants(const Plan& plan,
                                                     const std::vector<cublasLtMatmulAlgo_t>& seeds) const {
  std::vector<cublasLtMatmulAlgo_t> out;
  auto add = [&](const cublasLtMatmulAlgo_t& a) {
    const bool seen = std::any_of(out.begin(), out.end(), [&](const cublasLtMatmulAlgo_t& o) {
      return std::memcmp(o.data, a.data, sizeof(a.data)) == 0;
    });
    if (!seen) out.push_back(a);
  };
  constexpr uint32_t kSchemes[] = {CUBLASLT_REDUCTION_SCHEME_NONE, CUBLASLT_REDUCTION_SCHEME_INPLACE,
                                   CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE, CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE};
  for (const cublasLtMatmulAlgo_t& seed : seeds) {
    add(seed);
    if (cap_of<int32_t>(seed, CUBLASLT_ALGO_CAP_SPLITK_SUPPORT) == 0) continue;
    const uint32_t mask = cap_of<uint32_t>(seed, CUBLASLT_ALGO_CAP_REDUCTION_SCHEME_MASK);
    for (uint32_t splits : kSearchSplits) {
      for (uint32_t scheme : kSchemes) {
        if ((splits == 1) != (scheme == CUBLASLT_REDUCTION_SCHEME_NONE)) continue;
        if (scheme != CUBLASLT_REDUCTION_SCHEME_NONE && (mask & scheme) == 0) continue;
        cublasLtMatmulAlgo_t a = seed;
        if (cublasLtMatmulAlgoConfigSetAttribute(&a, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splits, sizeof(splits)) !=
                CUBLAS_STATUS_SUCCESS ||
            cublasLtMatmulAlgoConfigSetAttribute(&a, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &scheme, sizeof(scheme)) !=
                CUBLAS_STATUS_SUCCESS)
          continue;
        cublasLtMatmulHeuristicResult_t check{};
        if (cublasLtMatmulAlgoCheck(handle_, plan.desc, plan.a, plan.b, plan.d, plan.d, &a, &check) !=
                CUBLAS_STATUS_SUCCESS ||
            check.workspaceSize > workspace_bytes_)
          continue;
        add(a);
      }
    }
  }
  return out;
}

std::vector<std::string> CudaGemm::describe() const {
  std::vector<std::string> lines;
  for (const auto& [key, plan] : plans_) {
    const cublasLtMatmulAlgo_t& a = plan->algo;
    char line[256];
    std::snprintf(line, sizeof(line),
                  "m %lld n %lld k %lld%s%s: algo %d tile %u stages %u splits %u reduction %u swizzle %u cluster %u, "
                  "%.1f us, best of %d",
                  static_cast<long long>(std::get<0>(key)), static_cast<long long>(std::get<1>(key)),
                  static_cast<long long>(std::get<2>(key)), (std::get<6>(key) & 1) ? " f32" : "",
                  std::get<10>(key) ? (" on " + std::to_string(std::get<10>(key)) + " SMs").c_str() : "",
                  config_of<int32_t>(a, CUBLASLT_ALGO_CONFIG_ID), config_of<uint32_t>(a, CUBLASLT_ALGO_CONFIG_TILE_ID),
                  config_of<uint32_t>(a, CUBLASLT_ALGO_CONFIG_STAGES_ID),
                  config_of<uint32_t>(a, CUBLASLT_ALGO_CONFIG_SPLITK_NUM),
                  config_of<uint32_t>(a, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME),
                  config_of<uint32_t>(a, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING),
                  config_of<uint16_t>(a, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID), plan->us, plan->candidates);
    lines.push_back(line);
  }
  return lines;
}

void CudaGemm::enqueue(const Plan& plan, const GemmArgs& g, const cublasLtMatmulAlgo_t& algo) {
  if (g.bias) {
    LS_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias,
                                                   sizeof(g.bias)));
  }
  const float alpha = 1.0f, beta = 0.0f;
  LS_CUBLAS_CHECK(cublasLtMatmul(handle_, plan.desc, &alpha, g.w, plan.a, g.x, plan.b, &beta, g.out, plan.d, g.out,
                                 plan.d, &algo, workspace_, workspace_bytes_, stream_));
}

void CudaGemm::run(const GemmArgs& g, bool capturing) {
  if (g.m == 0 || g.n == 0) return;
  const Plan& plan = plan_for(g, capturing);
  enqueue(plan, g, plan.algo);
}

}  // namespace ls::cuda
