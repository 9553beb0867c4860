// common.cuh: shared infrastructure of llmsim-bench.
//
//   * error checking (CUDA_CHECK: prints file:line and the error string, exits 1),
//   * the options and the per-process context (device, stream, CSV writer),
//   * the CSV schema (one Row per measured point),
//   * timing with CUDA events behind a "blocker" kernel, with adaptive repetitions,
//   * device buffers, rotation over copies larger than L2, random initialisation,
//   * the relative-error check used by every benchmark.
//
// Units everywhere: seconds for times, bytes for sizes, FLOPs (not FLOP/s) for work.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace llmsim {

// ------------------------------------------------------------------------------ errors

[[noreturn]] void die_cuda(cudaError_t err, const char* expr, const char* file, int line);
[[noreturn]] void die(const char* file, int line, const std::string& msg);

// Every CUDA runtime call goes through CUDA_CHECK. A failure prints where and why and exits 1
// (rows already written stay in the CSV: the writer flushes after each row).
#define CUDA_CHECK(expr)                                                       \
  do {                                                                         \
    const cudaError_t llmsim_err_ = (expr);                                    \
    if (llmsim_err_ != cudaSuccess)                                            \
      ::llmsim::die_cuda(llmsim_err_, #expr, __FILE__, __LINE__);              \
  } while (0)

// After a kernel launch: catches launch-configuration errors immediately.
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

#define LLMSIM_REQUIRE(cond, msg)                                              \
  do {                                                                         \
    if (!(cond)) ::llmsim::die(__FILE__, __LINE__, (msg));                     \
  } while (0)

// ------------------------------------------------------------------------------ options

struct Options {
  std::string out_path;          // empty: stdout
  std::string shapes_path;       // GEMM shapes CSV (model,op,n,k); empty: built-in llama-3-8b
  std::vector<long long> tokens; // GEMM M values; empty: defaults (quick or full)
  bool quick = false;            // shrink every grid (smoke test)
  size_t hbm_bytes = 0;          // per-array size for the hbm class; 0: 1 GiB (256 MiB quick)
  size_t rotate_bytes = 256ull << 20;  // rotate inputs over at least this many bytes
  double min_time_s = -1;        // per point; <0: 0.2 s (0.03 s quick)
  int min_reps = -1;             // <0: 10 (5 quick)
  int max_reps = -1;             // <0: 100 (30 quick)
  int warmup = 3;                // warm-up calls before timing (>= 3)
  unsigned long long seed = 20240601ull;
  int device = 0;
  bool fp8_fast_accum = false;   // cuBLASLt CUBLASLT_MATMUL_DESC_FAST_ACCUM for gemm_fp8
  bool header = true;            // write the CSV header line
};

// ------------------------------------------------------------------------------ CSV

// The exact column list of every row (README.md documents each column).
extern const char* const kCsvHeader;

// One measured point. Integers < 0 and NaN floats are written as empty fields.
struct Row {
  std::string op_class, op, dtype;
  long long m = -1, n = -1, k = -1, batch = -1, ctx = -1, heads = -1, kv_heads = -1, head_dim = -1;
  long long flops = -1, bytes = -1;  // ideal counts: each operand read once, output written once
  double median_s = NAN, p10_s = NAN, p90_s = NAN;
  long long reps = -1;
  double rel_err = NAN;
  std::string note;                  // ';'-separated key=value notes; FAILED_CHECK on a failed check
};

class CsvWriter {
 public:
  CsvWriter(const std::string& path, bool header);
  ~CsvWriter();
  CsvWriter(const CsvWriter&) = delete;
  CsvWriter& operator=(const CsvWriter&) = delete;
  void write(const Row& row);  // writes one line and flushes
  long long rows() const { return rows_; }

 private:
  FILE* f_ = nullptr;
  bool own_ = false;
  long long rows_ = 0;
};

std::string format_row(const Row& row);  // one CSV line without the newline (exposed for tests)

// ------------------------------------------------------------------------------ timing

struct TimingPolicy {
  int warmup = 3;               // 1 cold call + (warmup-1) probe calls, none of them counted
  int min_reps = 10;            // at least this many samples ...
  int max_reps = 100;           // ... at most this many ...
  double min_time_s = 0.2;      // ... until this much GPU time has been sampled
  int min_reps_large = 5;       // very long points: as few as this many samples
  double large_point_s = 1.0;   // "very long": min_reps samples would take longer than this
  double target_sample_s = 20e-6;  // samples shorter than this average several back-to-back calls
  int max_inner = 64;           // at most this many calls per sample
  int max_calls_per_round = 128;   // calls queued behind one blocker (well below the launch-queue depth)
};

struct TimingResult {
  double median_s = NAN, p10_s = NAN, p90_s = NAN;  // per call, seconds
  int reps = 0;                 // number of samples
  int inner = 1;                // calls averaged per sample
  bool blocker_timeout = false; // the blocker released itself (host too slow): samples may hold gaps
};

// Holds the stream with a spinning kernel while the host queues a round of timed calls, so
// that the events measure back-to-back GPU execution, not the host's launch rate. The kernel
// polls a flag in mapped host memory and gives up after a timeout (never deadlocks).
class Blocker {
 public:
  void init();
  void hold(cudaStream_t stream);  // enqueue the spinning kernel
  void release();                  // let it finish (call after queueing the round)
  bool timed_out() const;
  void destroy();

 private:
  volatile int* host_flags_ = nullptr;  // [0]: release flag, [1]: timed-out flag
  int* dev_flags_ = nullptr;
};

// ------------------------------------------------------------------------------ context

struct Context {
  Options opt;
  TimingPolicy policy;
  int device = 0;
  cudaDeviceProp prop{};
  int cc = 0;                    // compute capability, e.g. 90
  int sm_count = 0;
  size_t l2_bytes = 0;
  size_t rotate_bytes = 0;       // max(opt.rotate_bytes, 4 x L2)
  cudaStream_t stream = nullptr;
  Blocker blocker;
  std::vector<cudaEvent_t> events;
  double* acc = nullptr;         // device scratch for the error reductions (2 doubles)
  CsvWriter* csv = nullptr;
  int failed_checks = 0;

  void emit(const Row& row);     // write a row and print a progress line to stderr
};

// Sets up the device (exits 2 when there is none); prints the device description to stderr.
void init_context(Context& ctx);
void destroy_context(Context& ctx);

// Computes the timing statistics of `call(iter)`, which must enqueue one unit of work on
// ctx.stream (iter counts up from 0 and selects the rotation copy). Sequence:
//   1. one cold call (module loading, library initialisation), synchronised, not timed;
//   2. warmup-1 probe calls queued behind the blocker, each between events: the fastest one
//      estimates the per-call time t;
//   3. inner = ceil(target_sample / t) calls per sample (1 for calls >= 20 us);
//      reps = clamp(ceil(min_time / (inner t)), min_reps, max_reps), lowered towards
//      min_reps_large when min_reps samples would exceed large_point_s;
//   4. rounds of samples queued behind the blocker with one event between consecutive samples.
// Returns median, 10th and 90th percentile of the per-call time (sample time / inner).
template <class Call>
TimingResult time_gpu(Context& ctx, Call&& call);

// Statistics of a sample vector (seconds): median and linear-interpolated percentiles.
void summarize(std::vector<double>& samples, TimingResult& out);
double percentile_sorted(const std::vector<double>& sorted, double p);

// ------------------------------------------------------------------------------ memory

// Owning device allocation. try_alloc returns false (instead of exiting) when the device is out
// of memory, so a benchmark can skip a point that does not fit.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) { alloc(bytes); }
  ~DeviceBuffer() { release(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) { o.ptr_ = nullptr; o.bytes_ = 0; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) { release(); ptr_ = o.ptr_; bytes_ = o.bytes_; o.ptr_ = nullptr; o.bytes_ = 0; }
    return *this;
  }
  void alloc(size_t bytes);       // exits on failure
  bool try_alloc(size_t bytes);   // false on cudaErrorMemoryAllocation
  void release();
  template <class T> T* as() const { return static_cast<T*>(ptr_); }
  void* get() const { return ptr_; }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

inline size_t align_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

// Number of copies of a `bytes_per_copy` working set needed so that cycling through them touches
// at least ctx.rotate_bytes (so the data of one call was evicted from L2 by the time it is used
// again). At least `min_copies`, at most `max_copies`.
int rotation_copies(const Context& ctx, size_t bytes_per_copy, int min_copies = 1, int max_copies = 65536);

// ------------------------------------------------------------------------------ random data

// Deterministic uniform values in [lo, hi) from (seed, index) (counter-based, no state).
void fill_uniform(Context& ctx, __nv_bfloat16* p, size_t n, unsigned long long seed, float lo, float hi);
void fill_uniform(Context& ctx, float* p, size_t n, unsigned long long seed, float lo, float hi);
void fill_uniform(Context& ctx, __nv_fp8_e4m3* p, size_t n, unsigned long long seed, float lo, float hi);

// ------------------------------------------------------------------------------ checking

// ||got - ref||_2 / ||ref||_2 over n elements, accumulated in double on the device.
// NaN/Inf in `got` gives NaN (and so a failed check).
double rel_err(Context& ctx, const __nv_bfloat16* got, const float* ref, size_t n);
double rel_err(Context& ctx, const float* got, const float* ref, size_t n);

// Records `err` in the row; when it is not <= threshold (NaN included) marks the row
// FAILED_CHECK and counts the failure (the process then exits 3).
void record_check(Context& ctx, Row& row, double err, double threshold);

void append_note(Row& row, const std::string& note);

// Launch geometry for grid-stride kernels: enough blocks to fill the GPU, no more than needed.
int grid_for(const Context& ctx, size_t work_items, int threads, int blocks_per_sm = 8);

// ------------------------------------------------------------------------------ device helpers

__device__ __forceinline__ unsigned long long splitmix64(unsigned long long x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Uniform in [0, 1) with 24 random bits.
__device__ __forceinline__ float hash_unit(unsigned long long seed, unsigned long long i) {
  return static_cast<float>(splitmix64(seed ^ splitmix64(i)) >> 40) * (1.0f / 16777216.0f);
}

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_f32(__nv_fp8_e4m3 x) { return static_cast<float>(x); }

// 16 bytes = 8 bf16 <-> 8 floats.
__device__ __forceinline__ void unpack_bf16x8(const uint4& u, float (&f)[8]) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 t = __bfloat1622float2(h[i]);
    f[2 * i] = t.x;
    f[2 * i + 1] = t.y;
  }
}

