// bench_elementwise.cu: the memory-bound per-token kernels of a transformer layer
// (op_class "elementwise"), bf16 in and out, fp32 arithmetic.
//
//   rmsnorm   y[t,:] = x[t,:] / sqrt(mean(x[t,:]^2) + eps) * w       x, y: [T, H]; w: [H]
//             one 256-thread block per row; pass 1 sums squares, pass 2 re-reads the row (L1/L2
//             hit) and writes y. m = T, n = H. bytes = 2*T*H*2 + H*2, flops = 4*T*H.
//   silu_mul  y[t,i] = silu(x[t,i]) * x[t,I+i]                        x: [T, 2I]; y: [T, I]
//             (gate in the first half, up in the second, as in vLLM). m = T, n = I.
//             bytes = T*2I*2 + T*I*2, flops = 5*T*I (nominal).
//   add       y = a + b (residual add), [T, H]. bytes = 3*T*H*2, flops = T*H.
//   rope      rotary embedding (NeoX layout: pairs (i, i+64) of head_dim 128), in place on
//             q [T, heads, 128] and k [T, kv_heads, 128]; cos/sin cache fp32 [max_pos, 128]
//             (cos in [0,64), sin in [64,128)), positions int32 [T].
//             bytes = 2*T*(heads+kv_heads)*128*2 (q, k read + written) + T*4 + T*128*4;
//             flops = 3*T*(heads+kv_heads)*128.
// All kernels move 16 bytes (8 bf16) per access. Every op rotates over copies of its tensors
// totalling >= the rotation size, so each call reads from HBM. Each point is checked once
// against a one-thread-per-element (rmsnorm: per-row) fp32 reference on copy 0.
#include "common.cuh"

namespace llmsim {
namespace {

constexpr int kThreads = 256;
constexpr int kHeadDim = 128;
constexpr int kRopeMaxPos = 16384;
constexpr float kEps = 1e-5f;
constexpr double kThreshold = 1e-2;

using bf16 = __nv_bfloat16;

// ---------------------------------------------------------------- kernels under test

// One block per row; thread i handles 16-byte vectors i, i+256, ... of the row.
__global__ void __launch_bounds__(kThreads) rmsnorm_kernel(const bf16* __restrict__ x, const bf16* __restrict__ w,
                                                           bf16* __restrict__ y, int hidden) {
  __shared__ float scratch[32];
  const int nvec = hidden / 8;
  const uint4* xr = reinterpret_cast<const uint4*>(x + static_cast<size_t>(blockIdx.x) * hidden);
  const uint4* wr = reinterpret_cast<const uint4*>(w);
  uint4* yr = reinterpret_cast<uint4*>(y + static_cast<size_t>(blockIdx.x) * hidden);
  float ss = 0.f;
  for (int v = threadIdx.x; v < nvec; v += blockDim.x) {
    float f[8];
    unpack_bf16x8(xr[v], f);
#pragma unroll
    for (int e = 0; e < 8; ++e) ss += f[e] * f[e];
  }
  const float inv = rsqrtf(block_sum(ss, scratch) / hidden + kEps);
  for (int v = threadIdx.x; v < nvec; v += blockDim.x) {
    float f[8], g[8];
    unpack_bf16x8(xr[v], f);
    unpack_bf16x8(wr[v], g);
#pragma unroll
    for (int e = 0; e < 8; ++e) f[e] = f[e] * inv * g[e];
    yr[v] = pack_bf16x8(f);
  }
}

// Grid-stride over output vectors: vector j of row t reads gate x[t, 8j..] and up x[t, I+8j..].
__global__ void __launch_bounds__(kThreads) silu_mul_kernel(const bf16* __restrict__ x, bf16* __restrict__ y,
                                                            int tokens, int inter) {
  const int vpr = inter / 8;
  const size_t total = static_cast<size_t>(tokens) * vpr;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const size_t t = i / vpr, j = i % vpr;
    const bf16* gate = x + t * 2 * inter + j * 8;
    float g[8], u[8];
    unpack_bf16x8(*reinterpret_cast<const uint4*>(gate), g);
    unpack_bf16x8(*reinterpret_cast<const uint4*>(gate + inter), u);
#pragma unroll
    for (int e = 0; e < 8; ++e) g[e] = g[e] / (1.f + __expf(-g[e])) * u[e];
    *reinterpret_cast<uint4*>(y + t * inter + j * 8) = pack_bf16x8(g);
  }
}

__global__ void __launch_bounds__(kThreads) add_kernel(const uint4* __restrict__ a, const uint4* __restrict__ b,
                                                       uint4* __restrict__ y, size_t nvec) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < nvec; i += stride) {
    float fa[8], fb[8];
    unpack_bf16x8(a[i], fa);
    unpack_bf16x8(b[i], fb);
#pragma unroll
    for (int e = 0; e < 8; ++e) fa[e] += fb[e];
    y[i] = pack_bf16x8(fa);
  }
}

