"""Side-by-side runs of one workload under several policies or variants (``llmsim compare``)."""

from __future__ import annotations

from typing import Any, Sequence

from llmsim.errors import InputError


def parse_variants(specs: Sequence[str]) -> list[tuple[str, list[str]]]:
    """``NAME:key=value,key=value`` -> (NAME, [overrides]); values may not contain commas."""
    out = []
    for spec in specs:
        name, sep, rest = spec.partition(":")
        if not sep or not name.strip():
            raise InputError("expected NAME:key=value[,key=value]", source="--variant", value=spec)
        overrides = [item.strip() for item in rest.split(",") if item.strip()]
        out.append((name.strip(), overrides))
    return out


def comparison_row(name: str, summary: dict[str, Any]) -> dict[str, Any]:
    """The compared numbers of one run (milliseconds for TTFT/TPOT, seconds for E2E)."""
    lat, thr, slo = summary["latency_s"], summary["throughput"], summary["slo"]

    def ms(metric: str, p: str) -> float | None:
        v = lat[metric][p]
        return None if v is None else v * 1e3
    return {"run": name, "ttft_p50_ms": ms("ttft", "p50"), "ttft_p99_ms": ms("ttft", "p99"),
            "tpot_p50_ms": ms("tpot", "p50"), "tpot_p99_ms": ms("tpot", "p99"),
            "e2e_p50_s": lat["e2e"]["p50"], "e2e_p99_s": lat["e2e"]["p99"],
            "req_per_s": thr["requests_per_s"], "out_tok_per_s": thr["output_tokens_per_s"],
            "goodput_req_per_s": slo["goodput_requests_per_s"], "slo_attainment": slo["attainment"],
            "rejected": summary["requests"]["rejected"], "preemptions": summary["preemptions"]["total"]}


def compare_runs(scenario: str, runs: Sequence[tuple[str, list[str]]], common: Sequence[str] = ()) -> list[dict]:
    """Run ``scenario`` once per (name, overrides) with ``common`` overrides first; one row per run.

    ``tpot_p50_change`` is each run's relative change of median TPOT against the first run (the baseline:
    put the run without speculative decoding or quantization first).
    """
    from llmsim.api import run
    if not runs:
        raise InputError("nothing to compare", source="compare")
    rows = [comparison_row(name, run(scenario, [*common, *overrides]).summary) for name, overrides in runs]
    base = rows[0]["tpot_p50_ms"]
    for row in rows:
        tpot = row["tpot_p50_ms"]
        row["tpot_p50_change"] = None if tpot is None or not base else tpot / base - 1.0
    return rows
