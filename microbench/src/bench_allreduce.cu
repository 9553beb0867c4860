// bench_allreduce.cu: NCCL all-reduce (op_class "allreduce"), built only with NCCL.
//
// One process drives every visible GPU (ncclCommInitAll); a point is one bf16 sum all-reduce of
// a message of `bytes` per rank (1 KiB .. 1 GiB in powers of 2; quick: 1 KiB .. 64 MiB in powers
// of 16), in place on a buffer per GPU. Timed with events on GPU 0's stream around `inner`
// back-to-back all-reduces (inner = 20 below 1 MiB, 5 below 64 MiB, else 1), after all GPUs
// were synchronised; per-call time = elapsed / inner. The `batch` column holds the number of
// ranks, `n` the number of elements. flops = (ranks - 1) * elements, bytes = message bytes
// (bus bandwidth = 2 (ranks-1)/ranks * bytes / time). Check: rank r holds small integers
// ((i % 13) + r) % 8 (exact in bf16); after one all-reduce every rank is compared with the
// exact sum (rel_err = worst rank).
// With fewer than 2 GPUs nothing is measured (stderr note); without NCCL the class is absent.
#include "common.cuh"

#ifndef LLMSIM_HAVE_NCCL

namespace llmsim {
bool allreduce_available() { return false; }
void run_allreduce(Context&) {
  std::fprintf(stderr, "allreduce: llmsim-bench was built without NCCL: skipped\n");
}
}  // namespace llmsim

#else

#include <nccl.h>

