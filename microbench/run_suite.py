#!/usr/bin/env python3
"""Run the llmsim CUDA microbenchmark suite and write one calibration CSV.

    python microbench/run_suite.py --out results.csv [--shapes FILE] [--quick]
                                   [--build-dir DIR] [--skip-build] [--only CLASSES]

Steps:
  1. checks for an NVIDIA GPU with ``nvidia-smi`` (exit 2 with one line when there is none;
     ``LLMSIM_BENCH_NVIDIA_SMI`` overrides the command, e.g. for tests);
  2. builds ``llmsim-bench`` with CMake (incremental; ``--skip-build`` uses an existing build);
  3. runs ``llmsim-bench`` for the requested classes (hbm, launch, elementwise, decode_attn,
     gemm, gemm_fp8, allreduce);
  4. if ``import torch`` works and CUDA is available, measures ``prefill_attn`` and
     ``chunk_attn`` rows with ``torch.nn.functional.scaled_dot_product_attention`` (flash backend);
  5. writes ONE CSV: the benchmark columns (see README.md) plus ``gpu,driver,cuda,date``.

Exit status: 0 ok, 1 build/run error, 2 no CUDA GPU, 3 a correctness check failed (the CSV is
still written, failing rows carry FAILED_CHECK in ``note``), 64 usage error.

``--estimate`` prints the expected run time on an H100 (roofline at 700 TFLOP/s bf16,
1400 TFLOP/s fp8, 3 TB/s) without needing a GPU.

Importable: ``main(argv) -> int`` is what ``llmsim calibrate run`` calls. Standard library and
numpy only; torch is optional.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import math
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
DEFAULT_BUILD_DIR = REPO_ROOT / "build" / "microbench"
DEFAULT_SHAPES = HERE / "shapes_example.csv"
BINARY_NAME = "llmsim-bench"

# The columns every row has (written by llmsim-bench and by the torch measurements here).
BENCH_COLUMNS: tuple[str, ...] = (
    "op_class", "op", "dtype", "m", "n", "k", "batch", "ctx", "heads", "kv_heads", "head_dim",
    "flops", "bytes", "median_s", "p10_s", "p90_s", "reps", "rel_err", "note",
)
# Appended to every row of the final CSV.
META_COLUMNS: tuple[str, ...] = ("gpu", "driver", "cuda", "date")
ALL_COLUMNS: tuple[str, ...] = BENCH_COLUMNS + META_COLUMNS

BINARY_CLASSES: tuple[str, ...] = (
    "launch", "hbm", "elementwise", "decode_attn", "gemm", "gemm_fp8", "allreduce",
)
TORCH_CLASSES: tuple[str, ...] = ("prefill_attn", "chunk_attn")
ALL_CLASSES: tuple[str, ...] = BINARY_CLASSES + TORCH_CLASSES

NO_GPU_PREFIX = "no CUDA GPU found: llmsim calibrate run needs an NVIDIA GPU"
NVIDIA_SMI_ENV = "LLMSIM_BENCH_NVIDIA_SMI"

EXIT_OK, EXIT_ERROR, EXIT_NO_GPU, EXIT_FAILED_CHECK, EXIT_USAGE = 0, 1, 2, 3, 64

ATTN_CHECK_THRESHOLD = 1e-2


def log(msg: str) -> None:
    print(f"run_suite: {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- GPU detection


class NoGpu(Exception):
    """No usable NVIDIA GPU; the message says why (one line)."""


@dataclass
class GpuInfo:
    name: str
    driver: str


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def no_gpu_message(reason: str) -> str:
    return f"{NO_GPU_PREFIX} ({one_line(reason)})"


def detect_gpu(nvidia_smi: str | None = None) -> GpuInfo:
    """Name and driver of the first GPU from nvidia-smi; raises NoGpu when there is none."""
    cmd = nvidia_smi or os.environ.get(NVIDIA_SMI_ENV) or "nvidia-smi"
    argv = [cmd, "--query-gpu=name,driver_version", "--format=csv,noheader"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise NoGpu(f"nvidia-smi not found: {cmd}") from None
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NoGpu(f"nvidia-smi failed: {exc}") from None
    if proc.returncode != 0:
        raise NoGpu(f"nvidia-smi exited {proc.returncode}: {one_line(proc.stderr or proc.stdout)[:200]}")
    lines = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip()]
    if not lines:
        raise NoGpu("nvidia-smi lists no GPU")
    index = 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    if visible.isdigit() and int(visible) < len(lines):
        index = int(visible)
    fields = [f.strip() for f in lines[index].split(",")]
    if len(fields) < 2 or not fields[0]:
        raise NoGpu(f"unexpected nvidia-smi output: {lines[index]!r}")
    return GpuInfo(name=fields[0], driver=fields[1])


# ----------------------------------------------------------------------------- CSV


def write_csv(path: str | os.PathLike, rows: Iterable[dict], meta: dict) -> int:
    """Writes rows (dicts keyed by BENCH_COLUMNS) plus the META_COLUMNS; returns the row count.

    A row's own value for a metadata column (e.g. 'cuda' of the torch rows) wins over `meta`.
    Missing columns are written empty.
    """
    n = 0
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(ALL_COLUMNS)
        for row in rows:
            merged = {**meta, **{k: v for k, v in row.items() if v is not None}}
            w.writerow([_csv_value(merged.get(c, "")) for c in ALL_COLUMNS])
            n += 1
    return n


def _csv_value(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return f"{v:.9e}"
    return str(v).replace(",", ";").replace("\n", " ")


def read_bench_csv(path: str | os.PathLike) -> list[dict]:
    """Rows of an llmsim-bench CSV; checks the header is the documented one."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            return []
        if tuple(header) != BENCH_COLUMNS:
            raise ValueError(f"{path}: unexpected header {header}")
        return [dict(zip(BENCH_COLUMNS, r)) for r in reader if r]


