"""Tests of the CUDA microbenchmark suite (microbench/) that need no GPU.

* fast, pure Python: run_suite.py's CSV writer/reader, its no-GPU exit, its run-time estimate;
* build (skipped without nvcc or cmake on PATH): configures and compiles llmsim-bench for
  sm_80 + sm_90 into a temporary directory, checks --help / --version work without touching a
  device, and that without a GPU both the binary and run_suite.py exit 2 with one clear line.
  Every subprocess has a timeout and the whole build test is bounded to BUILD_BUDGET_S
  (< 4 minutes; it takes about 40 s on 2 cores).
"""

from __future__ import annotations

import csv
import importlib.util
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MICROBENCH = REPO / "microbench"
RUN_SUITE = MICROBENCH / "run_suite.py"

# The documented schema (microbench/README.md); the binary and run_suite.py must agree with it.
DOCUMENTED_COLUMNS = [
    "op_class", "op", "dtype", "m", "n", "k", "batch", "ctx", "heads", "kv_heads", "head_dim",
    "flops", "bytes", "median_s", "p10_s", "p90_s", "reps", "rel_err", "note",
]
META_COLUMNS = ["gpu", "driver", "cuda", "date"]
NO_GPU_PREFIX = "no CUDA GPU found: llmsim calibrate run needs an NVIDIA GPU"
BUILD_BUDGET_S = 230


def _load_run_suite():
    spec = importlib.util.spec_from_file_location("llmsim_microbench_run_suite", RUN_SUITE)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look the module up while the class is built
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def run_suite():
    return _load_run_suite()


def _no_gpu_env(tmp_path: Path) -> dict:
    env = dict(os.environ)
    env["LLMSIM_BENCH_NVIDIA_SMI"] = str(tmp_path / "definitely-not-nvidia-smi")
    return env


def _machine_has_gpu() -> bool:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        proc = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and "GPU" in proc.stdout


# ----------------------------------------------------------------------------- fast tests


def test_csv_writer_writes_documented_header(run_suite, tmp_path):
    assert list(run_suite.BENCH_COLUMNS) == DOCUMENTED_COLUMNS
    assert list(run_suite.ALL_COLUMNS) == DOCUMENTED_COLUMNS + META_COLUMNS
    out = tmp_path / "sub" / "calib.csv"
    rows = [
        {"op_class": "gemm", "op": "llama-3-8b/qkv", "dtype": "bf16", "m": 16, "n": 6144, "k": 4096,
         "flops": 2 * 16 * 6144 * 4096, "bytes": 123, "median_s": 1.5e-5, "p10_s": 1.4e-5, "p90_s": 1.6e-5,
         "reps": 100, "rel_err": "2.0e-03", "note": "algo=1,check=full"},
        {"op_class": "prefill_attn", "op": "sdpa_causal", "median_s": float("nan"), "cuda": "12.4"},
    ]
    meta = {"gpu": "NVIDIA H100 80GB HBM3", "driver": "550.54.15", "cuda": "13.0", "date": "2025-01-01T00:00:00+00:00"}
    assert run_suite.write_csv(out, rows, meta) == 2
    with open(out, newline="") as f:
        got = list(csv.reader(f))
    assert got[0] == DOCUMENTED_COLUMNS + META_COLUMNS
    first = dict(zip(got[0], got[1]))
    assert first["op"] == "llama-3-8b/qkv"
    assert first["m"] == "16" and first["batch"] == ""
    assert math.isclose(float(first["median_s"]), 1.5e-5)
    assert first["note"] == "algo=1;check=full"  # no field ever contains the separator
    assert first["gpu"] == "NVIDIA H100 80GB HBM3" and first["cuda"] == "13.0"
    second = dict(zip(got[0], got[2]))
    assert second["median_s"] == ""  # NaN -> empty
    assert second["cuda"] == "12.4"  # a row's own metadata wins


def test_read_bench_csv_checks_header(run_suite, tmp_path):
    good = tmp_path / "good.csv"
    good.write_text(",".join(DOCUMENTED_COLUMNS) + "\n" + "hbm,read,b128,,1073741824" + "," * 14 + "\n")
    rows = run_suite.read_bench_csv(good)
    assert len(rows) == 1 and rows[0]["op"] == "read" and rows[0]["n"] == "1073741824"
    bad = tmp_path / "bad.csv"
    bad.write_text("op_class,op\nhbm,read\n")
    with pytest.raises(ValueError):
        run_suite.read_bench_csv(bad)


