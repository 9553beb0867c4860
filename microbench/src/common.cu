// common.cu: implementation of the shared infrastructure declared in common.cuh.
#include "common.cuh"

#include <atomic>
#include <cerrno>
#include <cstring>

namespace llmsim {

// ------------------------------------------------------------------------------ errors

void die_cuda(cudaError_t err, const char* expr, const char* file, int line) {
  std::fprintf(stderr, "llmsim-bench: CUDA error at %s:%d: %s failed: %s (%s)\n", file, line, expr,
               cudaGetErrorName(err), cudaGetErrorString(err));
  std::fflush(stdout);
  std::fflush(stderr);
  std::exit(1);
}

void die(const char* file, int line, const std::string& msg) {
  std::fprintf(stderr, "llmsim-bench: error at %s:%d: %s\n", file, line, msg.c_str());
  std::fflush(stdout);
  std::fflush(stderr);
  std::exit(1);
}

// ------------------------------------------------------------------------------ CSV

const char* const kCsvHeader =
    "op_class,op,dtype,m,n,k,batch,ctx,heads,kv_heads,head_dim,flops,bytes,"
    "median_s,p10_s,p90_s,reps,rel_err,note";

namespace {

std::string csv_text(const std::string& s) {
  // Fields never contain separators: notes use ';' between items.
  std::string out = s;
  for (char& c : out) {
    if (c == ',') c = ';';
    else if (c == '"') c = '\'';
    else if (c == '\n' || c == '\r') c = ' ';
  }
  return out;
}

std::string csv_int(long long v) { return v < 0 ? std::string() : std::to_string(v); }

std::string csv_float(double v, const char* fmt) {
  if (std::isnan(v)) return std::string();
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

}  // namespace

std::string format_row(const Row& r) {
  std::string line;
  line.reserve(256);
  auto add = [&line](const std::string& field, bool first = false) {
    if (!first) line += ',';
    line += field;
  };
  add(csv_text(r.op_class), true);
  add(csv_text(r.op));
  add(csv_text(r.dtype));
  add(csv_int(r.m));
  add(csv_int(r.n));
  add(csv_int(r.k));
  add(csv_int(r.batch));
  add(csv_int(r.ctx));
  add(csv_int(r.heads));
  add(csv_int(r.kv_heads));
  add(csv_int(r.head_dim));
  add(csv_int(r.flops));
  add(csv_int(r.bytes));
  add(csv_float(r.median_s, "%.9e"));
  add(csv_float(r.p10_s, "%.9e"));
  add(csv_float(r.p90_s, "%.9e"));
  add(csv_int(r.reps));
  add(csv_float(r.rel_err, "%.6e"));
  add(csv_text(r.note));
  return line;
}

CsvWriter::CsvWriter(const std::string& path, bool header) {
  if (path.empty() || path == "-") {
    f_ = stdout;
  } else {
    f_ = std::fopen(path.c_str(), "w");
    if (!f_) {
      std::fprintf(stderr, "llmsim-bench: cannot open %s for writing: %s\n", path.c_str(), std::strerror(errno));
      std::exit(1);
    }
    own_ = true;
  }
  if (header) {
    std::fprintf(f_, "%s\n", kCsvHeader);
    std::fflush(f_);
  }
}

CsvWriter::~CsvWriter() {
  if (own_ && f_) std::fclose(f_);
}

void CsvWriter::write(const Row& row) {
  const std::string line = format_row(row);
  std::fprintf(f_, "%s\n", line.c_str());
  std::fflush(f_);
  ++rows_;
}

// ------------------------------------------------------------------------------ blocker

namespace {

__device__ __forceinline__ unsigned long long global_timer_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// One thread spins until the host sets flags[0] (or the timeout passes, then flags[1] = 1).
__global__ void blocker_kernel(volatile int* flags, unsigned long long timeout_ns) {
  const unsigned long long t0 = global_timer_ns();
  while (flags[0] == 0) {
    if (global_timer_ns() - t0 > timeout_ns) {
      flags[1] = 1;
      break;
    }
    __nanosleep(500);
  }
}

constexpr unsigned long long kBlockerTimeoutNs = 2000000000ull;  // 2 s

}  // namespace

void Blocker::init() {
  void* h = nullptr;
  CUDA_CHECK(cudaHostAlloc(&h, 64, cudaHostAllocMapped));
  std::memset(h, 0, 64);
  host_flags_ = static_cast<volatile int*>(h);
  void* d = nullptr;
  CUDA_CHECK(cudaHostGetDevicePointer(&d, h, 0));
  dev_flags_ = static_cast<int*>(d);
}

void Blocker::hold(cudaStream_t stream) {
  host_flags_[0] = 0;
  host_flags_[1] = 0;
  std::atomic_thread_fence(std::memory_order_seq_cst);
  blocker_kernel<<<1, 1, 0, stream>>>(dev_flags_, kBlockerTimeoutNs);
  CUDA_CHECK_LAUNCH();
}

void Blocker::release() {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  host_flags_[0] = 1;
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

bool Blocker::timed_out() const { return host_flags_[1] != 0; }

void Blocker::destroy() {
  if (host_flags_) CUDA_CHECK(cudaFreeHost(const_cast<int*>(host_flags_)));
  host_flags_ = nullptr;
  dev_flags_ = nullptr;
}

// ------------------------------------------------------------------------------ context

void Context::emit(const Row& row) {
  csv->write(row);
  // Progress line: what was measured and the achieved rates.
  std::string dims;
  auto dim = [&dims](const char* name, long long v) {
    if (v >= 0) dims += std::string(" ") + name + "=" + std::to_string(v);
  };
  dim("m", row.m);
  dim("n", row.n);
  dim("k", row.k);
  dim("batch", row.batch);
  dim("ctx", row.ctx);
  dim("heads", row.heads);
  dim("kv", row.kv_heads);
  char rates[160] = "";
  if (!std::isnan(row.median_s) && row.median_s > 0) {
    const double tf = row.flops > 0 ? row.flops / row.median_s * 1e-12 : 0.0;
    const double gb = row.bytes > 0 ? row.bytes / row.median_s * 1e-9 : 0.0;
    std::snprintf(rates, sizeof rates, " median=%.2f us p10=%.2f p90=%.2f reps=%lld  %.1f TFLOP/s %.0f GB/s",
                  row.median_s * 1e6, row.p10_s * 1e6, row.p90_s * 1e6, row.reps, tf, gb);
  }
  char err[48] = "";
  if (!std::isnan(row.rel_err)) std::snprintf(err, sizeof err, " rel_err=%.2e", row.rel_err);
  std::fprintf(stderr, "[%s] %s %s%s%s%s %s\n", row.op_class.c_str(), row.op.c_str(), row.dtype.c_str(),
               dims.c_str(), rates, err, row.note.c_str());
  std::fflush(stderr);
}

void init_context(Context& ctx) {
  int runtime_version = 0, driver_version = 0, count = 0;
  CUDA_CHECK(cudaRuntimeGetVersion(&runtime_version));
  (void)cudaDriverGetVersion(&driver_version);  // 0 when no driver is installed
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err == cudaErrorInsufficientDriver && driver_version > 0) {
    std::fprintf(stderr,
                 "llmsim-bench: the CUDA driver (supports CUDA %d.%d) is older than the CUDA runtime this "
                 "binary was built with (%d.%d): update the driver or rebuild with an older toolkit\n",
                 driver_version / 1000, driver_version % 1000 / 10, runtime_version / 1000,
                 runtime_version % 1000 / 10);
    std::exit(1);
  }
  if (err != cudaSuccess || count == 0) {
    (void)cudaGetLastError();
    std::fprintf(stderr, "no CUDA GPU found: llmsim-bench needs an NVIDIA GPU (cudaGetDeviceCount: %s)\n",
                 err != cudaSuccess ? cudaGetErrorString(err) : "0 devices");
    std::exit(2);
  }
  if (ctx.opt.device < 0 || ctx.opt.device >= count) {
    std::fprintf(stderr, "llmsim-bench: --device %d but only %d device(s)\n", ctx.opt.device, count);
    std::exit(64);
  }
  ctx.device = ctx.opt.device;
  CUDA_CHECK(cudaSetDevice(ctx.device));
  CUDA_CHECK(cudaGetDeviceProperties(&ctx.prop, ctx.device));
  ctx.cc = ctx.prop.major * 10 + ctx.prop.minor;
  ctx.sm_count = ctx.prop.multiProcessorCount;
  ctx.l2_bytes = static_cast<size_t>(ctx.prop.l2CacheSize);
  ctx.rotate_bytes = std::max(ctx.opt.rotate_bytes, 4 * ctx.l2_bytes);

  int clock_khz = 0, mem_clock_khz = 0, bus_bits = ctx.prop.memoryBusWidth;
  CUDA_CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, ctx.device));
  CUDA_CHECK(cudaDeviceGetAttribute(&mem_clock_khz, cudaDevAttrMemoryClockRate, ctx.device));
  // DDR: two transfers per memory clock.
  const double peak_bw = 2.0 * mem_clock_khz * 1e3 * bus_bits / 8.0;
  std::fprintf(stderr,
               "llmsim-bench: device %d: %s | sm_%d | %d SMs | SM clock %.0f MHz (max) | memory clock %.0f MHz, "
               "%d-bit bus, nominal %.0f GB/s | L2 %.1f MiB | %.1f GiB memory\n",
               ctx.device, ctx.prop.name, ctx.cc, ctx.sm_count, clock_khz / 1e3, mem_clock_khz / 1e3, bus_bits,
               peak_bw * 1e-9, ctx.l2_bytes / 1048576.0, ctx.prop.totalGlobalMem / 1073741824.0);
  std::fprintf(stderr, "llmsim-bench: CUDA driver %d.%d, runtime %d.%d, cuBLASLt %d, NCCL %s\n",
               driver_version / 1000, driver_version % 1000 / 10, runtime_version / 1000,
               runtime_version % 1000 / 10, cublaslt_version(), allreduce_available() ? "yes" : "no");

