// main.cu: command line of llmsim-bench.
//
//   llmsim-bench [options] COMMAND [COMMAND ...]
//
// Parses everything before touching the device, so --help and usage errors work without a GPU.
// Exit status: 0 success, 1 CUDA/cuBLAS/NCCL error, 2 no CUDA GPU, 3 a correctness check failed
// (all rows were still written), 64 usage error.
#include "common.cuh"

#include <cstring>
#include <string>
#include <vector>

namespace {

using namespace llmsim;

const char* const kCommands[] = {"launch", "hbm", "elementwise", "decode_attn", "gemm", "gemm_fp8", "allreduce"};

void print_usage(FILE* f) {
  std::fprintf(f,
      "usage: llmsim-bench [options] COMMAND [COMMAND ...]\n"
      "\n"
      "CUDA microbenchmarks that calibrate the llmsim roofline cost model. Writes one CSV row per\n"
      "measured point (header below) to stdout or --out FILE; progress goes to stderr.\n"
      "\n"
      "commands (run in the order given; 'all' runs every one that is built in):\n"
      "  all          launch hbm elementwise decode_attn gemm gemm_fp8 allreduce\n"
      "  hbm          read / write / copy / triad bandwidth (16-byte accesses) + copy size sweep\n"
      "  launch       empty-kernel launch, CUDA-graph node and graph launch overheads\n"
      "  elementwise  rmsnorm, silu_mul, add, rope (bf16)\n"
      "  decode_attn  paged-KV GQA decode attention (the suite's own kernel, bf16 KV cache)\n"
      "  gemm         bf16 Y = X W^T through cuBLASLt (shapes from --shapes)\n"
      "  gemm_fp8     e4m3 inputs, bf16 output through cuBLASLt (sm_89+ only)\n"
      "  allreduce    NCCL bf16 all-reduce over all visible GPUs (needs NCCL and >1 GPU)\n"
      "  info         print the device description and exit\n"
      "\n"
      "options:\n"
      "  --out FILE          write the CSV to FILE instead of stdout\n"
      "  --shapes FILE       GEMM shapes CSV with header model,op,n,k (default: built-in llama-3-8b TP1)\n"
      "  --tokens LIST       GEMM M values, comma-separated (default 1,2,4,...,16384)\n"
      "  --quick             shrink every grid (smoke test, ~30 s on an H100)\n"
      "  --hbm-bytes SIZE    array size for the hbm class (default 1G, quick 256M); K/M/G suffixes\n"
      "  --rotate-bytes SIZE rotate inputs over at least SIZE bytes (default 256M, at least 4x L2)\n"
      "  --min-time SEC      sample each point for at least SEC seconds of GPU time (default 0.2)\n"
      "  --min-reps N        at least N samples per point (default 10)\n"
      "  --max-reps N        at most N samples per point (default 100)\n"
      "  --warmup N          warm-up calls per point, >= 3 (default 3)\n"
      "  --seed N            seed of the random inputs\n"
      "  --device N          CUDA device ordinal (default 0)\n"
      "  --fp8-fast-accum    gemm_fp8: enable cuBLASLt fast accumulation (default off)\n"
      "  --no-header         do not write the CSV header line\n"
      "  --version           print the build configuration and exit\n"
      "  -h, --help          print this help and exit\n"
      "\n"
      "CSV header:\n  %s\n"
      "\n"
      "exit status: 0 ok, 1 CUDA/library error, 2 no CUDA GPU, 3 a correctness check failed, 64 usage error\n",
      kCsvHeader);
}

void print_version(FILE* f) {
  std::fprintf(f, "llmsim-bench 1.0 (CUDA runtime %d.%d; cublaslt=%s; nccl=%s)\n", CUDART_VERSION / 1000,
               CUDART_VERSION % 1000 / 10, gemm_available() ? "yes" : "no", allreduce_available() ? "yes" : "no");
}

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "llmsim-bench: %s (see --help)\n", msg.c_str());
  std::exit(64);
}

size_t parse_size(const std::string& s, const char* what) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || v <= 0) usage_error(std::string("bad size for ") + what + ": " + s);
  double mult = 1;
  const std::string suffix(end);
  if (suffix.empty() || suffix == "B") mult = 1;
  else if (suffix == "K" || suffix == "KiB" || suffix == "k") mult = 1024.0;
  else if (suffix == "M" || suffix == "MiB") mult = 1024.0 * 1024;
  else if (suffix == "G" || suffix == "GiB") mult = 1024.0 * 1024 * 1024;
  else usage_error(std::string("bad size suffix for ") + what + ": " + s);
  return static_cast<size_t>(v * mult);
}