# ----------------------------------------------------------------------------- build


def find_binary(build_dir: Path) -> Path:
    return build_dir / BINARY_NAME


def build(build_dir: Path, jobs: int | None = None) -> Path:
    """Configures (once) and builds llmsim-bench; returns the binary path."""
    cmake = shutil.which("cmake")
    if cmake is None:
        raise RuntimeError("cmake not found on PATH (needed to build llmsim-bench; or pass --skip-build)")
    build_dir.mkdir(parents=True, exist_ok=True)
    if not (build_dir / "CMakeCache.txt").exists():
        log(f"configuring {build_dir}")
        _run_checked([cmake, "-S", str(HERE), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release"])
    log(f"building {BINARY_NAME}")
    _run_checked([cmake, "--build", str(build_dir), "-j", str(jobs or max(1, os.cpu_count() or 1))])
    binary = find_binary(build_dir)
    if not binary.exists():
        raise RuntimeError(f"build finished but {binary} does not exist")
    return binary


def _run_checked(argv: Sequence[str]) -> None:
    proc = subprocess.run(argv, stdout=sys.stderr, stderr=sys.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"command failed ({proc.returncode}): {' '.join(argv)}")


def binary_build_info(binary: Path) -> dict[str, str]:
    """{'cuda': runtime version, 'cublaslt': 'yes'/'no', 'nccl': 'yes'/'no'} from --version (no GPU needed).

    --version prints e.g. "llmsim-bench 1.0 (CUDA runtime 13.0; cublaslt=yes; nccl=no)".
    """
    try:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60).stdout
    except OSError:
        return {}
    info: dict[str, str] = {}
    if "(" in out and ")" in out:
        for item in out.split("(", 1)[1].rsplit(")", 1)[0].split(";"):
            item = item.strip()
            if item.startswith("CUDA runtime "):
                info["cuda"] = item[len("CUDA runtime "):].strip()
            elif "=" in item:
                key, value = item.split("=", 1)
                info[key.strip()] = value.strip()
    return info


# ----------------------------------------------------------------------------- timing policy


@dataclass(frozen=True)
class Policy:
    """Same repetition rule as llmsim-bench (common.cuh TimingPolicy)."""

    min_reps: int = 10
    max_reps: int = 100
    min_time_s: float = 0.2
    min_reps_large: int = 5
    large_point_s: float = 1.0
    warmup: int = 3

    @staticmethod
    def for_mode(quick: bool) -> "Policy":
        if quick:
            return Policy(min_reps=5, max_reps=30, min_time_s=0.03, large_point_s=0.25)
        return Policy()

    def reps_for(self, t: float) -> int:
        t = max(t, 1e-7)
        reps = min(max(math.ceil(self.min_time_s / t), self.min_reps), self.max_reps)
        if reps * t > self.large_point_s:
            reps = max(self.min_reps_large, int(self.large_point_s / t))
        return reps


def percentile(sorted_vals: Sequence[float], p: float) -> float:
    if not sorted_vals:
        return float("nan")
    pos = p * (len(sorted_vals) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_vals) - 1)
    frac = pos - lo
    return sorted_vals[lo] * (1 - frac) + sorted_vals[hi] * frac


