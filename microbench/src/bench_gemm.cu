// bench_gemm.cu: linear-layer GEMMs through cuBLASLt (op_class "gemm" and "gemm_fp8").
//
// The simulator's convention is Y[M, N] = X[M, K] @ W[N, K]^T (M tokens, N output features,
// K input features), all row-major. cuBLASLt is column-major, so the call computes
// Y^T (N x M) = op(A) op(B) with
//   A = W  stored as K x N column-major (ld K), op(A) = transpose   -> N x K
//   B = X  stored as K x M column-major (ld K), op(B) = none        -> K x M
//   C = D  = Y^T stored N x M column-major (ld N)                    == Y row-major [M, N]
// i.e. the "TN" layout that FP8 on Hopper requires.
//
//   gemm      bf16 A/B/C/D, fp32 compute (CUBLAS_COMPUTE_32F) and fp32 alpha/beta.
//   gemm_fp8  e4m3 A/B, bf16 C/D, fp32 compute; per-tensor dequantisation scales passed as
//             device pointers (CUBLASLT_MATMUL_DESC_A/B_SCALE_POINTER), fast accumulation off
//             unless --fp8-fast-accum. Needs sm_89+; below that the class is skipped (stderr note).
//             If cuBLASLt offers no algorithm for (or rejects the call with) an M that is not a
//             multiple of 16, M is padded to the next multiple of 16 (note padded_m=...; flops and
//             bytes stay those of M). Any other point cuBLASLt cannot run is skipped with a note
//             on stderr instead of ending the run.
//
// Algorithm: the top result of cublasLtMatmulAlgoGetHeuristic with a 32 MiB workspace (what
// frameworks use by default). Rotation: the call it uses W copy it % cw and X copy it % cx,
// with each set of copies spanning >= the rotation size (256 MiB), so W always streams from HBM.
//
// Check (every point, before timing, on copy 0): a plain tiled fp32 reference kernel computes
// Y rows for up to 64 rows of M (all rows when M <= 64, else 64 rows spread evenly including
// the first and last; note check=rows S/M), on the same (dequantised) inputs;
// rel_err = ||Y - Yref|| / ||Yref|| over those rows. Thresholds: bf16 1e-2, fp8 5e-2.
//
// flops = 2 M N K; bytes = (N K + M K) * input bytes + M N * 2.
#include "common.cuh"

#include <fstream>
#include <sstream>

#ifdef LLMSIM_HAVE_CUBLASLT
#include <cublasLt.h>

#define CUBLAS_CHECK(expr)                                                                            \
  do {                                                                                                \
    const cublasStatus_t llmsim_st_ = (expr);                                                         \
    if (llmsim_st_ != CUBLAS_STATUS_SUCCESS) {                                                        \
      std::fprintf(stderr, "llmsim-bench: cuBLAS error at %s:%d: %s failed: %s (%d)\n", __FILE__,     \
                   __LINE__, #expr, cublasGetStatusString(llmsim_st_), static_cast<int>(llmsim_st_)); \
      std::fflush(stdout);                                                                            \
      std::fflush(stderr);                                                                            \
      std::exit(1);                                                                                   \
    }                                                                                                 \
  } while (0)
#endif

namespace llmsim {

#ifndef LLMSIM_HAVE_CUBLASLT

bool gemm_available() { return false; }
int cublaslt_version() { return 0; }
void run_gemm(Context&, bool fp8) {
  std::fprintf(stderr, "%s: llmsim-bench was built without cuBLASLt: skipped\n", fp8 ? "gemm_fp8" : "gemm");
}

#else  // LLMSIM_HAVE_CUBLASLT

bool gemm_available() { return true; }
int cublaslt_version() { return static_cast<int>(cublasLtGetVersion()); }

namespace {

struct GemmShape {
  std::string model, op;
  long long n = 0, k = 0;
};

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return std::string();
  const size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> out;
  std::stringstream ss(line);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(trim(item));
  if (!line.empty() && line.back() == ',') out.push_back(std::string());
  return out;
}

// Reads a CSV with a header naming (at least) the columns model, op, n, k, in any order.
// Blank lines and lines starting with '#' are ignored.
std::vector<GemmShape> load_shapes(const std::string& path) {
  std::ifstream in(path);
  if (!in) die(__FILE__, __LINE__, "cannot open shapes file " + path);
  std::string line;
  std::vector<GemmShape> shapes;
  int col_model = -1, col_op = -1, col_n = -1, col_k = -1;
  bool have_header = false;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    const std::string t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    const std::vector<std::string> f = split_csv(t);
    if (!have_header) {
      for (int i = 0; i < static_cast<int>(f.size()); ++i) {
        if (f[i] == "model") col_model = i;
        else if (f[i] == "op") col_op = i;
        else if (f[i] == "n") col_n = i;
        else if (f[i] == "k") col_k = i;
      }
      if (col_model < 0 || col_op < 0 || col_n < 0 || col_k < 0)
        die(__FILE__, __LINE__, path + ": header must name the columns model,op,n,k");
      have_header = true;
      continue;
    }
    const int need = std::max(std::max(col_model, col_op), std::max(col_n, col_k));
    if (static_cast<int>(f.size()) <= need)
      die(__FILE__, __LINE__, path + ":" + std::to_string(lineno) + ": too few fields");
    GemmShape s;
    s.model = f[col_model];
    s.op = f[col_op];
    char* end = nullptr;
    s.n = std::strtoll(f[col_n].c_str(), &end, 10);
    if (*end != '\0' || s.n <= 0) die(__FILE__, __LINE__, path + ":" + std::to_string(lineno) + ": bad n");
    s.k = std::strtoll(f[col_k].c_str(), &end, 10);
    if (*end != '\0' || s.k <= 0) die(__FILE__, __LINE__, path + ":" + std::to_string(lineno) + ": bad k");
    shapes.push_back(s);
  }
  if (shapes.empty()) die(__FILE__, __LINE__, path + ": no shapes");
  return shapes;
}

// llama-3-8b at tensor parallelism 1 (same as microbench/shapes_example.csv).
std::vector<GemmShape> default_shapes() {
  return {{"llama-3-8b", "qkv", 6144, 4096},
          {"llama-3-8b", "o", 4096, 4096},
          {"llama-3-8b", "gate_up", 28672, 4096},
          {"llama-3-8b", "down", 4096, 14336},
          {"llama-3-8b", "lm_head", 128256, 4096}};
}

}  // namespace