__device__ __forceinline__ uint4 pack_bf16x8(const float (&f)[8]) {
  uint4 u;
  __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&u);
#pragma unroll
  for (int i = 0; i < 4; ++i) h[i] = __floats2bfloat162_rn(f[2 * i], f[2 * i + 1]);
  return u;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
// `scratch` must hold 32 floats; contains a __syncthreads so every thread must call it.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nwarps = blockDim.x >> 5;
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float t = lane < nwarps ? scratch[lane] : 0.f;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) t += __shfl_xor_sync(0xffffffffu, t, o);
  return t;
}

// ------------------------------------------------------------------------------ time_gpu

template <class Call>
TimingResult time_gpu(Context& ctx, Call&& call) {
  const TimingPolicy& pol = ctx.policy;
  cudaStream_t s = ctx.stream;
  long long iter = 0;
  float ms = 0.f;

  // 1. Cold call: lazy module loading and library set-up happen here, outside the blocker
  //    (loading a module while the blocker spins could serialise against it).
  call(iter++);
  CUDA_CHECK_LAUNCH();
  CUDA_CHECK(cudaStreamSynchronize(s));

  // 2. Probe calls behind the blocker: per-call time estimate.
  const int nprobe = pol.warmup - 1 < 2 ? 2 : pol.warmup - 1;
  ctx.blocker.hold(s);
  CUDA_CHECK(cudaEventRecord(ctx.events[0], s));
  for (int j = 0; j < nprobe; ++j) {
    call(iter++);
    CUDA_CHECK(cudaEventRecord(ctx.events[j + 1], s));
  }
  CUDA_CHECK_LAUNCH();
  ctx.blocker.release();
  CUDA_CHECK(cudaStreamSynchronize(s));
  bool timeout = ctx.blocker.timed_out();
  double t_est = 1e30;
  for (int j = 0; j < nprobe; ++j) {
    CUDA_CHECK(cudaEventElapsedTime(&ms, ctx.events[j], ctx.events[j + 1]));
    t_est = std::fmin(t_est, ms * 1e-3);
  }
  if (!(t_est > 1e-7)) t_est = 1e-7;  // event resolution is ~0.5 us

  // 3. Samples: `inner` calls each, `reps` of them.
  int inner = 1;
  if (t_est < pol.target_sample_s) {
    inner = static_cast<int>(std::ceil(pol.target_sample_s / t_est));
    if (inner > pol.max_inner) inner = pol.max_inner;
  }
  const double t_sample = t_est * inner;
  int reps = static_cast<int>(std::ceil(pol.min_time_s / t_sample));
  if (reps < pol.min_reps) reps = pol.min_reps;
  if (reps > pol.max_reps) reps = pol.max_reps;
  if (reps * t_sample > pol.large_point_s) {
    int r = static_cast<int>(pol.large_point_s / t_sample);
    reps = r < pol.min_reps_large ? pol.min_reps_large : r;
  }

  // 4. Rounds: at most max_calls_per_round calls (and as many events) queued behind one blocker.
  int per_round = pol.max_calls_per_round / inner;
  if (per_round < 1) per_round = 1;
  if (per_round > static_cast<int>(ctx.events.size()) - 1) per_round = static_cast<int>(ctx.events.size()) - 1;
  std::vector<double> samples;
  samples.reserve(reps);
  while (static_cast<int>(samples.size()) < reps) {
    const int n = std::min(per_round, reps - static_cast<int>(samples.size()));
    ctx.blocker.hold(s);
    CUDA_CHECK(cudaEventRecord(ctx.events[0], s));
    for (int j = 0; j < n; ++j) {
      for (int i = 0; i < inner; ++i) call(iter++);
      CUDA_CHECK(cudaEventRecord(ctx.events[j + 1], s));
    }
    CUDA_CHECK_LAUNCH();
    ctx.blocker.release();
    CUDA_CHECK(cudaStreamSynchronize(s));
    timeout = timeout || ctx.blocker.timed_out();
    for (int j = 0; j < n; ++j) {
      CUDA_CHECK(cudaEventElapsedTime(&ms, ctx.events[j], ctx.events[j + 1]));
      samples.push_back(ms * 1e-3 / inner);
    }
  }
  TimingResult r;
  r.inner = inner;
  r.blocker_timeout = timeout;
  summarize(samples, r);
  return r;
}

