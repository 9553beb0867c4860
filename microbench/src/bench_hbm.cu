// bench_hbm.cu: achievable HBM bandwidth (op_class "hbm").
//
// Ops (all with 16-byte vector accesses, grid-stride loops with 4 independent accesses in flight
// per thread, grid = 8 blocks of 256 threads per SM or fewer for small arrays):
//   read   XOR-fold of an array           bytes = B
//   write  fill an array with a pattern   bytes = B
//   copy   dst = src                      bytes = 2 B
//   triad  a = b + s * c (fp32)           bytes = 3 B
// where B (the `n` column) is the size of one array in bytes (default 1 GiB). `copy` is also
// swept over B = 1 MiB, 4 MiB, ... (powers of 4) below the main size; the small copies rotate
// through the whole 1 GiB arrays so each call misses in L2.
//
// Checks (once per point, before timing; the destination is zeroed first):
//   read   per-block XOR words of the timed kernel vs an independent word-wise XOR kernel
//   write  every word compared with the expected pattern
//   copy   every word of the copied range compared with the source
//   triad  ||a - (b + s c)|| / ||b + s c|| with the same fused multiply-add
// For read/write/copy rel_err is the fraction of 32-bit words that differ (exact check).
#include "common.cuh"

namespace llmsim {
namespace {

constexpr int kThreads = 256;
constexpr int kUnroll = 4;  // independent 16-byte accesses in flight per thread per iteration

__device__ __forceinline__ unsigned pattern_word(size_t word, unsigned salt) {
  return static_cast<unsigned>(word * 2654435761ull) ^ salt;
}

__device__ __forceinline__ unsigned xor4(const uint4& v) { return v.x ^ v.y ^ v.z ^ v.w; }

// Writes the XOR of all words this block read to block_xor[blockIdx.x] (keeps the loads live
// and gives the check something to compare).
__device__ __forceinline__ void store_block_xor(unsigned x, unsigned* block_xor) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x ^= __shfl_xor_sync(0xffffffffu, x, o);
  __shared__ unsigned warp_xor[kThreads / 32];
  if ((threadIdx.x & 31) == 0) warp_xor[threadIdx.x >> 5] = x;
  __syncthreads();
  if (threadIdx.x == 0) {
    unsigned r = 0;
#pragma unroll
    for (int w = 0; w < kThreads / 32; ++w) r ^= warp_xor[w];
    block_xor[blockIdx.x] = r;
  }
}

// Thread t visits vectors t, t + S, t + 2S, ... (S = total threads); kUnroll of them per iteration.
__global__ void __launch_bounds__(kThreads) hbm_read_kernel(const uint4* __restrict__ src, size_t n,
                                                            unsigned* __restrict__ block_xor) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  unsigned x = 0;
  for (; i + (kUnroll - 1) * stride < n; i += kUnroll * stride) {
    uint4 v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) v[u] = src[i + u * stride];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) x ^= xor4(v[u]);
  }
  for (; i < n; i += stride) x ^= xor4(src[i]);
  store_block_xor(x, block_xor);
}

__global__ void __launch_bounds__(kThreads) hbm_write_kernel(uint4* __restrict__ dst, size_t n, unsigned salt) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const size_t w = 4 * i;
    dst[i] = make_uint4(pattern_word(w, salt), pattern_word(w + 1, salt), pattern_word(w + 2, salt),
                        pattern_word(w + 3, salt));
  }
}

__global__ void __launch_bounds__(kThreads) hbm_copy_kernel(const uint4* __restrict__ src, uint4* __restrict__ dst,
                                                            size_t n) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (; i + (kUnroll - 1) * stride < n; i += kUnroll * stride) {
    uint4 v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) v[u] = src[i + u * stride];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) dst[i + u * stride] = v[u];
  }
  for (; i < n; i += stride) dst[i] = src[i];
}

__device__ __forceinline__ float4 triad4(const float4& b, const float4& c, float s) {
  return make_float4(__fmaf_rn(s, c.x, b.x), __fmaf_rn(s, c.y, b.y), __fmaf_rn(s, c.z, b.z), __fmaf_rn(s, c.w, b.w));
}

