"""Simulator speed benchmark (the speed issue's fixed set). Prints one table and writes it as JSON.

    python benchmarks/run.py [--only A,B,C,D] [--scale 1.0] [--out benchmarks/results.json]

A: 10k requests, Azure-conversation length profile (lognormal fits, see workloads/README.md), Poisson
   arrivals at 80% of capacity, one llama-3-8b replica on h100-sxm, continuous batching;
B: the same with 100k requests, under each of continuous, static, chunked and disaggregated;
C: 1M requests on 16 replicas behind least_outstanding routing (16 x the single-replica rate);
D: a 50-point sweep of B-sized runs through the local parallel backend.
``--scale`` multiplies every request count (e.g. 0.1 for a quick look); the table reports what ran. For A-C it
also times writing the run folder (``save s``) and report.html (``report s``), as ``llmsim run --report`` does.
Capacity is measured once per policy-independent setup: the throughput of a saturated replica (all
requests queued at t=0), as the simulator itself computes it.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHAT = {
    "name": "bench", "model": "llama-3-8b", "hardware": "h100-sxm",
    "scheduler": {"policy": "continuous", "max_num_seqs": 256, "max_batched_tokens": 8192, "chunk_size": 1024},
    "disaggregated": {"prefill": {"instances": 1}, "decode": {"instances": 1}},
    "workload": {"arrival": {"process": "poisson", "rate": 10.0},
                 "prompt_tokens": {"dist": "lognormal", "median": 1020, "sigma": 0.815, "min": 2, "max": 7000},
                 "output_tokens": {"dist": "lognormal", "median": 129, "sigma": 1.139, "min": 7, "max": 1000},
                 "num_requests": 10000, "seed": 0},
}


def capacity_rps() -> float:
    """Requests/s a saturated llama-3-8b H100 replica serves for the chat length profile."""
    import llmsim
    burst = json.loads(json.dumps(CHAT))
    burst["workload"]["arrival"] = {"process": "burst"}
    burst["workload"]["num_requests"] = 3000
    return llmsim.run(burst).summary["throughput"]["requests_per_s"]


def one_run(scenario: dict) -> dict:
    """Run in a fresh process (so peak RSS is this run's) and return its timing row.

    ``wall_s`` is ``llmsim.run`` from the scenario mapping to the finished result (workload generation,
    simulation, result tables and summary); the one-off ``import llmsim`` of a fresh interpreter (numpy, pandas,
    simpy) is reported apart as ``import_s``, as a sweep or capacity search pays it once per process. ``peak_rss_mb``
    is taken then. What ``llmsim run --report`` does next is timed apart: ``save_s`` writes the run folder (CSVs,
    summary), ``report_s`` builds report.html from it.
    """
    code = ("import json,sys,time,resource,tempfile,shutil;from pathlib import Path;t0=time.perf_counter();"
            "import llmsim,llmsim.api;from llmsim.report import write_report;"
            "sc=json.loads(sys.argv[1]);t=time.perf_counter();i=t-t0;"
            "r=llmsim.run(sc);w=time.perf_counter()-t;rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024;"
            "d=Path(tempfile.mkdtemp());t=time.perf_counter();r.save(d,overwrite=True);s=time.perf_counter()-t;"
            "t=time.perf_counter();write_report([d],d/'report.html');p=time.perf_counter()-t;shutil.rmtree(d);"
            "print(json.dumps({'wall_s':w,'import_s':i,'requests':len(r.requests),'iterations':len(r.iterations),"
            "'peak_rss_mb':rss,'save_s':s,'report_s':p}))")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(scenario)], capture_output=True, text=True,
                         check=True)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row["requests_per_wall_s"] = row["requests"] / row["wall_s"]
    row["iterations_per_wall_s"] = row["iterations"] / row["wall_s"]
    return row


def scenario(n: int, rate: float, policy: str = "continuous", replicas: int = 1, router: str = "round_robin") -> dict:
    """The chat scenario with ``n`` requests at ``rate`` req/s."""
    sc = json.loads(json.dumps(CHAT))
    sc["workload"]["num_requests"] = n
    sc["workload"]["arrival"]["rate"] = rate
    sc["scheduler"]["policy"] = policy
    sc["replicas"], sc["router"] = replicas, router
    return sc


def sweep_row(n: int, rate: float, points: int) -> dict:
    """D: a sweep of ``points`` B-sized runs (rates spread around ``rate``) through the local backend."""
    base = scenario(n, rate)
    rates = [round(rate * (0.5 + i / points), 3) for i in range(points)]
    with tempfile.TemporaryDirectory() as tmp:
        study = Path(tmp) / "study.yaml"
        import yaml
        study.write_text(yaml.safe_dump({"name": "bench-sweep", "base": base,
                                         "axes": {"workload.arrival.rate": rates}}))
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "llmsim.cli", "sweep", str(study), "--out", str(Path(tmp) / "out"),
                        "--quiet"], check=True, cwd=tmp)
        wall = time.perf_counter() - t
    return {"wall_s": wall, "requests": n * points, "iterations": None, "peak_rss_mb": None,
            "requests_per_wall_s": n * points / wall, "iterations_per_wall_s": None, "save_s": None,
            "report_s": None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="A,B,C,D")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results.json")
    args = ap.parse_args(argv)
    only = set(args.only.split(","))
    rate = 0.8 * capacity_rps()
    n = lambda count: max(100, int(count * args.scale))  # noqa: E731
    rows = []
    if "A" in only:
        rows.append({"case": "A continuous 10k", **one_run(scenario(n(10_000), rate))})
    if "B" in only:
        for policy in ("continuous", "static", "chunked", "disaggregated"):
            rows.append({"case": f"B {policy} 100k", **one_run(scenario(n(100_000), rate, policy))})
    if "C" in only:
        rows.append({"case": "C 16 replicas 1M", **one_run(scenario(n(1_000_000), 16 * rate, replicas=16,
                                                                     router="least_outstanding"))})
    if "D" in only:
        rows.append({"case": "D 50-point sweep of B", **sweep_row(n(100_000), rate, 50)})
    print_table(rows)
    probe = cpu_probe_s()
    print(f"CPU probe (a fixed pure-Python loop, best of 5): {probe:.3f} s; compare runs on machines of equal probe")
    record = {"date": time.strftime("%Y-%m-%d"), "machine": platform.platform(), "python": platform.python_version(),
              "cpu_probe_s": probe, "scale": args.scale, "rate_rps": rate, "rows": rows}
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


def cpu_probe_s() -> float:
    """Seconds a fixed pure-Python loop takes (best of 5): how fast this machine runs Python, so that tables
    measured on different machines (cloud hosts of one name vary by 2x) can be told apart."""
    import timeit
    return min(timeit.repeat("sum(i * i for i in range(3_000_000))", number=1, repeat=5))


def print_table(rows: list[dict]) -> None:
    """One line per case."""
    print(f"{'case':28s} {'requests':>9s} {'wall s':>8s} {'req/wall s':>11s} {'iter/wall s':>12s} {'peak RSS MB':>12s}"
          f" {'save s':>7s} {'report s':>9s}")
    for r in rows:
        it = "-" if r["iterations_per_wall_s"] is None else f"{r['iterations_per_wall_s']:.0f}"
        rss = "-" if r["peak_rss_mb"] is None else f"{r['peak_rss_mb']:.0f}"
        save = "-" if r.get("save_s") is None else f"{r['save_s']:.2f}"
        report = "-" if r.get("report_s") is None else f"{r['report_s']:.2f}"
        print(f"{r['case']:28s} {r['requests']:9d} {r['wall_s']:8.2f} {r['requests_per_wall_s']:11.0f} {it:>12s} {rss:>12s}"
              f" {save:>7s} {report:>9s}")


if __name__ == "__main__":
    sys.exit(main())
