"""The cheapest configuration of a sweep that meets the SLO at a target rate, and the Pareto front.

A point *qualifies* at target rate R when its run finished (status ok), sustained its load (no rejections,
no growing queue; see :mod:`llmsim.sweep.slo`), was offered at least R requests/s, and meets every SLO
target. The cheapest qualifying point has the lowest ``cost_per_hour_usd`` (GPUs x the hardware profile's
price); ties go to the higher output tokens/s per GPU, then to the earlier point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from llmsim.sweep.slo import SloTarget, check_slo

#: Relative slack when comparing a point's offered rate with the target (rates are floats).
RATE_EPS = 1e-9


@dataclass(frozen=True)
class Cheapest:
    """The answer for one target rate: the chosen row (None when no point qualifies) and what was judged."""

    rate_per_s: float
    slo: tuple[SloTarget, ...]
    row: dict[str, Any] | None
    qualifying: tuple[int, ...] = field(default=())

    def describe(self, dimension_keys: tuple[str, ...]) -> str:
        """One paragraph for the terminal and the report."""
        slo = ", ".join(f"{t.name} <= {t.limit_s:g} s" for t in self.slo) or "no SLO targets"
        head = f"cheapest configuration at >= {self.rate_per_s:g} req/s ({slo})"
        if self.row is None:
            return f"{head}: none of the points qualifies (see the sustained / slo_met columns)"
        r = self.row
        what = ", ".join(f"{k}={r[k]}" for k in dimension_keys) or "the base scenario"
        return (f"{head}: point {r['point']} ({what}) - {r['gpus']} GPUs, ${r['cost_per_hour_usd']:.2f}/hour, "
                f"${_fmt(r['usd_per_m_input_tokens'])} per million input tokens, "
                f"${_fmt(r['usd_per_m_output_tokens'])} per million output tokens "
                f"(each charging all GPU time to that token kind); {len(self.qualifying)} of the points qualify")


def _fmt(value: Any) -> str:
    """A dollar amount to 3 decimals, "-" when missing."""
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def qualifies(row: pd.Series | dict, rate_per_s: float, slo: tuple[SloTarget, ...]) -> bool:
    """Whether one table row meets the SLO at (at least) ``rate_per_s``; see the module docstring."""
    if row["status"] != "ok" or not _true(row["sustained"]):
        return False
    offered = row["offered_rate_per_s"]
    if not _finite(offered) or offered < rate_per_s * (1 - RATE_EPS):
        return False
    values = {t.name: (row[t.column] if _finite(row[t.column]) else None) for t in slo}
    return check_slo(values, int(row["finished"]), slo) == ""


def pick_cheapest(table: pd.DataFrame, rate_per_s: float, slo: tuple[SloTarget, ...]) -> Cheapest:
    """The cheapest qualifying row of ``table`` (rows as produced by :func:`llmsim.sweep.table.build_table`)."""
    ok = [i for i in range(len(table)) if qualifies(table.iloc[i], rate_per_s, slo)]
    if not ok:
        return Cheapest(rate_per_s, slo, None, ())
    rows = table.iloc[ok]
    per_gpu = rows["output_tokens_per_s_per_gpu"].fillna(0.0)
    order = sorted(range(len(rows)), key=lambda j: (float(rows["cost_per_hour_usd"].iloc[j]), -float(per_gpu.iloc[j]),
                                                     int(rows["point"].iloc[j])))
    best = rows.iloc[order[0]]
    return Cheapest(rate_per_s, slo, _plain_row(best), tuple(int(p) for p in rows["point"]))


def pareto_front(table: pd.DataFrame, x: str, y: str) -> list[int]:
    """Points (by ``point``) not dominated in (higher ``x``, lower ``y``) among finished rows, sorted by x."""
    rows = table[(table["status"] == "ok") & table[x].notna() & table[y].notna()]
    rows = rows.sort_values([x, y], ascending=[False, True], kind="stable")
    front, best_y = [], math.inf
    for _, r in rows.iterrows():
        if r[y] < best_y:
            front.append(int(r["point"]))
            best_y = r[y]
    return sorted(front, key=lambda p: float(table.loc[table["point"] == p, x].iloc[0]))


def _plain_row(row: pd.Series) -> dict[str, Any]:
    """A table row as plain Python values (NaN/NA as None), for printing and JSON."""
    out = {}
    for key, value in row.items():
        if value is pd.NA or (isinstance(value, float) and math.isnan(value)):
            value = None
        elif hasattr(value, "item"):
            value = value.item()
        out[key] = value
    return out


def _finite(value: Any) -> bool:
    """True for a finite number (not None, NA, NaN or text)."""
    try:
        return value is not None and value is not pd.NA and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _true(value: Any) -> bool:
    """True only for a true boolean (or the text "True" read back from CSV); NA, NaN and None are false."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return False
    return bool(value)