namespace {

using bf16 = __nv_bfloat16;
using fp8 = __nv_fp8_e4m3;

constexpr size_t kWorkspaceBytes = 32ull << 20;
constexpr int kMaxCheckRows = 64;
constexpr float kFp8ScaleA = 0.25f;  // dequantisation scale of W (A)
constexpr float kFp8ScaleB = 2.0f;   // dequantisation scale of X (B)

// ------------------------------------------------------------------ reference and check kernels

// ref[s, n] = scale * sum_k X[rows[s], k] * W[n, k] in fp32, for S sampled rows.
// 16x16 threads; each block computes a 16 (rows) x 16 (features) tile, staging 16x32 tiles of X
// and W through shared memory (padded against bank conflicts).
template <typename T>
__global__ void gemm_ref_kernel(const T* __restrict__ X, const T* __restrict__ W, const int* __restrict__ rows, int S,
                                int N, int K, float scale, float* __restrict__ ref) {
  __shared__ float xs[16][33];
  __shared__ float ws[16][33];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int s = blockIdx.y * 16 + ty;   // sampled row this thread outputs
  const int n = blockIdx.x * 16 + tx;   // feature this thread outputs
  const int xrow = blockIdx.y * 16 + ty, wrow = blockIdx.x * 16 + ty;  // rows this thread stages
  float acc = 0.f;
  for (int k0 = 0; k0 < K; k0 += 32) {
    for (int kk = tx; kk < 32; kk += 16) {
      const int k = k0 + kk;
      xs[ty][kk] = (xrow < S && k < K) ? to_f32(X[static_cast<size_t>(rows[xrow]) * K + k]) : 0.f;
      ws[ty][kk] = (wrow < N && k < K) ? to_f32(W[static_cast<size_t>(wrow) * K + k]) : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < 32; ++kk) acc = fmaf(xs[ty][kk], ws[tx][kk], acc);
    __syncthreads();
  }
  if (s < S && n < N) ref[static_cast<size_t>(s) * N + n] = acc * scale;
}

// got[s, n] = Y[rows[s], n]
__global__ void gather_rows_kernel(const bf16* __restrict__ Y, const int* __restrict__ rows, int S, int N,
                                   float* __restrict__ got) {
  const size_t total = static_cast<size_t>(S) * N;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t s = i / N, n = i % N;
    got[i] = __bfloat162float(Y[static_cast<size_t>(rows[s]) * N + n]);
  }
}

// ------------------------------------------------------------------ cuBLASLt plumbing

