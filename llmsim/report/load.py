"""Read a run folder (written by ``llmsim run``) into a :class:`RunData`.

Only the columns the report draws are read (pandas' C reader), so that a run of a million requests and
two million iterations loads in about two seconds. Times stay in seconds (SI) here; conversion to ms happens in the
figures and tables. Anything missing or malformed raises :class:`llmsim.errors.InputError` naming the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import yaml

from llmsim.errors import InputError

#: requests.csv columns the report uses (times in s).
REQUEST_COLUMNS = ("request_id", "arrival_s", "status", "first_scheduled_s", "first_token_s", "finish_s",
                   "ttft_s", "tpot_s", "e2e_s", "preemptions")
#: iterations.csv columns the report uses (times in s, sizes in sequences, KV in blocks).
ITERATION_COLUMNS = ("replica", "start_s", "end_s", "prefill_chunks", "decode_seqs", "kv_blocks_used")
#: itl.csv columns: an inter-token gap (s) and how many times it occurred.
ITL_COLUMNS = ("gap_s", "count")
_TEXT_COLUMNS = frozenset({"status"})


@dataclass(frozen=True)
class RunData:
    """One run as the report sees it.

    Attributes:
        name: the label used in legends and table headers (the folder name, made unique).
        path: the run folder.
        requests: one row per request, ``REQUEST_COLUMNS`` (seconds; NaN where undefined).
        iterations: one row per iteration, ``ITERATION_COLUMNS``.
        itl: every inter-token gap as (gap_s, count) rows.
        summary: summary.json as a dict.
        scenario: the resolved scenario.yaml as a dict; ``scenario_text`` is the file verbatim.
        run_info: run_info.json as a dict ({} when the file is absent).
    """

    name: str
    path: Path
    requests: pd.DataFrame
    iterations: pd.DataFrame
    itl: pd.DataFrame
    summary: dict[str, Any]
    scenario: dict[str, Any]
    scenario_text: str
    run_info: dict[str, Any]

    @property
    def finished(self) -> pd.DataFrame:
        """The requests whose status is ``finished`` (the ones latency statistics cover)."""
        return self.requests[self.requests["status"] == "finished"]


def load_run(path: str | Path, name: str | None = None) -> RunData:
    """Read the run folder ``path``; ``name`` defaults to the folder name.

    Raises:
        InputError: the folder or one of its files is missing, unreadable or lacks a needed column.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise InputError("expected a run folder written by `llmsim run` (requests.csv, summary.json, ...)",
                         source=folder)
    text = _read_text(folder / "scenario.yaml")
    return RunData(
        name=name or _folder_name(folder), path=folder,
        requests=_read_csv(folder / "requests.csv", REQUEST_COLUMNS),
        iterations=_read_csv(folder / "iterations.csv", ITERATION_COLUMNS),
        itl=_read_csv(folder / "itl.csv", ITL_COLUMNS),
        summary=_read_json(folder / "summary.json"),
        scenario=_parse_yaml(text, folder / "scenario.yaml"), scenario_text=text,
        run_info=_read_json(folder / "run_info.json") if (folder / "run_info.json").is_file() else {})


def load_runs(paths: Sequence[str | Path]) -> list[RunData]:
    """Read several run folders, naming each by its folder (made unique with parent folders if needed)."""
    if not paths:
        raise InputError("expected at least one run folder", source="report")
    return [load_run(p, name) for p, name in zip(paths, run_names(paths))]


def run_names(paths: Sequence[str | Path]) -> list[str]:
    """Short unique labels: folder names, or ``parent/name`` (then ``#i``) where names repeat."""
    full = [Path(p).resolve() for p in paths]
    names = [p.name or str(p) for p in full]
    if len(set(names)) < len(names):
        names = ["/".join(p.parts[-2:]) for p in full]
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    return out


def _folder_name(folder: Path) -> str:
    return folder.resolve().name or str(folder)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("missing file; is this a run folder written by `llmsim run`?", source=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read file ({exc})", source=path) from None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc})", source=path) from None
    if not isinstance(data, dict):
        raise InputError("expected a JSON object", source=path)
    return data


def _parse_yaml(text: str, path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML ({exc})", source=path) from None
    if not isinstance(data, dict):
        raise InputError("expected a YAML mapping (the resolved scenario)", source=path)
    return data


def _read_csv(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    """The named columns of a CSV, numeric ones as float64 (int columns too, so NaN is allowed)."""
    if not path.is_file():
        raise InputError("missing file; is this a run folder written by `llmsim run`?", source=path)
    try:
        header = pd.read_csv(path, nrows=0).columns
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read CSV ({exc})", source=path) from None
    missing = [c for c in columns if c not in header]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}", source=path)
    try:
        frame = pd.read_csv(path, usecols=list(columns), dtype={c: str for c in _TEXT_COLUMNS & set(columns)})
        return pd.DataFrame({c: _column(frame[c], c) for c in columns})
    except (ValueError, TypeError, OSError, UnicodeDecodeError) as exc:
        raise InputError(f"malformed CSV ({exc})", source=path) from None


def _column(values: pd.Series, name: str) -> np.ndarray:
    if name in _TEXT_COLUMNS:
        return values.fillna("").astype(str).to_numpy()
    return pd.to_numeric(values, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)

