// bench_decode_attn.cu: paged-KV decode attention with GQA (op_class "decode_attn").
//
// One query token per sequence attends to its whole context, read from a paged bf16 KV cache:
//
//   q           [batch, heads, 128] bf16
//   cache       [num_blocks, 2, kv_heads, 16, 128] bf16: physical block = 16 tokens; plane 0
//               holds K, plane 1 holds V; one (block, plane, kv head) tile is 16 x 128 = 4 KiB
//               contiguous
//   block_table [batch, max_blocks] int32: physical block of logical block j of sequence b
//               (the benchmark shuffles the physical order randomly, so reads are truly paged)
//   seq_lens    [batch] int32
//   out         [batch, heads, 128] bf16
// Query head h uses KV head h / G with G = heads / kv_heads (consecutive query heads share a KV
// head). Softmax in fp32 with scale 1/sqrt(128).
//
// Kernel (the suite's own, memory-bound by design):
//   grid (splits, kv_heads, batch), 128 threads = 4 warps. A CTA owns one (sequence, KV head)
//   and one chunk of `chunk` tokens (64..512, a multiple of 16) and serves ALL G query heads of
//   that KV head, so every K/V byte is read from HBM exactly once.
//   phase 1 (QK): warp w takes KV blocks w, w+4, ... of the chunk. Each half-warp handles one
//     token at a time, each lane 8 of its 128 dims (one 16-byte load), so a warp reads a
//     whole 4 KiB K tile with 8 coalesced loads per lane issued back to back. A lane
//     computes the G partial dot products for its 8 dims; a reduce-scatter over the 16 lanes
//     of the half-warp (log2(G) exchange steps of halving size, then a butterfly over the
//     remaining lanes) leaves each lane with the full score of one head; scores (pre-scaled by
//     scale*log2(e)) go to shared memory as s_p[token][g].
//   phase 2 (softmax): per head, max and sum of exp2 over the chunk (block reduction); s_p
//     is overwritten with the unnormalised probabilities.
//   phase 3 (PV): same token/dim split over the V tiles; lane accumulates acc[g][8 dims] for
//     all G heads; half-warps and then warps are summed through shared memory.
//   With splits == 1 the CTA writes the normalised bf16 output. Otherwise it writes its
//   unnormalised fp32 output and (max, sum) to a workspace and a second small kernel merges
//   the chunks (flash-decoding): O = sum_s 2^(m_s - M) o_s / sum_s 2^(m_s - M) l_s.
//   The chunk is chosen so that batch x kv_heads x splits fills about one wave of 4 CTAs/SM.
//
// Reference: one 128-thread block per (sequence, query head) computing scores, softmax (with
// exp, double sums) and the weighted V sum directly from the paged cache, one thread per token
// and then one per output dim. Compared on up to 16 sequences of copy 0 before timing.
#include "common.cuh"

#include <algorithm>
#include <numeric>
#include <random>