// Copies the timing statistics into a row (and notes how the samples were taken).
void apply_timing(Row& row, const TimingResult& t);

// ------------------------------------------------------------------------------ benchmarks
// One entry point per benchmark family (one .cu file each). Each writes its rows through ctx.emit.

void run_hbm(Context& ctx);          // bench_hbm.cu
void run_launch(Context& ctx);       // bench_launch.cu
void run_elementwise(Context& ctx);  // bench_elementwise.cu
void run_decode_attn(Context& ctx);  // bench_decode_attn.cu
bool gemm_available();               // bench_gemm.cu: built with cuBLASLt?
void run_gemm(Context& ctx, bool fp8);
int cublaslt_version();              // 0 when built without cuBLASLt
bool allreduce_available();          // bench_allreduce.cu: built with NCCL?
void run_allreduce(Context& ctx);

}  // namespace llmsim

// Adds a thread's squared-error sums (num = sum (got - ref)^2, den = sum ref^2) into acc[0], acc[1]:
// a warp-level butterfly reduction, then one atomic per warp. Every thread of the warp must call it.
__device__ inline void warp_accumulate_error(double num, double den, double* acc) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    num += __shfl_xor_sync(0xffffffffu, num, o);
    den += __shfl_xor_sync(0xffffffffu, den, o);
  }
  if ((threadIdx.x & 31) == 0) {
    atomicAdd(&acc[0], num);
    atomicAdd(&acc[1], den);
  }
}