struct LtPlan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulHeuristicResult_t heur{};
  LtPlan() = default;
  LtPlan(const LtPlan&) = delete;
  LtPlan& operator=(const LtPlan&) = delete;
  ~LtPlan() { reset(); }
  void reset() {
    if (desc) CUBLAS_CHECK(cublasLtMatmulDescDestroy(desc));
    if (a) CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(a));
    if (b) CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(b));
    if (c) CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(c));
    desc = nullptr;
    a = b = c = nullptr;
  }
};

class LtGemm {
 public:
  LtGemm() {
    CUBLAS_CHECK(cublasLtCreate(&handle_));
    workspace_.alloc(kWorkspaceBytes);
  }
  ~LtGemm() { CUBLAS_CHECK(cublasLtDestroy(handle_)); }

  // Builds the descriptors for Y[m, n] = X[m, k] W[n, k]^T and asks the heuristic for its top
  // algorithm. Returns false when cuBLASLt has none for this problem.
  bool plan(LtPlan& p, bool use_fp8, long long m, long long n, long long k, const float* a_scale,
            const float* b_scale, bool fast_accum) {
    p.reset();
    const cudaDataType_t in_t = use_fp8 ? CUDA_R_8F_E4M3 : CUDA_R_16BF;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    if (use_fp8) {
      CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &a_scale,
                                                  sizeof a_scale));
      CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &b_scale,
                                                  sizeof b_scale));
      const int8_t fa = fast_accum ? 1 : 0;
      CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fa, sizeof fa));
    }
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, in_t, k, n, k));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, in_t, k, m, k));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.c, CUDA_R_16BF, n, m, n));

    cublasLtMatmulPreference_t pref = nullptr;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const uint64_t ws = kWorkspaceBytes;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    int returned = 0;
    const cublasStatus_t st =
        cublasLtMatmulAlgoGetHeuristic(handle_, p.desc, p.a, p.b, p.c, p.c, pref, 1, &p.heur, &returned);
    CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
    if (st == CUBLAS_STATUS_NOT_SUPPORTED || (st == CUBLAS_STATUS_SUCCESS && returned == 0)) return false;
    CUBLAS_CHECK(st);
    return p.heur.state == CUBLAS_STATUS_SUCCESS;
  }

  // Returns cuBLASLt's status (used for the first call of a point, which may be rejected).
  cublasStatus_t try_run(const LtPlan& p, const void* W, const void* X, void* Y, cudaStream_t s) {
    const float alpha = 1.f, beta = 0.f;
    return cublasLtMatmul(handle_, p.desc, &alpha, W, p.a, X, p.b, &beta, Y, p.c, Y, p.c, &p.heur.algo,
                          workspace_.get(), kWorkspaceBytes, s);
  }

  void run(const LtPlan& p, const void* W, const void* X, void* Y, cudaStream_t s) {
    CUBLAS_CHECK(try_run(p, W, X, Y, s));
  }

  // "algo=..;tile=..;splitk=..;waves=.." for the row's note. Informational: a failing query is
  // reported on stderr and leaves "?" in the note instead of ending the run.
  static std::string describe(const LtPlan& p) {
    int32_t id = -1, splitk = -1;
    uint32_t tile = 0;
    size_t written = 0;
    const cublasStatus_t st[3] = {
        cublasLtMatmulAlgoConfigGetAttribute(&p.heur.algo, CUBLASLT_ALGO_CONFIG_ID, &id, sizeof id, &written),
        cublasLtMatmulAlgoConfigGetAttribute(&p.heur.algo, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile, sizeof tile, &written),
        cublasLtMatmulAlgoConfigGetAttribute(&p.heur.algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splitk, sizeof splitk,
                                             &written)};
    for (const cublasStatus_t s : st)
      if (s != CUBLAS_STATUS_SUCCESS) {
        std::fprintf(stderr, "llmsim-bench: warning: %s:%d: cublasLtMatmulAlgoConfigGetAttribute failed: %s\n",
                     __FILE__, __LINE__, cublasGetStatusString(s));
        return "algo=?";
      }
    char buf[128];
    std::snprintf(buf, sizeof buf, "algo=%d;tile=%u;splitk=%d;waves=%.2f;ws=%zu", id, tile, splitk,
                  p.heur.wavesCount, p.heur.workspaceSize);
    return buf;
  }

 private:
  cublasLtHandle_t handle_ = nullptr;
  DeviceBuffer workspace_;
};

// ------------------------------------------------------------------ one shape, all M