namespace llmsim {
namespace {

using bf16 = __nv_bfloat16;

constexpr int kHeadDim = 128;
constexpr int kBlockTokens = 16;   // tokens per KV-cache block (page)
constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kMaxChunk = 512;     // tokens per CTA: the chunk's scores live in shared memory
constexpr int kCheckSeqs = 16;     // sequences compared with the reference
constexpr double kThreshold = 1e-2;
constexpr double kMaxCacheBytes = 40e9;

static_assert(kHeadDim == 16 * 8, "a half-warp covers one token's head_dim with 16-byte loads");
static_assert(kBlockTokens == 16, "phase loops assume 8 token pairs per block");

struct DecodeParams {
  const bf16* q;
  const bf16* cache;
  const int* block_table;
  const int* seq_lens;
  bf16* out;
  float* part_o;    // [batch, kv_heads, splits, G, 128]: unnormalised partial outputs (splits > 1)
  float* part_ml;   // [batch, kv_heads, splits, G, 2]: (max, sum of exp2) of each chunk
  int heads, kv_heads, max_blocks, chunk, splits;
  float scale_log2; // softmax scale * log2(e)
};

// ------------------------------------------------------------------ reduce-scatter helpers

// Sums v[0..G) over the 16 lanes of a half-warp and leaves lane l16 with the total of ONE head
// in v[0]: step s (exchange offset 8 >> s) halves the live values; the lane keeps the upper
// half when its bit is set, hands the other half to its partner (lane ^ offset) and adds what the
// partner handed over. After log2(G) steps a plain butterfly over the remaining offsets
// finishes the sum. All 32 lanes must call it (both half-warps run the same steps).
template <int G>
__device__ __forceinline__ float reduce_scatter16(float (&v)[G], int l16) {
#pragma unroll
  for (int c = G, o = 8; c > 1; c >>= 1, o >>= 1) {
    const bool upper = (l16 & o) != 0;
#pragma unroll
    for (int j = 0; j < c / 2; ++j) {
      const float send = upper ? v[j] : v[j + c / 2];
      const float keep = upper ? v[j + c / 2] : v[j];
      v[j] = keep + __shfl_xor_sync(0xffffffffu, send, o);
    }
  }
#pragma unroll
  for (int o = 8 / G; o >= 1; o >>= 1) v[0] += __shfl_xor_sync(0xffffffffu, v[0], o);
  return v[0];
}

// The head whose score reduce_scatter16 leaves on lane l16.
template <int G>
__device__ __forceinline__ int head_of_lane(int l16) {
  int h = 0;
#pragma unroll
  for (int c = G, o = 8; c > 1; c >>= 1, o >>= 1)
    if (l16 & o) h += c / 2;
  return h;
}

__device__ __forceinline__ uint4 load16(const bf16* p) { return __ldg(reinterpret_cast<const uint4*>(p)); }

// ------------------------------------------------------------------ the kernel under test

template <int G>
__global__ void __launch_bounds__(kThreads) decode_attn_kernel(const DecodeParams p) {
  static_assert(G == 1 || G == 2 || G == 4 || G == 8, "G = heads / kv_heads must be 1, 2, 4 or 8");
  __shared__ __align__(16) float s_p[kMaxChunk * G];           // [token][g] scores -> probabilities
  __shared__ __align__(16) float s_o[kWarps][G][kHeadDim];     // per-warp partial outputs
  __shared__ float s_red[kWarps][G];                            // cross-warp reduction
  __shared__ float s_m[G], s_l[G];                              // chunk max / sum per head

  const int split = blockIdx.x, kvh = blockIdx.y, b = blockIdx.z;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int half = lane >> 4;  // which token of a pair this half-warp handles
  const int l16 = lane & 15;   // this lane's dims: [8*l16, 8*l16 + 8)
  const int start = split * p.chunk;
  const int ntok = max(0, min(p.chunk, p.seq_lens[b] - start));
  const size_t slot = (static_cast<size_t>(b) * p.kv_heads + kvh) * p.splits + split;  // workspace slot
  const size_t out_base = (static_cast<size_t>(b) * p.heads + kvh * G) * kHeadDim;      // [g][d] from here

  if (ntok == 0) {  // chunk past the end of the sequence (or an empty sequence)
    if (p.splits > 1) {
      for (int e = tid; e < G * kHeadDim; e += kThreads) p.part_o[slot * G * kHeadDim + e] = 0.f;
      if (tid < G) {
        p.part_ml[(slot * G + tid) * 2] = -INFINITY;
        p.part_ml[(slot * G + tid) * 2 + 1] = 0.f;
      }
    } else {
      for (int e = tid; e < G * kHeadDim; e += kThreads) p.out[out_base + e] = __float2bfloat16_rn(0.f);
    }
    return;
  }

  const int* bt = p.block_table + static_cast<size_t>(b) * p.max_blocks + start / kBlockTokens;
  const int nblk = (ntok + kBlockTokens - 1) / kBlockTokens;
  const size_t block_elems = static_cast<size_t>(2) * p.kv_heads * kBlockTokens * kHeadDim;
  const size_t v_plane = static_cast<size_t>(p.kv_heads) * kBlockTokens * kHeadDim;
  const size_t lane_off = static_cast<size_t>(kvh) * kBlockTokens * kHeadDim + 8 * l16;

  // ---- phase 1: scores s_p[t][g] = (q_g . k_t) * scale * log2(e)
  {
    float qf[G][8];
#pragma unroll
    for (int g = 0; g < G; ++g) {
      unpack_bf16x8(load16(p.q + out_base + g * kHeadDim + 8 * l16), qf[g]);
#pragma unroll
      for (int d = 0; d < 8; ++d) qf[g][d] *= p.scale_log2;
    }
    const int my_head = head_of_lane<G>(l16);
    const bool writer = (l16 & (16 / G - 1)) == 0;  // one lane per distinct (token, head) result
    for (int j = warp; j < nblk; j += kWarps) {
      const bf16* kt = p.cache + static_cast<size_t>(bt[j]) * block_elems + lane_off;
      uint4 kr[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) kr[i] = load16(kt + (2 * i + half) * kHeadDim);
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        float kf[8];
        unpack_bf16x8(kr[i], kf);
        float dot[G];
#pragma unroll
        for (int g = 0; g < G; ++g) {
          float s = 0.f;
#pragma unroll
          for (int d = 0; d < 8; ++d) s = fmaf(qf[g][d], kf[d], s);
          dot[g] = s;
        }
        const float score = reduce_scatter16<G>(dot, l16);
        const int t = j * kBlockTokens + 2 * i + half;
        if (writer) s_p[t * G + my_head] = t < ntok ? score : -INFINITY;
      }
    }
  }
  __syncthreads();

