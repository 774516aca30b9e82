// cuda_bench.h: the device measurements bench/engine_bench and the kernel microbenchmarks print their floors with:
// copy bandwidth, bf16 GEMM rate, and event timing of work enqueued on a CudaBackend's stream. No CUDA headers, so
// code built by the host compiler can include it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "backend/backend.h"

namespace ls {

// Device-to-device copy bandwidth in bytes/s, counting bytes read plus bytes written (median of reps).
double cuda_copy_bandwidth(Backend& backend, size_t bytes, int reps);
// bf16 GEMM rate in FLOP/s of an n x n x n product through the backend's linear (median of reps).
double cuda_gemm_flops(Backend& backend, int64_t n, int reps);
// Milliseconds of device time of the work `enqueue` puts on the backend's stream (events around it).
double cuda_time_ms(Backend& backend, const std::function<void()>& enqueue);
// Runs `enqueue` (work on the backend's stream) inside a profiler range and waits for it: a profiler started with
// its collection off (`ncu --profile-from-start off`) sees only these kernels.
void cuda_profiled(Backend& backend, const std::function<void()>& enqueue);
// The GPU's name and memory, e.g. "NVIDIA H100 80GB HBM3, 132 SMs, 79.2 GiB".
std::string cuda_device_description(Backend& backend);

}  // namespace ls