// Work item = (token t, head h, group j of 8 pairs): 8 consecutive threads cover one head's
// 64 pairs, reading x[8j..8j+8) and x[64+8j..64+8j+8) as two 16-byte vectors.
__global__ void __launch_bounds__(kThreads) rope_kernel(bf16* __restrict__ q, bf16* __restrict__ k,
                                                        const int* __restrict__ pos,
                                                        const float* __restrict__ cos_sin, int tokens, int hq,
                                                        int hk) {
  const int heads = hq + hk;
  const size_t total = static_cast<size_t>(tokens) * heads * 8;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int j = static_cast<int>(i % 8);
    const size_t th = i / 8;
    const int h = static_cast<int>(th % heads);
    const size_t t = th / heads;
    bf16* x = h < hq ? q + (t * hq + h) * kHeadDim : k + (t * hk + (h - hq)) * kHeadDim;
    const float* cs = cos_sin + static_cast<size_t>(pos[t]) * kHeadDim;
    uint4* p1 = reinterpret_cast<uint4*>(x + 8 * j);
    uint4* p2 = reinterpret_cast<uint4*>(x + 64 + 8 * j);
    float x1[8], x2[8], c[8], s[8];
    unpack_bf16x8(*p1, x1);
    unpack_bf16x8(*p2, x2);
    const float4* c4 = reinterpret_cast<const float4*>(cs + 8 * j);
    const float4* s4 = reinterpret_cast<const float4*>(cs + 64 + 8 * j);
    const float4 c0 = c4[0], c1 = c4[1], s0 = s4[0], s1 = s4[1];
    c[0] = c0.x; c[1] = c0.y; c[2] = c0.z; c[3] = c0.w; c[4] = c1.x; c[5] = c1.y; c[6] = c1.z; c[7] = c1.w;
    s[0] = s0.x; s[1] = s0.y; s[2] = s0.z; s[3] = s0.w; s[4] = s1.x; s[5] = s1.y; s[6] = s1.z; s[7] = s1.w;
    float o1[8], o2[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      o1[e] = x1[e] * c[e] - x2[e] * s[e];
      o2[e] = x2[e] * c[e] + x1[e] * s[e];
    }
    *p1 = pack_bf16x8(o1);
    *p2 = pack_bf16x8(o2);
  }
}

// ---------------------------------------------------------------- fp32 references

__global__ void rmsnorm_ref_kernel(const bf16* x, const bf16* w, float* y, int tokens, int hidden) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= tokens) return;
  const bf16* xr = x + static_cast<size_t>(t) * hidden;
  double ss = 0.0;
  for (int i = 0; i < hidden; ++i) ss += static_cast<double>(to_f32(xr[i])) * to_f32(xr[i]);
  const float inv = static_cast<float>(1.0 / sqrt(ss / hidden + kEps));
  for (int i = 0; i < hidden; ++i) y[static_cast<size_t>(t) * hidden + i] = to_f32(xr[i]) * inv * to_f32(w[i]);
}

__global__ void silu_mul_ref_kernel(const bf16* x, float* y, int tokens, int inter) {
  const size_t n = static_cast<size_t>(tokens) * inter;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t t = i / inter, c = i % inter;
    const float g = to_f32(x[t * 2 * inter + c]), u = to_f32(x[t * 2 * inter + inter + c]);
    y[i] = g / (1.f + expf(-g)) * u;
  }
}

__global__ void add_ref_kernel(const bf16* a, const bf16* b, float* y, size_t n) {
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    y[i] = to_f32(a[i]) + to_f32(b[i]);
}