  // ---- phase 2: per-head max and sum of exp2 over the chunk. Thread tid visits entries
  // tid, tid + 128, ...; since G divides 128 they all belong to head tid % G.
  const int n_entries = ntok * G;
  const int hg = tid % G;
  float m = -INFINITY;
  for (int e = tid; e < n_entries; e += kThreads) m = fmaxf(m, s_p[e]);
#pragma unroll
  for (int o = 16; o >= G; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));  // keeps lane % G
  if (lane < G) s_red[warp][lane] = m;
  __syncthreads();
  m = s_red[0][hg];
#pragma unroll
  for (int w = 1; w < kWarps; ++w) m = fmaxf(m, s_red[w][hg]);
  __syncthreads();  // everyone has read s_red before it is reused
  float l = 0.f;
  for (int e = tid; e < n_entries; e += kThreads) {
    const float pe = exp2f(s_p[e] - m);
    s_p[e] = pe;
    l += pe;
  }
#pragma unroll
  for (int o = 16; o >= G; o >>= 1) l += __shfl_xor_sync(0xffffffffu, l, o);
  if (lane < G) s_red[warp][lane] = l;
  __syncthreads();  // also publishes the probabilities in s_p
  l = 0.f;
#pragma unroll
  for (int w = 0; w < kWarps; ++w) l += s_red[w][hg];
  if (tid < G) {  // hg == tid here
    s_m[tid] = m;
    s_l[tid] = l;
  }

  // ---- phase 3: acc[g][d] = sum_t p[t][g] * v[t][d] over this lane's tokens and dims
  float acc[G][8];
#pragma unroll
  for (int g = 0; g < G; ++g)
#pragma unroll
    for (int d = 0; d < 8; ++d) acc[g][d] = 0.f;
  for (int j = warp; j < nblk; j += kWarps) {
    const bf16* vt = p.cache + static_cast<size_t>(bt[j]) * block_elems + v_plane + lane_off;
    uint4 vr[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) vr[i] = load16(vt + (2 * i + half) * kHeadDim);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int t = j * kBlockTokens + 2 * i + half;
      if (t < ntok) {  // tokens past the sequence end contribute nothing (their V may be garbage)
        float vf[8];
        unpack_bf16x8(vr[i], vf);
        float pg[G];
        if constexpr (G % 4 == 0) {
#pragma unroll
          for (int g = 0; g < G; g += 4) {
            const float4 p4 = *reinterpret_cast<const float4*>(&s_p[t * G + g]);
            pg[g] = p4.x;
            pg[g + 1] = p4.y;
            pg[g + 2] = p4.z;
            pg[g + 3] = p4.w;
          }
        } else {
#pragma unroll
          for (int g = 0; g < G; ++g) pg[g] = s_p[t * G + g];
        }
#pragma unroll
        for (int g = 0; g < G; ++g)
#pragma unroll
          for (int d = 0; d < 8; ++d) acc[g][d] = fmaf(pg[g], vf[d], acc[g][d]);
      }
    }
  }
  // The two half-warps hold the same dims for different tokens: add them.
#pragma unroll
  for (int g = 0; g < G; ++g)