__global__ void __launch_bounds__(kThreads) hbm_triad_kernel(float4* __restrict__ a, const float4* __restrict__ b,
                                                             const float4* __restrict__ c, float s, size_t n) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (; i + (kUnroll - 1) * stride < n; i += kUnroll * stride) {
    float4 vb[kUnroll], vc[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      vb[u] = b[i + u * stride];
      vc[u] = c[i + u * stride];
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) a[i + u * stride] = triad4(vb[u], vc[u], s);
  }
  for (; i < n; i += stride) a[i] = triad4(b[i], c[i], s);
}

// ---------------------------------------------------------------- checkers (simple, word-wise)

__global__ void xor_words_kernel(const unsigned* __restrict__ w, size_t n, unsigned* __restrict__ out) {
  unsigned x = 0;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) x ^= w[i];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x ^= __shfl_xor_sync(0xffffffffu, x, o);
  if ((threadIdx.x & 31) == 0) atomicXor(out, x);
}

__global__ void count_pattern_mismatch_kernel(const unsigned* __restrict__ w, size_t n, unsigned salt,
                                              unsigned long long* __restrict__ bad) {
  unsigned long long b = 0;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    b += (w[i] != pattern_word(i, salt));
  if (b) atomicAdd(bad, b);
}

__global__ void count_mismatch_kernel(const unsigned* __restrict__ x, const unsigned* __restrict__ y, size_t n,
                                      unsigned long long* __restrict__ bad) {
  unsigned long long b = 0;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) b += (x[i] != y[i]);
  if (b) atomicAdd(bad, b);
}

__global__ void triad_check_kernel(const float* __restrict__ a, const float* __restrict__ b,
                                   const float* __restrict__ c, float s, size_t n, double* __restrict__ acc) {
  double num = 0.0, den = 0.0;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const double ref = __fmaf_rn(s, c[i], b[i]);
    const double d = static_cast<double>(a[i]) - ref;
    num += d * d;
    den += ref * ref;
  }
  warp_accumulate_error(num, den, acc);
}

// ---------------------------------------------------------------- host side

struct HbmBuffers {
  DeviceBuffer a, b, c;      // three arrays of `bytes` each
  DeviceBuffer block_xor;    // per-block results of the read kernel
  DeviceBuffer counter;      // 8-byte counters for the checks
  size_t bytes = 0;
};

unsigned long long read_counter(Context& ctx, const DeviceBuffer& counter) {
  unsigned long long h = 0;
  CUDA_CHECK(cudaMemcpyAsync(&h, counter.get(), sizeof h, cudaMemcpyDeviceToHost, ctx.stream));
  CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  return h;
}

Row base_row(const char* op, size_t array_bytes, size_t moved_bytes) {
  Row r;
  r.op_class = "hbm";
  r.op = op;
  r.dtype = "b128";  // 16-byte vectors (triad: 4 x fp32)
  r.n = static_cast<long long>(array_bytes);
  r.flops = 0;
  r.bytes = static_cast<long long>(moved_bytes);
  return r;
}

void bench_read(Context& ctx, HbmBuffers& hb) {
  const size_t nvec = hb.bytes / 16;
  const int grid = grid_for(ctx, nvec, kThreads);
  const uint4* src = hb.a.as<const uint4>();
  unsigned* bx = hb.block_xor.as<unsigned>();
  Row row = base_row("read", hb.bytes, hb.bytes);

  // Check: XOR of the per-block results == XOR of all words (independent kernel).
  hbm_read_kernel<<<grid, kThreads, 0, ctx.stream>>>(src, nvec, bx);
  CUDA_CHECK_LAUNCH();
  std::vector<unsigned> h(grid);
  CUDA_CHECK(cudaMemcpyAsync(h.data(), bx, grid * sizeof(unsigned), cudaMemcpyDeviceToHost, ctx.stream));
  CUDA_CHECK(cudaMemsetAsync(hb.counter.get(), 0, 8, ctx.stream));
  xor_words_kernel<<<grid_for(ctx, hb.bytes / 4, 256), 256, 0, ctx.stream>>>(
      hb.a.as<const unsigned>(), hb.bytes / 4, hb.counter.as<unsigned>());
  CUDA_CHECK_LAUNCH();
  unsigned ref = 0;
  CUDA_CHECK(cudaMemcpyAsync(&ref, hb.counter.get(), sizeof ref, cudaMemcpyDeviceToHost, ctx.stream));
  CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  unsigned got = 0;
  for (unsigned v : h) got ^= v;
  record_check(ctx, row, got == ref ? 0.0 : 1.0, 0.0);

  apply_timing(row, time_gpu(ctx, [&](long long) {
    hbm_read_kernel<<<grid, kThreads, 0, ctx.stream>>>(src, nvec, bx);
  }));
  ctx.emit(row);
}