def summarize(samples: Sequence[float]) -> tuple[float, float, float, int]:
    s = sorted(samples)
    return percentile(s, 0.5), percentile(s, 0.1), percentile(s, 0.9), len(s)


# ----------------------------------------------------------------------------- torch attention


def _prefill_grid(quick: bool) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(heads, kv_heads) configs and (batch, seq) points of prefill_attn."""
    if quick:
        return [(32, 8)], [(1, 512), (1, 4096)]
    seqs = [128 << i for i in range(8)]  # 128 .. 16384
    points = [(1, s) for s in seqs] + [(4, 1024), (8, 2048), (16, 512), (4, 4096)]
    return [(32, 8), (64, 8)], points


def _chunk_grid(quick: bool) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(heads, kv_heads) configs and (C new tokens, P earlier tokens) points of chunk_attn."""
    if quick:
        return [(32, 8)], [(512, 0), (512, 2048)]
    return [(32, 8), (64, 8)], [(c, p) for c in (256, 512, 2048) for p in (0, 2048, 8192)]


def attention_flops(batch: int, heads: int, head_dim: int, c: int, p: int) -> int:
    """4 * batch * heads * head_dim * (attended pairs), causal pairs counted as C*P + C*C/2.

    For prefill (P = 0) this is the documented 4*batch*heads*seq*seq*head_dim/2.
    """
    return 4 * batch * heads * head_dim * (c * p) + (4 * batch * heads * head_dim * c * c) // 2


def attention_bytes(batch: int, heads: int, kv_heads: int, head_dim: int, c: int, p: int) -> int:
    """q + out ([batch, heads, C, d]) and k + v ([batch, kv_heads, P + C, d]), bf16."""
    return 2 * (2 * batch * heads * c * head_dim + 2 * batch * kv_heads * (p + c) * head_dim)


