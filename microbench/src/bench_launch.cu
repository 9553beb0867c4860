// bench_launch.cu: kernel-launch overheads (op_class "launch").
//
//   kernel        an empty kernel (1 block of 32 threads) launched N times back to back from the
//                 host with cudaLaunchKernel: time between events around the N launches / N.
//                 This is the per-kernel cost of eager execution (host launch rate or GPU
//                 front-end, whichever is slower).
//   graph_kernel  the same N launches captured into one CUDA graph; one graph launch timed with
//                 events / N: the per-node cost inside a graph (what CUDA-graph decode pays).
//   graph_launch  a graph holding one empty kernel, launched N times back to back / N: the cost
//                 of launching a small graph.
// N = 1000 (200 quick); the `n` column holds N. Each point is sampled 20 times (5 quick) after a
// warm-up; median and spread are over those samples. flops = bytes = 0, no correctness check.
// These measurements are deliberately NOT taken behind the blocker kernel: launch rate is
// what they measure.
#include "common.cuh"

namespace llmsim {
namespace {

__global__ void empty_kernel() {}

Row launch_row(const char* op, int n) {
  Row r;
  r.op_class = "launch";
  r.op = op;
  r.dtype = "none";
  r.n = n;
  r.flops = 0;
  r.bytes = 0;
  return r;
}

// Times `enqueue()` (which must enqueue `per_sample` units on ctx.stream) `samples` times.
template <class Enqueue>
TimingResult time_launches(Context& ctx, int samples, int per_sample, Enqueue&& enqueue) {
  cudaEvent_t start = ctx.events[0], stop = ctx.events[1];
  enqueue();  // warm-up
  enqueue();
  CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  std::vector<double> v;
  for (int i = 0; i < samples; ++i) {
    CUDA_CHECK(cudaEventRecord(start, ctx.stream));
    enqueue();
    CUDA_CHECK(cudaEventRecord(stop, ctx.stream));
    CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0.f;
    CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    v.push_back(ms * 1e-3 / per_sample);
  }
  TimingResult r;
  summarize(v, r);
  return r;
}

}  // namespace

void run_launch(Context& ctx) {
  const int n = ctx.opt.quick ? 200 : 1000;
  const int samples = ctx.opt.quick ? 5 : 20;
  cudaStream_t s = ctx.stream;

  {  // eager launches
    Row row = launch_row("kernel", n);
    apply_timing(row, time_launches(ctx, samples, n, [&] {
      for (int i = 0; i < n; ++i) empty_kernel<<<1, 32, 0, s>>>();
      CUDA_CHECK_LAUNCH();
    }));
    append_note(row, "per launch");
    ctx.emit(row);
  }

  {  // n kernel nodes in one graph
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < n; ++i) empty_kernel<<<1, 32, 0, s>>>();
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaStreamEndCapture(s, &graph));
    CUDA_CHECK(cudaGraphInstantiateWithFlags(&exec, graph, 0));
    CUDA_CHECK(cudaGraphUpload(exec, s));
    Row row = launch_row("graph_kernel", n);
    apply_timing(row, time_launches(ctx, samples, n, [&] { CUDA_CHECK(cudaGraphLaunch(exec, s)); }));
    append_note(row, "per graph node");
    ctx.emit(row);
    CUDA_CHECK(cudaGraphExecDestroy(exec));
    CUDA_CHECK(cudaGraphDestroy(graph));
  }

  {  // small graph launched n times
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    empty_kernel<<<1, 32, 0, s>>>();
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaStreamEndCapture(s, &graph));
    CUDA_CHECK(cudaGraphInstantiateWithFlags(&exec, graph, 0));
    CUDA_CHECK(cudaGraphUpload(exec, s));
    Row row = launch_row("graph_launch", n);
    apply_timing(row, time_launches(ctx, samples, n, [&] {
      for (int i = 0; i < n; ++i) CUDA_CHECK(cudaGraphLaunch(exec, s));
    }));
    append_note(row, "per graph launch (1 kernel node)");
    ctx.emit(row);
    CUDA_CHECK(cudaGraphExecDestroy(exec));
    CUDA_CHECK(cudaGraphDestroy(graph));
  }
}

}  // namespace llmsim