#pragma unroll
    for (int d = 0; d < 8; ++d) acc[g][d] += __shfl_xor_sync(0xffffffffu, acc[g][d], 16);
  if (half == 0) {
#pragma unroll
    for (int g = 0; g < G; ++g) {
      float4* dst = reinterpret_cast<float4*>(&s_o[warp][g][8 * l16]);
      dst[0] = make_float4(acc[g][0], acc[g][1], acc[g][2], acc[g][3]);
      dst[1] = make_float4(acc[g][4], acc[g][5], acc[g][6], acc[g][7]);
    }
  }
  __syncthreads();

  // ---- epilogue: sum the warps; normalise (single chunk) or store the partial result
  for (int e = tid; e < G * kHeadDim; e += kThreads) {
    const int g = e / kHeadDim, d = e % kHeadDim;
    float o = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) o += s_o[w][g][d];
    if (p.splits == 1) p.out[out_base + e] = __float2bfloat16_rn(o / s_l[g]);
    else p.part_o[slot * G * kHeadDim + e] = o;
  }
  if (p.splits > 1 && tid < G) {
    p.part_ml[(slot * G + tid) * 2] = s_m[tid];
    p.part_ml[(slot * G + tid) * 2 + 1] = s_l[tid];
  }
}

// Merges the chunks of one (query head, sequence): grid (heads, batch), one thread per dim.
__global__ void __launch_bounds__(kHeadDim) decode_attn_combine_kernel(const DecodeParams p) {
  const int h = blockIdx.x, b = blockIdx.y, d = threadIdx.x;
  const int G = p.heads / p.kv_heads, kvh = h / G, g = h % G;
  const size_t base = (static_cast<size_t>(b) * p.kv_heads + kvh) * p.splits;
  float M = -INFINITY;
  for (int s = 0; s < p.splits; ++s) M = fmaxf(M, p.part_ml[((base + s) * G + g) * 2]);
  float O = 0.f, L = 0.f;
  if (M != -INFINITY) {
    for (int s = 0; s < p.splits; ++s) {
      const float ms = p.part_ml[((base + s) * G + g) * 2];
      if (ms == -INFINITY) continue;  // empty chunk
      const float w = exp2f(ms - M);
      O += w * p.part_o[((base + s) * G + g) * kHeadDim + d];
      L += w * p.part_ml[((base + s) * G + g) * 2 + 1];
    }
  }
  p.out[(static_cast<size_t>(b) * p.heads + h) * kHeadDim + d] = __float2bfloat16_rn(L > 0.f ? O / L : 0.f);
}

// ------------------------------------------------------------------ fp32 reference

// grid (heads, sequences checked), 128 threads, dynamic shared memory = seq_len floats.
__global__ void decode_attn_ref_kernel(const DecodeParams p, float scale, float* __restrict__ ref) {
  extern __shared__ float sc[];
  __shared__ float s_max;
  __shared__ double s_sum;
  const int h = blockIdx.x, b = blockIdx.y;
  const int kvh = h / (p.heads / p.kv_heads);
  const int len = p.seq_lens[b];
  const size_t block_elems = static_cast<size_t>(2) * p.kv_heads * kBlockTokens * kHeadDim;
  const bf16* q = p.q + (static_cast<size_t>(b) * p.heads + h) * kHeadDim;
  auto token_row = [&](int t, int plane) {  // K (plane 0) or V (plane 1) row of token t
    const int phys = p.block_table[static_cast<size_t>(b) * p.max_blocks + t / kBlockTokens];
    return p.cache + static_cast<size_t>(phys) * block_elems +
           ((static_cast<size_t>(plane) * p.kv_heads + kvh) * kBlockTokens + t % kBlockTokens) * kHeadDim;
  };
  for (int t = threadIdx.x; t < len; t += blockDim.x) {
    const bf16* k = token_row(t, 0);
    float s = 0.f;
    for (int d = 0; d < kHeadDim; ++d) s += to_f32(q[d]) * to_f32(k[d]);
    sc[t] = s * scale;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    float mx = -INFINITY;
    for (int t = 0; t < len; ++t) mx = fmaxf(mx, sc[t]);
    s_max = mx;
  }
  __syncthreads();
  for (int t = threadIdx.x; t < len; t += blockDim.x) sc[t] = expf(sc[t] - s_max);
  __syncthreads();
  if (threadIdx.x == 0) {
    double sum = 0.0;
    for (int t = 0; t < len; ++t) sum += sc[t];
    s_sum = sum;
  }
  __syncthreads();
  const int d = threadIdx.x;  // blockDim.x == kHeadDim
  double o = 0.0;
  for (int t = 0; t < len; ++t) o += static_cast<double>(sc[t]) * to_f32(token_row(t, 1)[d]);
  ref[(static_cast<size_t>(b) * p.heads + h) * kHeadDim + d] = len > 0 ? static_cast<float>(o / s_sum) : 0.f;
}