class TorchAttention:
    """prefill_attn / chunk_attn rows measured with torch SDPA (flash backend)."""

    HEAD_DIM = 128
    CHECK_QUERIES = 128  # queries checked against the fp32 math backend (the last ones: they see the most keys)

    def __init__(self, torch_mod, policy: Policy):
        self.torch = torch_mod
        import torch.nn.functional as F  # noqa: N812

        self.F = F
        self.policy = policy
        self.sdpa_kernel, self.backends = self._backend_selector()

    def _backend_selector(self):
        """Returns (context-manager factory, {name: backend}) across torch versions."""
        try:
            from torch.nn.attention import SDPBackend, sdpa_kernel

            return sdpa_kernel, {
                "flash": SDPBackend.FLASH_ATTENTION,
                "efficient": SDPBackend.EFFICIENT_ATTENTION,
                "math": SDPBackend.MATH,
            }
        except ImportError:  # torch < 2.3
            cuda = self.torch.backends.cuda

            def legacy(backend):
                return cuda.sdp_kernel(
                    enable_flash=backend == "flash",
                    enable_mem_efficient=backend == "efficient",
                    enable_math=backend == "math",
                )

            return legacy, {"flash": "flash", "efficient": "efficient", "math": "math"}

    # -- timing
    def time(self, fn: Callable[[], object]) -> tuple[float, float, float, int]:
        torch = self.torch
        fn()  # cold call
        torch.cuda.synchronize()
        probe = [torch.cuda.Event(enable_timing=True) for _ in range(self.policy.warmup)]
        probe[0].record()
        for e in probe[1:]:
            fn()
            e.record()
        torch.cuda.synchronize()
        t_est = min(probe[i].elapsed_time(probe[i + 1]) for i in range(len(probe) - 1)) * 1e-3
        reps = self.policy.reps_for(t_est)
        events = [torch.cuda.Event(enable_timing=True) for _ in range(reps + 1)]
        # Hold the GPU while Python queues the calls (~0.2 ms each at most) so that the events
        # measure back-to-back kernels, not the interpreter.
        if hasattr(torch.cuda, "_sleep"):
            torch.cuda._sleep(int(min(reps * 200e-6, 0.05) * 2.0e9))
        events[0].record()
        for i in range(reps):
            fn()
            events[i + 1].record()
        torch.cuda.synchronize()
        samples = [events[i].elapsed_time(events[i + 1]) * 1e-3 for i in range(reps)]
        return summarize(samples)

    # -- correctness: last queries of sequence 0 against the fp32 math backend
    def check(self, q, k, v, out, p: int) -> float:
        torch, F = self.torch, self.F
        c = q.shape[2]
        groups = q.shape[1] // k.shape[1]
        t = min(c, self.CHECK_QUERIES)
        qt = q[:1, :, c - t :, :].float()
        kf = k[:1].float().repeat_interleave(groups, dim=1)
        vf = v[:1].float().repeat_interleave(groups, dim=1)
        qpos = torch.arange(p + c - t, p + c, device=q.device)
        kpos = torch.arange(p + c, device=q.device)
        mask = kpos[None, :] <= qpos[:, None]  # True = may attend (lower-right causal)
        with self.sdpa_kernel(self.backends["math"]):
            ref = F.scaled_dot_product_attention(qt, kf, vf, attn_mask=mask)
        got = out[:1, :, c - t :, :].float()
        err = torch.linalg.vector_norm(got - ref) / torch.linalg.vector_norm(ref)
        return float(err.item())

    # -- the variants tried, in order, for one point; returns (callable, note) of the first that runs
    def _candidates(self, q, k, v, p: int):
        F, torch = self.F, self.torch
        groups = q.shape[1] // k.shape[1]
        c = q.shape[2]

        def expanded():
            return k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)

        if p == 0:  # plain causal prefill: is_causal (top-left == bottom-right when square)
            yield "flash", (lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)), \
                "backend=flash;mask=is_causal;gqa=enable_gqa"
            ke, ve = expanded()
            yield "flash", (lambda: F.scaled_dot_product_attention(q, ke, ve, is_causal=True)), \
                "backend=flash;mask=is_causal;gqa=repeat_interleave"
            return
        try:
            from torch.nn.attention.bias import causal_lower_right

            bias = causal_lower_right(c, p + c)
        except ImportError:
            bias = None
        if bias is not None:
            yield "flash", (lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=bias, enable_gqa=True)), \
                "backend=flash;mask=causal_lower_right;gqa=enable_gqa"
            ke, ve = expanded()
            yield "flash", (lambda: F.scaled_dot_product_attention(q, ke, ve, attn_mask=bias)), \
                "backend=flash;mask=causal_lower_right;gqa=repeat_interleave"
        ke, ve = expanded()
        qpos = torch.arange(p, p + c, device=q.device)
        kpos = torch.arange(p + c, device=q.device)
        mask = kpos[None, :] <= qpos[:, None]
        yield "efficient", (lambda: F.scaled_dot_product_attention(q, ke, ve, attn_mask=mask)), \
            "backend=efficient;mask=bool_lower_right;gqa=repeat_interleave"

    def point(self, op_class: str, batch: int, heads: int, kv_heads: int, c: int, p: int) -> dict | None:
        torch = self.torch
        d = self.HEAD_DIM
        gen = torch.Generator(device="cuda")
        gen.manual_seed(1234 + batch * 7 + c * 13 + p * 17 + heads)
        kw = dict(device="cuda", dtype=torch.bfloat16, generator=gen)
        q = torch.rand(batch, heads, c, d, **kw) * 2 - 1
        k = torch.rand(batch, kv_heads, p + c, d, **kw) * 2 - 1
        v = torch.rand(batch, kv_heads, p + c, d, **kw) * 2 - 1
        chosen = None
        for backend, fn, note in self._candidates(q, k, v, p):
            try:
                with self.sdpa_kernel(self.backends[backend]):
                    out = fn()
                    torch.cuda.synchronize()
                    chosen = (backend, fn, note, out)
                    break
            except (RuntimeError, TypeError, ValueError) as exc:
                log(f"{op_class} batch={batch} C={c} P={p}: {note} unavailable ({one_line(exc)[:120]})")
                continue
        if chosen is None:
            log(f"{op_class} batch={batch} C={c} P={p} heads={heads}: no SDPA backend ran, skipped")
            return None
        backend, fn, note, out = chosen
        err = self.check(q, k, v, out, p)
        with self.sdpa_kernel(self.backends[backend]):
            median, p10, p90, reps = self.time(fn)
        t = min(c, self.CHECK_QUERIES)
        note += f";check=last {t} queries of seq 0 vs fp32 math"
        if not (err <= ATTN_CHECK_THRESHOLD):
            note += ";FAILED_CHECK"
        row = {
            "op_class": op_class,
            "op": "sdpa_causal" if op_class == "prefill_attn" else "sdpa_chunk_lower_right",
            "dtype": "bf16",
            "m": c,
            "batch": batch,
            "ctx": p,
            "heads": heads,
            "kv_heads": kv_heads,
            "head_dim": d,
            "flops": attention_flops(batch, heads, d, c, p),
            "bytes": attention_bytes(batch, heads, kv_heads, d, c, p),
            "median_s": median,
            "p10_s": p10,
            "p90_s": p90,
            "reps": reps,
            "rel_err": f"{err:.6e}",
            "note": note,
            "cuda": torch.version.cuda or "",
        }
        tf = row["flops"] / median * 1e-12 if median > 0 else 0.0
        log(f"[{op_class}] batch={batch} C={c} P={p} heads={heads}/{kv_heads} median={median * 1e6:.1f} us "
            f"{tf:.0f} TFLOP/s rel_err={err:.2e} {note}")
        del q, k, v, out
        return row

    def run(self, classes: set[str], quick: bool) -> tuple[list[dict], int]:
        rows: list[dict] = []
        failed = 0
        if "prefill_attn" in classes:
            cfgs, points = _prefill_grid(quick)
            for heads, kv in cfgs:
                for batch, seq in points:
                    r = self.point("prefill_attn", batch, heads, kv, seq, 0)
                    if r:
                        rows.append(r)
                        failed += "FAILED_CHECK" in r["note"]
        if "chunk_attn" in classes:
            cfgs, points = _chunk_grid(quick)
            for heads, kv in cfgs:
                for c, p in points:
                    r = self.point("chunk_attn", 1, heads, kv, c, p)
                    if r:
                        rows.append(r)
                        failed += "FAILED_CHECK" in r["note"]
        self.torch.cuda.empty_cache()
        return rows, failed