  // Timing policy from the options (quick mode shrinks it).
  const Options& o = ctx.opt;
  TimingPolicy& p = ctx.policy;
  p.warmup = std::max(3, o.warmup);
  p.min_time_s = o.min_time_s >= 0 ? o.min_time_s : (o.quick ? 0.03 : 0.2);
  p.min_reps = o.min_reps > 0 ? o.min_reps : (o.quick ? 5 : 10);
  p.max_reps = o.max_reps > 0 ? std::max(o.max_reps, p.min_reps) : (o.quick ? 30 : 100);
  p.min_reps_large = std::min(p.min_reps, 5);
  p.large_point_s = o.quick ? 0.25 : 1.0;

  CUDA_CHECK(cudaStreamCreateWithFlags(&ctx.stream, cudaStreamNonBlocking));
  ctx.blocker.init();
  ctx.events.resize(static_cast<size_t>(p.max_calls_per_round) + 2);
  for (auto& e : ctx.events) CUDA_CHECK(cudaEventCreate(&e));
  CUDA_CHECK(cudaMalloc(&ctx.acc, 4 * sizeof(double)));
}

void destroy_context(Context& ctx) {
  if (ctx.stream) CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  for (auto& e : ctx.events) CUDA_CHECK(cudaEventDestroy(e));
  ctx.events.clear();
  ctx.blocker.destroy();
  if (ctx.acc) CUDA_CHECK(cudaFree(ctx.acc));
  ctx.acc = nullptr;
  if (ctx.stream) CUDA_CHECK(cudaStreamDestroy(ctx.stream));
  ctx.stream = nullptr;
}