template <typename T>
void bench_shape(Context& ctx, LtGemm& lt, const GemmShape& sh, const std::vector<std::string>& aliases,
                 const std::vector<long long>& tokens, bool use_fp8, const float* d_scales) {
  const long long N = sh.n, K = sh.k;
  const char* cls = use_fp8 ? "gemm_fp8" : "gemm";
  const size_t in_bytes = sizeof(T);
  if (use_fp8 && (N % 16 != 0 || K % 16 != 0)) {
    std::fprintf(stderr, "[%s] %s/%s n=%lld k=%lld: FP8 needs n and k multiples of 16, skipped\n", cls,
                 sh.model.c_str(), sh.op.c_str(), N, K);
    return;
  }
  const size_t w_stride = align_up(static_cast<size_t>(N) * K * in_bytes, 256);  // bytes per W copy
  const int cw = rotation_copies(ctx, w_stride);
  DeviceBuffer W;
  if (!W.try_alloc(cw * w_stride)) {
    std::fprintf(stderr, "[%s] %s/%s: out of device memory for W, skipped\n", cls, sh.model.c_str(), sh.op.c_str());
    return;
  }
  fill_uniform(ctx, W.as<T>(), cw * w_stride / in_bytes, ctx.opt.seed + 61, -1.f, 1.f);
  const float ref_scale = use_fp8 ? kFp8ScaleA * kFp8ScaleB : 1.f;
  const double threshold = use_fp8 ? 5e-2 : 1e-2;

  for (const long long M : tokens) {
    Row row;
    row.op_class = cls;
    row.op = sh.model + "/" + sh.op;
    row.dtype = use_fp8 ? "fp8_e4m3" : "bf16";
    row.m = M;
    row.n = N;
    row.k = K;
    row.flops = 2 * M * N * K;
    row.bytes = static_cast<long long>((N * K + M * K) * in_bytes + M * N * 2);

    // Plan, allocate and fill for the M actually run (Mp), then make the first call. FP8 with an M
    // that is not a multiple of 16 falls back to Mp = M rounded up when cuBLASLt has no algorithm
    // for M or rejects the call.
    LtPlan plan;
    DeviceBuffer X, Y;
    size_t x_stride = 0;
    int cx = 1;
    auto setup = [&](long long Mp, std::string& why) -> bool {
      X.release();
      Y.release();
      if (!lt.plan(plan, use_fp8, Mp, N, K, d_scales, d_scales + 1, ctx.opt.fp8_fast_accum)) {
        why = "cuBLASLt has no algorithm";
        return false;
      }
      x_stride = align_up(static_cast<size_t>(Mp) * K * in_bytes, 256);
      cx = rotation_copies(ctx, x_stride);
      if (!X.try_alloc(cx * x_stride) || !Y.try_alloc(static_cast<size_t>(Mp) * N * sizeof(bf16))) {
        why = "out of device memory";
        return false;
      }
      fill_uniform(ctx, X.as<T>(), cx * x_stride / in_bytes, ctx.opt.seed + 62 + M, -1.f, 1.f);
      const cublasStatus_t st = lt.try_run(plan, W.get(), X.get(), Y.get(), ctx.stream);
      if (st != CUBLAS_STATUS_SUCCESS) {
        why = std::string("cublasLtMatmul failed: ") + cublasGetStatusString(st);
        CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
        return false;
      }
      return true;
    };
    std::string why;
    bool ok = setup(M, why);
    if (!ok && use_fp8 && M % 16 != 0 && why != "out of device memory") {
      const long long Mp = (M + 15) / 16 * 16;
      std::fprintf(stderr, "[%s] %s m=%lld: %s, retrying with m padded to %lld\n", cls, row.op.c_str(), M,
                   why.c_str(), Mp);
      ok = setup(Mp, why);
      if (ok) append_note(row, "padded_m=" + std::to_string(Mp));
    }
    if (!ok) {
      std::fprintf(stderr, "[%s] %s m=%lld n=%lld k=%lld: %s, skipped\n", cls, row.op.c_str(), M, N, K, why.c_str());
      continue;
    }
    const int S = static_cast<int>(std::min<long long>(M, kMaxCheckRows));
    DeviceBuffer rows, ref, got;
    if (!rows.try_alloc(S * sizeof(int)) || !ref.try_alloc(static_cast<size_t>(S) * N * sizeof(float)) ||
        !got.try_alloc(static_cast<size_t>(S) * N * sizeof(float))) {
      std::fprintf(stderr, "[%s] %s m=%lld: out of device memory for the check, skipped\n", cls, row.op.c_str(), M);
      continue;
    }

    // Check on copy 0: rows spread over [0, M), first and last included.
    std::vector<int> h_rows(S);
    for (int s = 0; s < S; ++s)
      h_rows[s] = M <= kMaxCheckRows ? s : static_cast<int>(static_cast<long long>(s) * (M - 1) / (S - 1));
    CUDA_CHECK(cudaMemcpyAsync(rows.get(), h_rows.data(), S * sizeof(int), cudaMemcpyHostToDevice, ctx.stream));
    // (Y already holds the output of the first call on copy 0, made by setup().)
    gemm_ref_kernel<T><<<dim3(static_cast<unsigned>((N + 15) / 16), (S + 15) / 16), dim3(16, 16), 0, ctx.stream>>>(
        X.as<T>(), W.as<T>(), rows.as<int>(), S, static_cast<int>(N), static_cast<int>(K), ref_scale, ref.as<float>());
    CUDA_CHECK_LAUNCH();
    gather_rows_kernel<<<grid_for(ctx, static_cast<size_t>(S) * N, 256), 256, 0, ctx.stream>>>(
        Y.as<bf16>(), rows.as<int>(), S, static_cast<int>(N), got.as<float>());
    CUDA_CHECK_LAUNCH();
    record_check(ctx, row, rel_err(ctx, got.as<float>(), ref.as<float>(), static_cast<size_t>(S) * N), threshold);
    ref.release();
    got.release();

    char* wbase = W.as<char>();
    char* xbase = X.as<char>();
    apply_timing(row, time_gpu(ctx, [&](long long it) {
      lt.run(plan, wbase + static_cast<size_t>(it % cw) * w_stride, xbase + static_cast<size_t>(it % cx) * x_stride,
             Y.get(), ctx.stream);
    }));
    append_note(row, LtGemm::describe(plan));
    append_note(row, "copies_w=" + std::to_string(cw) + ";copies_x=" + std::to_string(cx));
    append_note(row, M <= kMaxCheckRows ? std::string("check=full")
                                        : "check=rows " + std::to_string(S) + "/" + std::to_string(M));
    if (use_fp8) append_note(row, ctx.opt.fp8_fast_accum ? "fast_accum=1" : "fast_accum=0");
    ctx.emit(row);
    // Other (model, op) pairs with the same (n, k) get a copy of the measurement.
    for (const std::string& alias : aliases) {
      Row copy = row;
      copy.op = alias;
      append_note(copy, "same_shape_as=" + row.op);
      ctx.emit(copy);
    }
  }
}

}  // namespace