def torch_attention_rows(classes: set[str], quick: bool) -> tuple[list[dict], int]:
    """(rows, failed checks); empty when torch or CUDA is not available."""
    if not classes & set(TORCH_CLASSES):
        return [], 0
    try:
        import torch  # noqa: PLC0415
    except Exception as exc:  # ImportError, or a broken install
        log(f"torch not importable ({one_line(exc)[:100]}): prefill_attn / chunk_attn skipped")
        return [], 0
    if not torch.cuda.is_available():
        log("torch has no CUDA device: prefill_attn / chunk_attn skipped")
        return [], 0
    log(f"torch {torch.__version__} (CUDA {torch.version.cuda}): measuring {sorted(classes & set(TORCH_CLASSES))}")
    return TorchAttention(torch, Policy.for_mode(quick)).run(classes, quick)


# ----------------------------------------------------------------------------- estimate


def load_shapes(path: str | os.PathLike) -> list[tuple[str, str, int, int]]:
    """(model, op, n, k) rows of a shapes CSV (header model,op,n,k; '#' comments allowed)."""
    with open(path, newline="") as f:
        lines = [ln for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
    out = []
    for r in csv.DictReader(lines):
        r = {k.strip(): (v or "").strip() for k, v in r.items() if k}
        out.append((r["model"], r["op"], int(r["n"]), int(r["k"])))
    return out


def estimate_seconds(shapes: list[tuple[str, str, int, int]], quick: bool, classes: Iterable[str] = ALL_CLASSES,
                     tflops: float = 700.0, tbps: float = 3.0) -> dict[str, float]:
    """Expected wall time per class on an H100 (keep the grids in sync with the .cu files).

    Each point costs ~3 + reps x t of GPU time (t from the roofline at `tflops` / `tbps`, plus
    ~4 us launch latency; samples under 20 us batch several calls) plus a fixed set-up/check
    overhead per point.
    """
    pol = Policy.for_mode(quick)
    classes = set(classes)
    bw = tbps * 1e12

    def point(flops: float, nbytes: float, overhead: float, peak: float = tflops) -> float:
        t = max(flops / (peak * 1e12), nbytes / bw) + 4e-6
        inner = math.ceil(20e-6 / t) if t < 20e-6 else 1
        inner = min(inner, 64)
        return overhead + (3 + pol.reps_for(t * inner) * inner) * t

    est: dict[str, float] = {}
    if classes & set(BINARY_CLASSES):
        est["startup"] = 3.0  # CUDA context, cuBLASLt handle
    if "launch" in classes:
        est["launch"] = 0.5
    if "hbm" in classes:
        size = (256 << 20) if quick else (1 << 30)
        total = sum(point(0, m * size, 0.05) for m in (1, 1, 2, 3))
        s = 1 << 20
        while s < size:
            total += point(0, 2 * s, 0.01)
            s *= 16 if quick else 4
        est["hbm"] = total
    if "elementwise" in classes:
        tokens = [1, 1024, 16384] if quick else [1, 16, 128, 1024, 4096, 16384]
        models = [(4096, 14336, 32)] + ([] if quick else [(8192, 28672, 64)])
        total = 0.0
        for h, i, heads in models:
            for t in tokens:
                total += point(0, 4 * t * h, 0.03) + point(0, 6 * t * i, 0.03)
                total += point(0, 6 * t * h, 0.03) + point(0, 4 * t * (heads + 8) * 128 + 512 * t, 0.03)
        est["elementwise"] = total
    if "decode_attn" in classes:
        batches = [1, 64] if quick else [1, 8, 32, 64, 128, 256]
        ctxs = [512, 4096] if quick else [128, 512, 1024, 2048, 4096, 8192]
        total = 0.0
        for heads in (32, 64):
            for b in batches:
                for c in ctxs:
                    kv_bytes = 2 * b * c * 8 * 128 * 2
                    # set-up: fill (rotation >= 256 MiB) and the reference (~10x slower than HBM rate)
                    overhead = 0.05 + max(kv_bytes, 256 << 20) / bw + 10 * kv_bytes * min(b, 16) / b / bw
                    total += point(4 * b * heads * c * 128, kv_bytes / 0.7, overhead)
        est["decode_attn"] = total
    tokens = [1, 32, 512, 4096] if quick else [1 << i for i in range(15)]
    for cls, peak, in_bytes in (("gemm", tflops, 2), ("gemm_fp8", 2 * tflops, 1)):
        if cls not in classes:
            continue
        total = 1.0  # cuBLASLt initialisation
        for n, k in sorted({(n, k) for _, _, n, k in shapes}):  # llmsim-bench measures each (n, k) once
            for m in tokens:
                # allocation + fill + heuristic, and the fp32 reference on <= 64 rows at ~5 TFLOP/s
                overhead = 0.05 + 2 * min(m, 64) * n * k / 5e12
                total += point(2 * m * n * k, (n * k + m * k) * in_bytes + 2 * m * n, overhead, peak)
        est[cls] = total
    if "prefill_attn" in classes:
        cfgs, points = _prefill_grid(quick)
        est["prefill_attn"] = 5.0 + sum(
            point(attention_flops(b, h, 128, s, 0), attention_bytes(b, h, kv, 128, s, 0), 0.05, 0.5 * tflops)
            for h, kv in cfgs for b, s in points)
    if "chunk_attn" in classes:
        cfgs, points = _chunk_grid(quick)
        est["chunk_attn"] = sum(
            point(attention_flops(1, h, 128, c, p), attention_bytes(1, h, kv, 128, c, p), 0.05, 0.5 * tflops)
            for h, kv in cfgs for c, p in points)
    return est


# ----------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="run_suite.py",
        description="Build and run the llmsim CUDA microbenchmarks; write one calibration CSV.")
    ap.add_argument("--out", help="CSV file to write (required unless --estimate)")
    ap.add_argument("--shapes", default=str(DEFAULT_SHAPES),
                    help="GEMM shapes CSV with header model,op,n,k (default: %(default)s)")
    ap.add_argument("--quick", action="store_true", help="shrink every grid (smoke test, ~30 s on an H100)")
    ap.add_argument("--build-dir", default=str(DEFAULT_BUILD_DIR), help="CMake build directory (default: %(default)s)")
    ap.add_argument("--skip-build", action="store_true", help="use the existing llmsim-bench in --build-dir")
    ap.add_argument("--only", help=f"comma-separated classes to run (default: all of {','.join(ALL_CLASSES)})")
    ap.add_argument("--tokens", help="GEMM M values, comma-separated (passed to llmsim-bench)")
    ap.add_argument("--bench-arg", action="append", default=[],
                    help="extra argument passed through to llmsim-bench (repeatable)")
    ap.add_argument("--estimate", action="store_true",
                    help="print the expected run time on an H100 and exit (no GPU needed)")
    return ap.parse_args(argv)