// ------------------------------------------------------------------------------ statistics

double percentile_sorted(const std::vector<double>& v, double p) {
  if (v.empty()) return NAN;
  const double pos = p * (v.size() - 1);
  const size_t lo = static_cast<size_t>(pos);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  const double frac = pos - lo;
  return v[lo] * (1.0 - frac) + v[hi] * frac;
}

void summarize(std::vector<double>& samples, TimingResult& out) {
  std::sort(samples.begin(), samples.end());
  out.reps = static_cast<int>(samples.size());
  out.median_s = percentile_sorted(samples, 0.5);
  out.p10_s = percentile_sorted(samples, 0.1);
  out.p90_s = percentile_sorted(samples, 0.9);
}

void apply_timing(Row& row, const TimingResult& t) {
  row.median_s = t.median_s;
  row.p10_s = t.p10_s;
  row.p90_s = t.p90_s;
  row.reps = t.reps;
  if (t.inner > 1) append_note(row, "inner=" + std::to_string(t.inner));
  if (t.blocker_timeout) append_note(row, "blocker_timeout");
}

// ------------------------------------------------------------------------------ memory

void DeviceBuffer::alloc(size_t bytes) {
  release();
  if (bytes == 0) return;
  CUDA_CHECK(cudaMalloc(&ptr_, bytes));
  bytes_ = bytes;
}

bool DeviceBuffer::try_alloc(size_t bytes) {
  release();
  if (bytes == 0) return true;
  const cudaError_t err = cudaMalloc(&ptr_, bytes);
  if (err == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();  // not sticky; clear it
    ptr_ = nullptr;
    return false;
  }
  CUDA_CHECK(err);
  bytes_ = bytes;
  return true;
}

void DeviceBuffer::release() {
  if (ptr_) CUDA_CHECK(cudaFree(ptr_));
  ptr_ = nullptr;
  bytes_ = 0;
}