// ------------------------------------------------------------------ host side

// Largest chunk (fewest partial results) that still gives about one wave of CTAs.
int choose_chunk(const Context& ctx, int batch, int kv_heads, int ctx_len) {
  const long long target = 4ll * ctx.sm_count;
  for (int chunk : {512, 256, 128, 64}) {
    const long long ctas = static_cast<long long>(batch) * kv_heads * ((ctx_len + chunk - 1) / chunk);
    if (ctas >= target) return chunk;
  }
  return 64;
}

void launch_decode(const DecodeParams& p, int batch, cudaStream_t s) {
  const dim3 grid(p.splits, p.kv_heads, batch);
  switch (p.heads / p.kv_heads) {
    case 1: decode_attn_kernel<1><<<grid, kThreads, 0, s>>>(p); break;
    case 2: decode_attn_kernel<2><<<grid, kThreads, 0, s>>>(p); break;
    case 4: decode_attn_kernel<4><<<grid, kThreads, 0, s>>>(p); break;
    case 8: decode_attn_kernel<8><<<grid, kThreads, 0, s>>>(p); break;
    default: die(__FILE__, __LINE__, "decode_attn: heads / kv_heads must be 1, 2, 4 or 8");
  }
  if (p.splits > 1) decode_attn_combine_kernel<<<dim3(p.heads, batch), kHeadDim, 0, s>>>(p);
}