// One thread per (token, head, pair i < 64); writes the rotated q and k into fp32 outputs laid
// out like the inputs.
__global__ void rope_ref_kernel(const bf16* q, const bf16* k, const int* pos, const float* cos_sin, float* q_out,
                                float* k_out, int tokens, int hq, int hk) {
  const size_t n = static_cast<size_t>(tokens) * (hq + hk) * 64;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const int pair = static_cast<int>(i % 64);
    const int h = static_cast<int>((i / 64) % (hq + hk));
    const size_t t = i / 64 / (hq + hk);
    const size_t base = h < hq ? (t * hq + h) * kHeadDim : (t * hk + (h - hq)) * kHeadDim;
    const bf16* x = h < hq ? q : k;
    float* out = h < hq ? q_out : k_out;
    const float c = cos_sin[static_cast<size_t>(pos[t]) * kHeadDim + pair];
    const float s = cos_sin[static_cast<size_t>(pos[t]) * kHeadDim + 64 + pair];
    const float x1 = to_f32(x[base + pair]), x2 = to_f32(x[base + 64 + pair]);
    out[base + pair] = x1 * c - x2 * s;
    out[base + 64 + pair] = x2 * c + x1 * s;
  }
}

// cos/sin table of Llama-3 RoPE (theta = 500000) for positions [0, max_pos).
__global__ void rope_table_kernel(float* cos_sin, int max_pos) {
  const int n = max_pos * 64;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    const int p = i / 64, f = i % 64;
    const double inv_freq = pow(500000.0, -2.0 * f / kHeadDim);
    const double a = p * inv_freq;
    cos_sin[static_cast<size_t>(p) * kHeadDim + f] = static_cast<float>(cos(a));
    cos_sin[static_cast<size_t>(p) * kHeadDim + 64 + f] = static_cast<float>(sin(a));
  }
}

__global__ void iota_kernel(int* p, int n, int mod) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) p[i] = i % mod;
}

// ---------------------------------------------------------------- host side

struct Model {
  int hidden, inter, heads, kv_heads;
};

Row ew_row(const char* op, long long tokens) {
  Row r;
  r.op_class = "elementwise";
  r.op = op;
  r.dtype = "bf16";
  r.m = tokens;
  return r;
}

void skip_oom(const Row& r) {
  std::fprintf(stderr, "[elementwise] %s m=%lld n=%lld: out of device memory, skipped\n", r.op.c_str(), r.m, r.n);
}

void bench_rmsnorm(Context& ctx, const Model& md, int T) {
  const int H = md.hidden;
  const size_t x_elems = static_cast<size_t>(T) * H;
  const size_t stride = align_up(x_elems * sizeof(bf16), 256) / sizeof(bf16);  // per copy, elements
  const int copies = rotation_copies(ctx, 2 * stride * sizeof(bf16));
  Row row = ew_row("rmsnorm", T);
  row.n = H;
  row.flops = 4ll * T * H;
  row.bytes = 2ll * T * H * 2 + H * 2;
  DeviceBuffer x, y, w, ref;
  if (!x.try_alloc(copies * stride * sizeof(bf16)) || !y.try_alloc(copies * stride * sizeof(bf16)) ||
      !w.try_alloc(H * sizeof(bf16)) || !ref.try_alloc(x_elems * sizeof(float)))
    return skip_oom(row);
  fill_uniform(ctx, x.as<bf16>(), copies * stride, ctx.opt.seed + 11, -2.f, 2.f);
  fill_uniform(ctx, w.as<bf16>(), H, ctx.opt.seed + 12, 0.5f, 1.5f);

  rmsnorm_kernel<<<T, kThreads, 0, ctx.stream>>>(x.as<bf16>(), w.as<bf16>(), y.as<bf16>(), H);
  CUDA_CHECK_LAUNCH();
  rmsnorm_ref_kernel<<<(T + 127) / 128, 128, 0, ctx.stream>>>(x.as<bf16>(), w.as<bf16>(), ref.as<float>(), T, H);
  CUDA_CHECK_LAUNCH();
  record_check(ctx, row, rel_err(ctx, y.as<bf16>(), ref.as<float>(), x_elems), kThreshold);
  ref.release();

  apply_timing(row, time_gpu(ctx, [&](long long it) {
    const size_t off = static_cast<size_t>(it % copies) * stride;
    rmsnorm_kernel<<<T, kThreads, 0, ctx.stream>>>(x.as<bf16>() + off, w.as<bf16>(), y.as<bf16>() + off, H);
  }));
  append_note(row, "copies=" + std::to_string(copies));
  ctx.emit(row);
}