def select_classes(only: str | None) -> list[str]:
    if not only:
        return list(ALL_CLASSES)
    wanted = [c.strip() for c in only.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in ALL_CLASSES]
    if unknown:
        raise ValueError(f"unknown class(es) {unknown}; known: {', '.join(ALL_CLASSES)}")
    return [c for c in ALL_CLASSES if c in wanted]


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2 -> 64, 2 means "no GPU" here)
        return EXIT_OK if exc.code in (0, None) else EXIT_USAGE
    try:
        classes = select_classes(args.only)
    except ValueError as exc:
        print(f"run_suite: {exc}", file=sys.stderr)
        return EXIT_USAGE

    if args.estimate:
        shapes = load_shapes(args.shapes) if ({"gemm", "gemm_fp8"} & set(classes)) else []
        est = estimate_seconds(shapes, args.quick, classes)
        for cls, sec in est.items():
            print(f"{cls:>12s}  {sec:7.1f} s")
        print(f"{'total':>12s}  {sum(est.values()):7.1f} s  (H100 roofline estimate; "
              f"{len(shapes)} GEMM shapes, {'quick' if args.quick else 'full'} grids)")
        return EXIT_OK
    if not args.out:
        print("run_suite: --out FILE is required", file=sys.stderr)
        return EXIT_USAGE

    # 1. GPU first: without one there is nothing to build for.
    try:
        gpu = detect_gpu()
    except NoGpu as exc:
        print(no_gpu_message(str(exc)), file=sys.stderr)
        return EXIT_NO_GPU
    date = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    log(f"GPU: {gpu.name}, driver {gpu.driver}")

    bin_classes = [c for c in classes if c in BINARY_CLASSES]
    rows: list[dict] = []
    failed = 0
    status = EXIT_OK
    build_dir = Path(args.build_dir)

    # 2 + 3. Build and run llmsim-bench.
    cuda_version = ""
    if bin_classes:
        try:
            binary = find_binary(build_dir) if args.skip_build else build(build_dir)
            if not binary.exists():
                raise RuntimeError(f"{binary} not found (drop --skip-build to build it)")
        except RuntimeError as exc:
            print(f"run_suite: {exc}", file=sys.stderr)
            return EXIT_ERROR
        info = binary_build_info(binary)
        cuda_version = info.get("cuda", "")
        if {"gemm", "gemm_fp8"} & set(bin_classes) and info.get("cublaslt") != "yes":
            log("WARNING: llmsim-bench was built without cuBLASLt: NO gemm / gemm_fp8 rows will be measured "
                "(install cuBLAS with the CUDA toolkit or `pip install nvidia-cublas`, or set LLMSIM_CUBLAS_ROOT, "
                "then rebuild)")
        with tempfile.TemporaryDirectory(prefix="llmsim-bench-") as tmp:
            tmp_csv = Path(tmp) / "bench.csv"
            argv_bench = [str(binary), *bin_classes, "--out", str(tmp_csv)]
            if {"gemm", "gemm_fp8"} & set(bin_classes):
                argv_bench += ["--shapes", str(args.shapes)]
            if args.tokens:
                argv_bench += ["--tokens", args.tokens]
            if args.quick:
                argv_bench.append("--quick")
            argv_bench += args.bench_arg
            log("running " + " ".join(argv_bench))
            rc = subprocess.run(argv_bench, stdout=sys.stderr, stderr=sys.stderr).returncode
            if rc == 2:
                print(no_gpu_message(f"nvidia-smi lists {gpu.name} but {BINARY_NAME} found no usable CUDA device"),
                      file=sys.stderr)
                return EXIT_NO_GPU
            if tmp_csv.exists():
                try:
                    rows.extend(read_bench_csv(tmp_csv))
                except ValueError as exc:
                    print(f"run_suite: {exc}", file=sys.stderr)
                    return EXIT_ERROR
            if rc == EXIT_FAILED_CHECK:
                failed += sum("FAILED_CHECK" in r.get("note", "") for r in rows)
            elif rc != 0:
                log(f"{BINARY_NAME} exited {rc}; keeping the {len(rows)} rows written before that")
                status = EXIT_ERROR

    if "gemm_fp8" in bin_classes and not any(r.get("op_class") == "gemm_fp8" for r in rows):
        log("WARNING: gemm_fp8 was requested but produced NO rows (every point was skipped: see the messages "
            "above). Expected on GPUs without fp8 tensor cores (below sm_89); on Hopper it means cuBLASLt "
            "rejected the fp8 calls, and fp8 efficiencies must come from another source.")

    # 4. Prefill / chunked-prefill attention through torch.
    if status == EXIT_OK:
        torch_rows, torch_failed = torch_attention_rows(set(classes), args.quick)
        rows.extend(torch_rows)
        failed += torch_failed

    # 5. One CSV with metadata.
    meta = {"gpu": gpu.name, "driver": gpu.driver, "cuda": cuda_version, "date": date}
    n = write_csv(args.out, rows, meta)
    log(f"wrote {n} rows to {args.out}")
    if status != EXIT_OK:
        return status
    if failed:
        log(f"{failed} row(s) failed their correctness check (FAILED_CHECK in note)")
        return EXIT_FAILED_CHECK
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