def test_no_gpu_exits_2_with_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(RUN_SUITE), "--out", str(tmp_path / "out.csv")],
        capture_output=True, text=True, timeout=60, env=_no_gpu_env(tmp_path), cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(NO_GPU_PREFIX + " (nvidia-smi")
    assert not (tmp_path / "out.csv").exists()


def test_main_is_importable_and_returns_2_without_gpu(run_suite, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LLMSIM_BENCH_NVIDIA_SMI", str(tmp_path / "missing"))
    assert run_suite.main(["--out", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(NO_GPU_PREFIX)


def test_estimate_fits_the_time_budgets(run_suite):
    shapes = run_suite.load_shapes(MICROBENCH / "shapes_example.csv")
    assert len(shapes) == 5 and shapes[0] == ("llama-3-8b", "qkv", 6144, 4096)
    full = sum(run_suite.estimate_seconds(shapes, quick=False).values())
    quick = sum(run_suite.estimate_seconds(shapes, quick=True).values())
    assert quick < 30.0
    assert full < 360.0
    assert run_suite.main(["--estimate"]) == 0


def test_usage_errors(run_suite):
    assert run_suite.main(["--only", "nonsense"]) == 64
    assert run_suite.main([]) == 64  # --out is required


# ----------------------------------------------------------------------------- build test


@pytest.mark.skipif(shutil.which("nvcc") is None or shutil.which("cmake") is None,
                    reason="needs nvcc and cmake on PATH")
def test_build_help_and_no_gpu(tmp_path):
    deadline = time.monotonic() + BUILD_BUDGET_S

    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"microbench build test exceeded its {BUILD_BUDGET_S} s budget")
        return left

    build = tmp_path / "build"
    cfg = subprocess.run(
        ["cmake", "-S", str(MICROBENCH), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"],
        capture_output=True, text=True, timeout=remaining(),
    )
    assert cfg.returncode == 0, cfg.stdout + cfg.stderr
    jobs = str(max(2, min(4, os.cpu_count() or 2)))
    bld = subprocess.run(["cmake", "--build", str(build), "-j", jobs], capture_output=True, text=True,
                         timeout=remaining())
    assert bld.returncode == 0, bld.stdout[-4000:] + bld.stderr[-4000:]
    binary = build / "llmsim-bench"
    assert binary.is_file() and os.access(binary, os.X_OK)

    # --help and --version never touch the device.
    helped = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=remaining())
    assert helped.returncode == 0, helped.stderr
    assert ",".join(DOCUMENTED_COLUMNS) in helped.stdout
    for cmd in ("hbm", "launch", "elementwise", "decode_attn", "gemm", "gemm_fp8", "allreduce"):
        assert cmd in helped.stdout
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=remaining())
    assert version.returncode == 0 and "cublaslt=" in version.stdout and "CUDA runtime" in version.stdout
    usage = subprocess.run([str(binary), "no-such-command"], capture_output=True, text=True, timeout=remaining())
    assert usage.returncode == 64

    if _machine_has_gpu():
        return  # the no-GPU paths below cannot be exercised here
    # The binary itself: exit 2, one line.
    nogpu = subprocess.run([str(binary), "hbm", "--out", str(tmp_path / "b.csv")], capture_output=True,
                           text=True, timeout=remaining())
    assert nogpu.returncode == 2, nogpu.stderr
    assert nogpu.stderr.startswith("no CUDA GPU found")
    assert len(nogpu.stderr.strip().splitlines()) == 1

    # run_suite.py when nvidia-smi claims a GPU but the binary finds none: still exit 2, one line.
    fake_smi = tmp_path / "fake-nvidia-smi"
    fake_smi.write_text("#!/bin/sh\necho 'NVIDIA H100 80GB HBM3, 550.54.15'\n")
    fake_smi.chmod(0o755)
    env = dict(os.environ, LLMSIM_BENCH_NVIDIA_SMI=str(fake_smi))
    suite = subprocess.run(
        [sys.executable, str(RUN_SUITE), "--out", str(tmp_path / "s.csv"), "--skip-build", "--build-dir", str(build),
         "--only", "hbm"],
        capture_output=True, text=True, timeout=remaining(), env=env,
    )
    assert suite.returncode == 2, suite.stderr
    assert suite.stderr.strip().splitlines()[-1].startswith(NO_GPU_PREFIX)