long long parse_int(const std::string& s, const char* what) {
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (end == s.c_str() || *end != '\0') usage_error(std::string("bad integer for ") + what + ": " + s);
  return v;
}

double parse_double(const std::string& s, const char* what) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || *end != '\0') usage_error(std::string("bad number for ") + what + ": " + s);
  return v;
}

std::vector<long long> parse_tokens(const std::string& s) {
  std::vector<long long> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    const size_t comma = s.find(',', pos);
    const std::string item = s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    if (!item.empty()) {
      const long long v = parse_int(item, "--tokens");
      if (v < 1 || v > (1ll << 24)) usage_error("--tokens values must be in [1, 16777216]: " + item);
      out.push_back(v);
    }
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  if (out.empty()) usage_error("--tokens needs at least one value");
  return out;
}

bool known_command(const std::string& c) {
  if (c == "all" || c == "info") return true;
  for (const char* k : kCommands)
    if (c == k) return true;
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  std::vector<std::string> commands;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* name) -> std::string {
      if (i + 1 >= argc) usage_error(std::string(name) + " needs a value");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      print_usage(stdout);
      print_version(stdout);
      return 0;
    } else if (a == "--version") {
      print_version(stdout);
      return 0;
    } else if (a == "--out") {
      opt.out_path = value("--out");
    } else if (a == "--shapes") {
      opt.shapes_path = value("--shapes");
    } else if (a == "--tokens") {
      opt.tokens = parse_tokens(value("--tokens"));
    } else if (a == "--quick") {
      opt.quick = true;
    } else if (a == "--hbm-bytes") {
      opt.hbm_bytes = parse_size(value("--hbm-bytes"), "--hbm-bytes");
    } else if (a == "--rotate-bytes") {
      opt.rotate_bytes = parse_size(value("--rotate-bytes"), "--rotate-bytes");
    } else if (a == "--min-time") {
      opt.min_time_s = parse_double(value("--min-time"), "--min-time");
    } else if (a == "--min-reps") {
      opt.min_reps = static_cast<int>(parse_int(value("--min-reps"), "--min-reps"));
    } else if (a == "--max-reps") {
      opt.max_reps = static_cast<int>(parse_int(value("--max-reps"), "--max-reps"));
    } else if (a == "--warmup") {
      opt.warmup = static_cast<int>(parse_int(value("--warmup"), "--warmup"));
    } else if (a == "--seed") {
      opt.seed = static_cast<unsigned long long>(parse_int(value("--seed"), "--seed"));
    } else if (a == "--device") {
      opt.device = static_cast<int>(parse_int(value("--device"), "--device"));
    } else if (a == "--fp8-fast-accum") {
      opt.fp8_fast_accum = true;
    } else if (a == "--no-header") {
      opt.header = false;
    } else if (!a.empty() && a[0] == '-') {
      usage_error("unknown option " + a);
    } else if (known_command(a)) {
      commands.push_back(a);
    } else {
      usage_error("unknown command " + a);
    }
  }
  if (commands.empty()) usage_error("no command given");

  // Expand 'all' and drop duplicates, keeping the first occurrence's position.
  std::vector<std::string> plan;
  bool info_only = true;
  for (const auto& c : commands) {
    std::vector<std::string> expanded;
    if (c == "all") expanded.assign(std::begin(kCommands), std::end(kCommands));
    else expanded.push_back(c);
    for (const auto& e : expanded) {
      if (e != "info") info_only = false;
      bool seen = false;
      for (const auto& p : plan) seen = seen || p == e;
      if (!seen) plan.push_back(e);
    }
  }
  if (opt.warmup < 3) usage_error("--warmup must be >= 3");

  Context ctx;
  ctx.opt = opt;
  init_context(ctx);  // exits 2 without a GPU
  if (info_only) {
    destroy_context(ctx);
    return 0;
  }

  CsvWriter csv(opt.out_path, opt.header);
  ctx.csv = &csv;
  for (const auto& c : plan) {
    std::fprintf(stderr, "llmsim-bench: === %s ===\n", c.c_str());
    if (c == "hbm") run_hbm(ctx);
    else if (c == "launch") run_launch(ctx);
    else if (c == "elementwise") run_elementwise(ctx);
    else if (c == "decode_attn") run_decode_attn(ctx);
    else if (c == "gemm") run_gemm(ctx, false);
    else if (c == "gemm_fp8") run_gemm(ctx, true);
    else if (c == "allreduce") run_allreduce(ctx);
    CUDA_CHECK(cudaDeviceSynchronize());
  }
  destroy_context(ctx);
  std::fprintf(stderr, "llmsim-bench: %lld rows, %d failed correctness check(s)\n", csv.rows(), ctx.failed_checks);
  return ctx.failed_checks > 0 ? 3 : 0;
}