void bench_write(Context& ctx, HbmBuffers& hb) {
  const size_t nvec = hb.bytes / 16;
  const int grid = grid_for(ctx, nvec, kThreads);
  uint4* dst = hb.b.as<uint4>();
  Row row = base_row("write", hb.bytes, hb.bytes);

  const unsigned salt = 0x5bd1e995u;
  CUDA_CHECK(cudaMemsetAsync(dst, 0, hb.bytes, ctx.stream));
  hbm_write_kernel<<<grid, kThreads, 0, ctx.stream>>>(dst, nvec, salt);
  CUDA_CHECK_LAUNCH();
  CUDA_CHECK(cudaMemsetAsync(hb.counter.get(), 0, 8, ctx.stream));
  count_pattern_mismatch_kernel<<<grid_for(ctx, hb.bytes / 4, 256), 256, 0, ctx.stream>>>(
      hb.b.as<const unsigned>(), hb.bytes / 4, salt, hb.counter.as<unsigned long long>());
  CUDA_CHECK_LAUNCH();
  const double bad = static_cast<double>(read_counter(ctx, hb.counter));
  record_check(ctx, row, bad / (hb.bytes / 4), 0.0);

  apply_timing(row, time_gpu(ctx, [&](long long it) {
    hbm_write_kernel<<<grid, kThreads, 0, ctx.stream>>>(dst, nvec, static_cast<unsigned>(it));
  }));
  ctx.emit(row);
}

// Copies `size` bytes; call `it` uses the it-th size-byte slice of the arrays (mod the array size).
void bench_copy(Context& ctx, HbmBuffers& hb, size_t size) {
  const size_t nvec = size / 16;
  const int grid = grid_for(ctx, nvec, kThreads);
  const size_t slices = hb.bytes / size;
  const uint4* src = hb.a.as<const uint4>();
  uint4* dst = hb.b.as<uint4>();
  Row row = base_row("copy", size, 2 * size);
  if (slices * size < ctx.rotate_bytes) append_note(row, "rotation_below_l2_limit");

  CUDA_CHECK(cudaMemsetAsync(dst, 0, size, ctx.stream));
  hbm_copy_kernel<<<grid, kThreads, 0, ctx.stream>>>(src, dst, nvec);
  CUDA_CHECK_LAUNCH();
  CUDA_CHECK(cudaMemsetAsync(hb.counter.get(), 0, 8, ctx.stream));
  count_mismatch_kernel<<<grid_for(ctx, size / 4, 256), 256, 0, ctx.stream>>>(
      hb.a.as<const unsigned>(), hb.b.as<const unsigned>(), size / 4, hb.counter.as<unsigned long long>());
  CUDA_CHECK_LAUNCH();
  const double bad = static_cast<double>(read_counter(ctx, hb.counter));
  record_check(ctx, row, bad / (size / 4), 0.0);

  apply_timing(row, time_gpu(ctx, [&](long long it) {
    const size_t off = static_cast<size_t>(it % static_cast<long long>(slices)) * nvec;
    hbm_copy_kernel<<<grid, kThreads, 0, ctx.stream>>>(src + off, dst + off, nvec);
  }));
  ctx.emit(row);
}