void bench_silu_mul(Context& ctx, const Model& md, int T) {
  const int I = md.inter;
  const size_t in_elems = 2ull * T * I, out_elems = static_cast<size_t>(T) * I;
  const size_t in_stride = align_up(in_elems * sizeof(bf16), 256) / sizeof(bf16);
  const size_t out_stride = align_up(out_elems * sizeof(bf16), 256) / sizeof(bf16);
  const int copies = rotation_copies(ctx, (in_stride + out_stride) * sizeof(bf16));
  Row row = ew_row("silu_mul", T);
  row.n = I;
  row.flops = 5ll * T * I;
  row.bytes = static_cast<long long>(in_elems * 2 + out_elems * 2);
  DeviceBuffer x, y, ref;
  if (!x.try_alloc(copies * in_stride * sizeof(bf16)) || !y.try_alloc(copies * out_stride * sizeof(bf16)) ||
      !ref.try_alloc(out_elems * sizeof(float)))
    return skip_oom(row);
  fill_uniform(ctx, x.as<bf16>(), copies * in_stride, ctx.opt.seed + 21, -4.f, 4.f);
  const int grid = grid_for(ctx, out_elems / 8, kThreads);

  silu_mul_kernel<<<grid, kThreads, 0, ctx.stream>>>(x.as<bf16>(), y.as<bf16>(), T, I);
  CUDA_CHECK_LAUNCH();
  silu_mul_ref_kernel<<<grid_for(ctx, out_elems, 256), 256, 0, ctx.stream>>>(x.as<bf16>(), ref.as<float>(), T, I);
  CUDA_CHECK_LAUNCH();
  record_check(ctx, row, rel_err(ctx, y.as<bf16>(), ref.as<float>(), out_elems), kThreshold);
  ref.release();

  apply_timing(row, time_gpu(ctx, [&](long long it) {
    const size_t c = static_cast<size_t>(it % copies);
    silu_mul_kernel<<<grid, kThreads, 0, ctx.stream>>>(x.as<bf16>() + c * in_stride, y.as<bf16>() + c * out_stride,
                                                       T, I);
  }));
  append_note(row, "copies=" + std::to_string(copies));
  ctx.emit(row);
}

void bench_add(Context& ctx, const Model& md, int T) {
  const int H = md.hidden;
  const size_t n = static_cast<size_t>(T) * H;
  const size_t stride = align_up(n * sizeof(bf16), 256) / sizeof(bf16);
  const int copies = rotation_copies(ctx, 3 * stride * sizeof(bf16));
  Row row = ew_row("add", T);
  row.n = H;
  row.flops = static_cast<long long>(n);
  row.bytes = static_cast<long long>(3 * n * 2);
  DeviceBuffer a, b, y, ref;
  if (!a.try_alloc(copies * stride * sizeof(bf16)) || !b.try_alloc(copies * stride * sizeof(bf16)) ||
      !y.try_alloc(copies * stride * sizeof(bf16)) || !ref.try_alloc(n * sizeof(float)))
    return skip_oom(row);
  fill_uniform(ctx, a.as<bf16>(), copies * stride, ctx.opt.seed + 31, -1.f, 1.f);
  fill_uniform(ctx, b.as<bf16>(), copies * stride, ctx.opt.seed + 32, -1.f, 1.f);
  const int grid = grid_for(ctx, n / 8, kThreads);

  add_kernel<<<grid, kThreads, 0, ctx.stream>>>(a.as<const uint4>(), b.as<const uint4>(), y.as<uint4>(), n / 8);
  CUDA_CHECK_LAUNCH();
  add_ref_kernel<<<grid_for(ctx, n, 256), 256, 0, ctx.stream>>>(a.as<bf16>(), b.as<bf16>(), ref.as<float>(), n);
  CUDA_CHECK_LAUNCH();
  record_check(ctx, row, rel_err(ctx, y.as<bf16>(), ref.as<float>(), n), kThreshold);
  ref.release();

  apply_timing(row, time_gpu(ctx, [&](long long it) {
    const size_t off = static_cast<size_t>(it % copies) * stride / 8;  // in 16-byte vectors
    add_kernel<<<grid, kThreads, 0, ctx.stream>>>(a.as<const uint4>() + off, b.as<const uint4>() + off,
                                                  y.as<uint4>() + off, n / 8);
  }));
  append_note(row, "copies=" + std::to_string(copies));
  ctx.emit(row);
}