void run_gemm(Context& ctx, bool use_fp8) {
  if (use_fp8 && ctx.cc < 89) {
    std::fprintf(stderr, "gemm_fp8: sm_%d has no FP8 tensor cores (needs sm_89 or newer): skipped\n", ctx.cc);
    return;
  }
  const std::vector<GemmShape> shapes =
      ctx.opt.shapes_path.empty() ? default_shapes() : load_shapes(ctx.opt.shapes_path);
  if (ctx.opt.shapes_path.empty())
    std::fprintf(stderr, "%s: no --shapes given: using the built-in llama-3-8b shapes\n", use_fp8 ? "gemm_fp8" : "gemm");
  std::vector<long long> tokens = ctx.opt.tokens;
  if (tokens.empty()) {
    if (ctx.opt.quick) tokens = {1, 32, 512, 4096};
    else
      for (long long m = 1; m <= 16384; m *= 2) tokens.push_back(m);
  }
  LtGemm lt;
  DeviceBuffer scales(2 * sizeof(float));
  const float h_scales[2] = {kFp8ScaleA, kFp8ScaleB};
  CUDA_CHECK(cudaMemcpyAsync(scales.get(), h_scales, sizeof h_scales, cudaMemcpyHostToDevice, ctx.stream));
  CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  // Shapes with the same (n, k) are measured once; the later names are emitted as aliases.
  std::vector<GemmShape> unique;
  std::vector<std::vector<std::string>> aliases;
  for (const GemmShape& sh : shapes) {
    size_t i = 0;
    while (i < unique.size() && !(unique[i].n == sh.n && unique[i].k == sh.k)) ++i;
    if (i == unique.size()) {
      unique.push_back(sh);
      aliases.emplace_back();
    } else {
      aliases[i].push_back(sh.model + "/" + sh.op);
    }
  }
  std::fprintf(stderr, "%s: %zu shapes, %zu distinct (n, k), %zu token counts\n", use_fp8 ? "gemm_fp8" : "gemm",
               shapes.size(), unique.size(), tokens.size());
  for (size_t i = 0; i < unique.size(); ++i) {
    if (use_fp8) bench_shape<fp8>(ctx, lt, unique[i], aliases[i], tokens, true, scales.as<float>());
    else bench_shape<bf16>(ctx, lt, unique[i], aliases[i], tokens, false, scales.as<float>());
  }
}

#endif  // LLMSIM_HAVE_CUBLASLT

}  // namespace llmsim