void bench_triad(Context& ctx, HbmBuffers& hb) {
  const size_t nvec = hb.bytes / 16;
  const int grid = grid_for(ctx, nvec, kThreads);
  float4* a = hb.b.as<float4>();
  const float4* b = hb.a.as<const float4>();
  const float4* c = hb.c.as<const float4>();
  const float s = 0.75f;
  Row row = base_row("triad", hb.bytes, 3 * hb.bytes);
  row.dtype = "fp32";
  row.flops = static_cast<long long>(2 * (hb.bytes / 4));

  CUDA_CHECK(cudaMemsetAsync(a, 0, hb.bytes, ctx.stream));
  hbm_triad_kernel<<<grid, kThreads, 0, ctx.stream>>>(a, b, c, s, nvec);
  CUDA_CHECK_LAUNCH();
  CUDA_CHECK(cudaMemsetAsync(ctx.acc, 0, 2 * sizeof(double), ctx.stream));
  triad_check_kernel<<<grid_for(ctx, hb.bytes / 4, 256), 256, 0, ctx.stream>>>(
      hb.b.as<const float>(), hb.a.as<const float>(), hb.c.as<const float>(), s, hb.bytes / 4, ctx.acc);
  CUDA_CHECK_LAUNCH();
  double h[2];
  CUDA_CHECK(cudaMemcpyAsync(h, ctx.acc, sizeof h, cudaMemcpyDeviceToHost, ctx.stream));
  CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  record_check(ctx, row, h[1] > 0 ? std::sqrt(h[0] / h[1]) : NAN, 1e-6);

  apply_timing(row, time_gpu(ctx, [&](long long) {
    hbm_triad_kernel<<<grid, kThreads, 0, ctx.stream>>>(a, b, c, s, nvec);
  }));
  ctx.emit(row);
}

}  // namespace

void run_hbm(Context& ctx) {
  size_t bytes = ctx.opt.hbm_bytes ? ctx.opt.hbm_bytes : (ctx.opt.quick ? (256ull << 20) : (1ull << 30));
  bytes = std::max<size_t>(align_up(bytes, 1 << 20), 1 << 20);
  HbmBuffers hb;
  // Three arrays of `bytes`; halve on a device that cannot hold them.
  while (!(hb.a.try_alloc(bytes) && hb.b.try_alloc(bytes) && hb.c.try_alloc(bytes))) {
    hb.a.release();
    hb.b.release();
    hb.c.release();
    if (bytes <= (64ull << 20)) die(__FILE__, __LINE__, "hbm: cannot allocate 3 x 64 MiB");
    bytes /= 2;
    std::fprintf(stderr, "hbm: out of memory, retrying with %zu MiB arrays\n", bytes >> 20);
  }
  hb.bytes = bytes;
  if (bytes < ctx.rotate_bytes)
    std::fprintf(stderr, "hbm: warning: arrays of %zu MiB are below the %zu MiB rotation size: L2 may serve part of them\n",
                 bytes >> 20, ctx.rotate_bytes >> 20);
  hb.block_xor.alloc(static_cast<size_t>(ctx.sm_count) * 8 * sizeof(unsigned));
  hb.counter.alloc(8);
  fill_uniform(ctx, hb.a.as<float>(), bytes / 4, ctx.opt.seed + 1, -1.f, 1.f);
  fill_uniform(ctx, hb.c.as<float>(), bytes / 4, ctx.opt.seed + 2, -1.f, 1.f);
  CUDA_CHECK(cudaStreamSynchronize(ctx.stream));

  bench_read(ctx, hb);
  bench_write(ctx, hb);
  bench_copy(ctx, hb, bytes);
  bench_triad(ctx, hb);
  // Size sweep of copy: 1 MiB, 4 MiB, 16 MiB, ... below the main size (quick: every 16x).
  const size_t step = ctx.opt.quick ? 16 : 4;
  for (size_t size = 1ull << 20; size < bytes; size *= step) bench_copy(ctx, hb, size);
}

}  // namespace llmsim