#define NCCL_CHECK(expr)                                                                                  \
  do {                                                                                                    \
    const ncclResult_t llmsim_nr_ = (expr);                                                               \
    if (llmsim_nr_ != ncclSuccess) {                                                                      \
      std::fprintf(stderr, "llmsim-bench: NCCL error at %s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr, \
                   ncclGetErrorString(llmsim_nr_));                                                       \
      std::fflush(stdout);                                                                                \
      std::fflush(stderr);                                                                                \
      std::exit(1);                                                                                       \
    }                                                                                                     \
  } while (0)

namespace llmsim {
namespace {

using bf16 = __nv_bfloat16;

__device__ __forceinline__ float rank_value(size_t i, int rank) { return static_cast<float>(((i % 13) + rank) % 8); }

__global__ void init_rank_kernel(bf16* p, size_t n, int rank) {
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    p[i] = __float2bfloat16_rn(rank_value(i, rank));
}

__global__ void check_sum_kernel(const bf16* p, size_t n, int ranks, double* acc) {
  double num = 0.0, den = 0.0;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    double ref = 0.0;
    for (int r = 0; r < ranks; ++r) ref += rank_value(i, r);
    const double d = __bfloat162float(p[i]) - ref;
    num += d * d;
    den += ref * ref;
  }
  warp_accumulate_error(num, den, acc);
}

}  // namespace

bool allreduce_available() { return true; }

void run_allreduce(Context& ctx) {
  int ndev = 0;
  CUDA_CHECK(cudaGetDeviceCount(&ndev));
  if (ndev < 2) {
    std::fprintf(stderr, "allreduce: %d GPU visible, needs at least 2: skipped\n", ndev);
    return;
  }
  int nccl_version = 0;
  NCCL_CHECK(ncclGetVersion(&nccl_version));
  const size_t max_bytes = ctx.opt.quick ? (64ull << 20) : (1ull << 30);
  const size_t step = ctx.opt.quick ? 16 : 2;

  std::vector<ncclComm_t> comms(ndev);
  std::vector<int> devs(ndev);
  for (int i = 0; i < ndev; ++i) devs[i] = i;
  NCCL_CHECK(ncclCommInitAll(comms.data(), ndev, devs.data()));
  std::vector<cudaStream_t> streams(ndev);
  std::vector<void*> bufs(ndev, nullptr);
  std::vector<double*> accs(ndev, nullptr);
  for (int i = 0; i < ndev; ++i) {
    CUDA_CHECK(cudaSetDevice(i));
    CUDA_CHECK(cudaStreamCreateWithFlags(&streams[i], cudaStreamNonBlocking));
    CUDA_CHECK(cudaMalloc(&bufs[i], max_bytes));
    CUDA_CHECK(cudaMalloc(&accs[i], 2 * sizeof(double)));
  }
  auto sync_all = [&] {
    for (int i = 0; i < ndev; ++i) {
      CUDA_CHECK(cudaSetDevice(i));
      CUDA_CHECK(cudaStreamSynchronize(streams[i]));
    }
  };
  auto allreduce = [&](size_t count) {
    NCCL_CHECK(ncclGroupStart());
    for (int i = 0; i < ndev; ++i)
      NCCL_CHECK(ncclAllReduce(bufs[i], bufs[i], count, ncclBfloat16, ncclSum, comms[i], streams[i]));
    NCCL_CHECK(ncclGroupEnd());
  };
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaSetDevice(0));
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));

  for (size_t bytes = 1024; bytes <= max_bytes; bytes *= step) {
    const size_t count = bytes / sizeof(bf16);
    Row row;
    row.op_class = "allreduce";
    row.op = "allreduce_sum";
    row.dtype = "bf16";
    row.n = static_cast<long long>(count);
    row.batch = ndev;
    row.flops = static_cast<long long>((ndev - 1) * count);
    row.bytes = static_cast<long long>(bytes);

    // Check: one all-reduce of the rank patterns, compared with the exact sums on every rank.
    for (int i = 0; i < ndev; ++i) {
      CUDA_CHECK(cudaSetDevice(i));
      init_rank_kernel<<<256, 256, 0, streams[i]>>>(static_cast<bf16*>(bufs[i]), count, i);
      CUDA_CHECK_LAUNCH();
    }
    allreduce(count);
    double worst = 0.0;
    for (int i = 0; i < ndev; ++i) {
      CUDA_CHECK(cudaSetDevice(i));
      CUDA_CHECK(cudaMemsetAsync(accs[i], 0, 2 * sizeof(double), streams[i]));
      check_sum_kernel<<<256, 256, 0, streams[i]>>>(static_cast<const bf16*>(bufs[i]), count, ndev, accs[i]);
      CUDA_CHECK_LAUNCH();
      double h[2];
      CUDA_CHECK(cudaMemcpyAsync(h, accs[i], sizeof h, cudaMemcpyDeviceToHost, streams[i]));
      CUDA_CHECK(cudaStreamSynchronize(streams[i]));
      const double e = h[1] > 0 ? std::sqrt(h[0] / h[1]) : NAN;
      worst = (std::isnan(e) || e > worst) ? e : worst;
      if (std::isnan(worst)) break;
    }
    record_check(ctx, row, worst, 1e-2);

    // Timing (values keep growing across calls; bf16 saturates to inf at worst, harmless here).
    const int inner = bytes < (1u << 20) ? 20 : (bytes < (64u << 20) ? 5 : 1);
    for (int w = 0; w < 3; ++w) allreduce(count);
    sync_all();
    std::vector<double> samples;
    const int reps = ctx.opt.quick ? 5 : 20;
    for (int r = 0; r < reps; ++r) {
      sync_all();
      CUDA_CHECK(cudaSetDevice(0));
      CUDA_CHECK(cudaEventRecord(start, streams[0]));
      for (int j = 0; j < inner; ++j) allreduce(count);
      CUDA_CHECK(cudaSetDevice(0));
      CUDA_CHECK(cudaEventRecord(stop, streams[0]));
      sync_all();
      float ms = 0.f;
      CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
      samples.push_back(ms * 1e-3 / inner);
    }
    TimingResult t;
    summarize(samples, t);
    t.inner = inner;
    apply_timing(row, t);
    append_note(row, "ranks=" + std::to_string(ndev) + ";nccl=" + std::to_string(nccl_version));
    CUDA_CHECK(cudaSetDevice(ctx.device));
    ctx.emit(row);
  }

  CUDA_CHECK(cudaSetDevice(0));
  CUDA_CHECK(cudaEventDestroy(start));
  CUDA_CHECK(cudaEventDestroy(stop));
  for (int i = 0; i < ndev; ++i) {
    CUDA_CHECK(cudaSetDevice(i));
    CUDA_CHECK(cudaStreamSynchronize(streams[i]));
    CUDA_CHECK(cudaFree(bufs[i]));
    CUDA_CHECK(cudaFree(accs[i]));
    CUDA_CHECK(cudaStreamDestroy(streams[i]));
    NCCL_CHECK(ncclCommDestroy(comms[i]));
  }
  CUDA_CHECK(cudaSetDevice(ctx.device));
}

}  // namespace llmsim

#endif  // LLMSIM_HAVE_NCCL