void bench_rope(Context& ctx, const Model& md, int T, const DeviceBuffer& table, const DeviceBuffer& positions) {
  const int hq = md.heads, hk = md.kv_heads;
  const size_t nq = static_cast<size_t>(T) * hq * kHeadDim, nk = static_cast<size_t>(T) * hk * kHeadDim;
  const size_t q_stride = align_up(nq * sizeof(bf16), 256) / sizeof(bf16);
  const size_t k_stride = align_up(nk * sizeof(bf16), 256) / sizeof(bf16);
  const int copies = rotation_copies(ctx, (q_stride + k_stride) * sizeof(bf16));
  Row row = ew_row("rope", T);
  row.heads = hq;
  row.kv_heads = hk;
  row.head_dim = kHeadDim;
  row.flops = static_cast<long long>(3 * (nq + nk));
  row.bytes = static_cast<long long>(2 * (nq + nk) * 2 + static_cast<size_t>(T) * 4 +
                                     static_cast<size_t>(T) * kHeadDim * 4);
  DeviceBuffer q, k, q_ref, k_ref;
  if (!q.try_alloc(copies * q_stride * sizeof(bf16)) || !k.try_alloc(copies * k_stride * sizeof(bf16)) ||
      !q_ref.try_alloc(nq * sizeof(float)) || !k_ref.try_alloc(nk * sizeof(float)))
    return skip_oom(row);
  fill_uniform(ctx, q.as<bf16>(), copies * q_stride, ctx.opt.seed + 41, -2.f, 2.f);
  fill_uniform(ctx, k.as<bf16>(), copies * k_stride, ctx.opt.seed + 42, -2.f, 2.f);
  const int grid = grid_for(ctx, static_cast<size_t>(T) * (hq + hk) * 8, kThreads);
  const int* pos = positions.as<const int>();
  const float* cs = table.as<const float>();

  // Reference first (reads the original copy 0), then the in-place kernel on copy 0.
  rope_ref_kernel<<<grid_for(ctx, static_cast<size_t>(T) * (hq + hk) * 64, 256), 256, 0, ctx.stream>>>(
      q.as<bf16>(), k.as<bf16>(), pos, cs, q_ref.as<float>(), k_ref.as<float>(), T, hq, hk);
  CUDA_CHECK_LAUNCH();
  rope_kernel<<<grid, kThreads, 0, ctx.stream>>>(q.as<bf16>(), k.as<bf16>(), pos, cs, T, hq, hk);
  CUDA_CHECK_LAUNCH();
  const double eq = rel_err(ctx, q.as<bf16>(), q_ref.as<float>(), nq);
  const double ek = rel_err(ctx, k.as<bf16>(), k_ref.as<float>(), nk);
  record_check(ctx, row, std::isnan(eq) || std::isnan(ek) ? NAN : std::max(eq, ek), kThreshold);
  q_ref.release();
  k_ref.release();

  apply_timing(row, time_gpu(ctx, [&](long long it) {
    const size_t c = static_cast<size_t>(it % copies);
    rope_kernel<<<grid, kThreads, 0, ctx.stream>>>(q.as<bf16>() + c * q_stride, k.as<bf16>() + c * k_stride, pos, cs,
                                                   T, hq, hk);
  }));
  append_note(row, "copies=" + std::to_string(copies) + ";in_place");
  ctx.emit(row);
}

}  // namespace

void run_elementwise(Context& ctx) {
  std::vector<int> tokens = {1, 16, 128, 1024, 4096, 16384};
  std::vector<Model> models = {{4096, 14336, 32, 8}, {8192, 28672, 64, 8}};
  if (ctx.opt.quick) {
    tokens = {1, 1024, 16384};
    models.resize(1);
  }
  DeviceBuffer table(static_cast<size_t>(kRopeMaxPos) * kHeadDim * sizeof(float));
  DeviceBuffer positions(static_cast<size_t>(kRopeMaxPos) * sizeof(int));
  rope_table_kernel<<<grid_for(ctx, kRopeMaxPos * 64, 256), 256, 0, ctx.stream>>>(table.as<float>(), kRopeMaxPos);
  CUDA_CHECK_LAUNCH();
  iota_kernel<<<grid_for(ctx, kRopeMaxPos, 256), 256, 0, ctx.stream>>>(positions.as<int>(), kRopeMaxPos, kRopeMaxPos);
  CUDA_CHECK_LAUNCH();
  for (const Model& md : models) {
    for (int T : tokens) {
      LLMSIM_REQUIRE(T <= kRopeMaxPos, "elementwise: T above the RoPE table size");
      bench_rmsnorm(ctx, md, T);
      bench_silu_mul(ctx, md, T);
      bench_add(ctx, md, T);
      bench_rope(ctx, md, T, table, positions);
    }
  }
}

}  // namespace llmsim