int rotation_copies(const Context& ctx, size_t bytes_per_copy, int min_copies, int max_copies) {
  if (bytes_per_copy == 0) return min_copies;
  const size_t need = (ctx.rotate_bytes + bytes_per_copy - 1) / bytes_per_copy;
  size_t c = std::max<size_t>(need, static_cast<size_t>(min_copies));
  c = std::min<size_t>(c, static_cast<size_t>(max_copies));
  return static_cast<int>(c);
}

int grid_for(const Context& ctx, size_t work_items, int threads, int blocks_per_sm) {
  const size_t needed = (work_items + threads - 1) / threads;
  const size_t cap = static_cast<size_t>(ctx.sm_count) * blocks_per_sm;
  return static_cast<int>(std::max<size_t>(1, std::min(needed, cap)));
}

// ------------------------------------------------------------------------------ random data

namespace {

__device__ __forceinline__ void store_value(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }
__device__ __forceinline__ void store_value(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_value(__nv_fp8_e4m3* p, float v) { *p = __nv_fp8_e4m3(v); }

template <typename T>
__global__ void fill_uniform_kernel(T* __restrict__ p, size_t n, unsigned long long seed, float lo, float hi) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    store_value(p + i, lo + (hi - lo) * hash_unit(seed, i));
}

template <typename T>
void fill_impl(Context& ctx, T* p, size_t n, unsigned long long seed, float lo, float hi) {
  if (n == 0) return;
  fill_uniform_kernel<T><<<grid_for(ctx, n, 256, 16), 256, 0, ctx.stream>>>(p, n, seed, lo, hi);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void fill_uniform(Context& ctx, __nv_bfloat16* p, size_t n, unsigned long long seed, float lo, float hi) {
  fill_impl(ctx, p, n, seed, lo, hi);
}
void fill_uniform(Context& ctx, float* p, size_t n, unsigned long long seed, float lo, float hi) {
  fill_impl(ctx, p, n, seed, lo, hi);
}
void fill_uniform(Context& ctx, __nv_fp8_e4m3* p, size_t n, unsigned long long seed, float lo, float hi) {
  fill_impl(ctx, p, n, seed, lo, hi);
}

// ------------------------------------------------------------------------------ checking

namespace {

// acc[0] += sum (got - ref)^2, acc[1] += sum ref^2 (double precision, one atomic per warp).
template <typename TG>
__global__ void diff_norm_kernel(const TG* __restrict__ got, const float* __restrict__ ref, size_t n,
                                 double* __restrict__ acc) {
  double num = 0.0, den = 0.0;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const double g = to_f32(got[i]);
    const double r = ref[i];
    num += (g - r) * (g - r);
    den += r * r;
  }
  warp_accumulate_error(num, den, acc);
}

template <typename TG>
double rel_err_impl(Context& ctx, const TG* got, const float* ref, size_t n) {
  CUDA_CHECK(cudaMemsetAsync(ctx.acc, 0, 2 * sizeof(double), ctx.stream));
  diff_norm_kernel<TG><<<grid_for(ctx, n, 256, 8), 256, 0, ctx.stream>>>(got, ref, n, ctx.acc);
  CUDA_CHECK_LAUNCH();
  double h[2] = {0.0, 0.0};
  CUDA_CHECK(cudaMemcpyAsync(h, ctx.acc, sizeof h, cudaMemcpyDeviceToHost, ctx.stream));
  CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  if (std::isnan(h[0]) || std::isnan(h[1])) return NAN;
  if (h[1] == 0.0) return h[0] == 0.0 ? 0.0 : INFINITY;
  return std::sqrt(h[0] / h[1]);
}

}  // namespace

double rel_err(Context& ctx, const __nv_bfloat16* got, const float* ref, size_t n) {
  return rel_err_impl(ctx, got, ref, n);
}
double rel_err(Context& ctx, const float* got, const float* ref, size_t n) { return rel_err_impl(ctx, got, ref, n); }

void append_note(Row& row, const std::string& note) {
  if (note.empty()) return;
  if (!row.note.empty()) row.note += ';';
  row.note += note;
}

void record_check(Context& ctx, Row& row, double err, double threshold) {
  row.rel_err = err;
  if (!(err <= threshold)) {  // NaN fails too
    append_note(row, "FAILED_CHECK");
    ++ctx.failed_checks;
    std::fprintf(stderr, "llmsim-bench: CHECK FAILED: %s %s rel_err=%g > %g\n", row.op_class.c_str(),
                 row.op.c_str(), err, threshold);
  }
}

}  // namespace llmsim