void bench_point(Context& ctx, int batch, int ctx_len, int heads, int kv_heads) {
  const int G = heads / kv_heads;
  const int blocks_per_seq = (ctx_len + kBlockTokens - 1) / kBlockTokens;
  const size_t num_blocks = static_cast<size_t>(batch) * blocks_per_seq;
  const size_t cache_elems = num_blocks * 2 * kv_heads * kBlockTokens * kHeadDim;
  const size_t cache_bytes = cache_elems * sizeof(bf16);

  Row row;
  row.op_class = "decode_attn";
  row.op = "paged_gqa";
  row.dtype = "bf16";
  row.batch = batch;
  row.ctx = ctx_len;
  row.heads = heads;
  row.kv_heads = kv_heads;
  row.head_dim = kHeadDim;
  row.flops = 4ll * batch * heads * ctx_len * kHeadDim;
  row.bytes = 2ll * batch * ctx_len * kv_heads * kHeadDim * 2 + 2ll * batch * heads * kHeadDim * 2;
  if (static_cast<double>(cache_bytes) > kMaxCacheBytes) {
    std::fprintf(stderr, "[decode_attn] batch=%d ctx=%d: KV cache %.1f GB above 40 GB, skipped\n", batch, ctx_len,
                 cache_bytes * 1e-9);
    return;
  }
  const int copies = cache_bytes < ctx.rotate_bytes ? rotation_copies(ctx, cache_bytes, 2, 4096) : 1;
  const int chunk = choose_chunk(ctx, batch, kv_heads, ctx_len);
  const int splits = (ctx_len + chunk - 1) / chunk;
  const int nb_check = std::min(batch, kCheckSeqs);

  DeviceBuffer cache, q, out, table, lens, part_o, part_ml, ref;
  const size_t q_elems = static_cast<size_t>(batch) * heads * kHeadDim;
  bool ok = cache.try_alloc(copies * cache_bytes) && q.try_alloc(q_elems * sizeof(bf16)) &&
            out.try_alloc(q_elems * sizeof(bf16)) && table.try_alloc(num_blocks * sizeof(int)) &&
            lens.try_alloc(batch * sizeof(int)) &&
            ref.try_alloc(static_cast<size_t>(nb_check) * heads * kHeadDim * sizeof(float));
  if (ok && splits > 1)
    ok = part_o.try_alloc(static_cast<size_t>(batch) * kv_heads * splits * G * kHeadDim * sizeof(float)) &&
         part_ml.try_alloc(static_cast<size_t>(batch) * kv_heads * splits * G * 2 * sizeof(float));
  if (!ok) {
    std::fprintf(stderr, "[decode_attn] batch=%d ctx=%d heads=%d: out of device memory, skipped\n", batch, ctx_len,
                 heads);
    return;
  }

  // Random paging: sequence b's logical block j lives at a random physical block.
  std::vector<int> h_table(num_blocks);
  std::iota(h_table.begin(), h_table.end(), 0);
  std::mt19937_64 rng(ctx.opt.seed ^ (static_cast<unsigned long long>(batch) << 32) ^ ctx_len);
  std::shuffle(h_table.begin(), h_table.end(), rng);
  std::vector<int> h_lens(batch, ctx_len);
  CUDA_CHECK(cudaMemcpyAsync(table.get(), h_table.data(), num_blocks * sizeof(int), cudaMemcpyHostToDevice,
                             ctx.stream));
  CUDA_CHECK(cudaMemcpyAsync(lens.get(), h_lens.data(), batch * sizeof(int), cudaMemcpyHostToDevice, ctx.stream));
  fill_uniform(ctx, cache.as<bf16>(), copies * cache_elems, ctx.opt.seed + 51, -1.f, 1.f);
  // Large q makes the softmax peaked (score std ~2), so a wrong weighting shows in the check.
  fill_uniform(ctx, q.as<bf16>(), q_elems, ctx.opt.seed + 52, -6.f, 6.f);

  const float scale = 1.f / std::sqrt(static_cast<float>(kHeadDim));
  DecodeParams p{};
  p.q = q.as<bf16>();
  p.cache = cache.as<bf16>();
  p.block_table = table.as<int>();
  p.seq_lens = lens.as<int>();
  p.out = out.as<bf16>();
  p.part_o = part_o.as<float>();
  p.part_ml = part_ml.as<float>();
  p.heads = heads;
  p.kv_heads = kv_heads;
  p.max_blocks = blocks_per_seq;
  p.chunk = chunk;
  p.splits = splits;
  p.scale_log2 = scale * 1.4426950408889634f;

  // Check on copy 0.
  launch_decode(p, batch, ctx.stream);
  CUDA_CHECK_LAUNCH();
  const size_t ref_smem = static_cast<size_t>(ctx_len) * sizeof(float);
  if (ref_smem > 48 * 1024) {
    LLMSIM_REQUIRE(ref_smem <= static_cast<size_t>(ctx.prop.sharedMemPerBlockOptin),
                   "decode_attn: context too long for the reference kernel");
    CUDA_CHECK(cudaFuncSetAttribute(decode_attn_ref_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(ref_smem)));
  }
  decode_attn_ref_kernel<<<dim3(heads, nb_check), kHeadDim, ref_smem, ctx.stream>>>(p, scale, ref.as<float>());
  CUDA_CHECK_LAUNCH();
  record_check(ctx, row, rel_err(ctx, out.as<bf16>(), ref.as<float>(), static_cast<size_t>(nb_check) * heads * kHeadDim),
               kThreshold);
  ref.release();

  apply_timing(row, time_gpu(ctx, [&](long long it) {
    DecodeParams pc = p;
    pc.cache = p.cache + static_cast<size_t>(it % copies) * cache_elems;
    launch_decode(pc, batch, ctx.stream);
  }));
  append_note(row, "chunk=" + std::to_string(chunk) + ";splits=" + std::to_string(splits) +
                       ";copies=" + std::to_string(copies) + ";check=seqs " + std::to_string(nb_check) + "/" +
                       std::to_string(batch));
  ctx.emit(row);
}

}  // namespace

void run_decode_attn(Context& ctx) {
  std::vector<int> batches = {1, 8, 32, 64, 128, 256};
  std::vector<int> ctxs = {128, 512, 1024, 2048, 4096, 8192};
  std::vector<std::pair<int, int>> head_cfgs = {{32, 8}, {64, 8}};
  if (ctx.opt.quick) {
    batches = {1, 64};
    ctxs = {512, 4096};
  }
  for (const auto& hc : head_cfgs)
    for (int b : batches)
      for (int c : ctxs) bench_point(ctx, b, c, hc.first, hc.second);
}

}  // namespace llmsim
