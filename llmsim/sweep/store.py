"""The results folder of a sweep: one sub-folder per finished point, written atomically, and resumable.

Layout::

    DIR/study.json                  the study's resolved content (study mapping + base scenario mapping)
    DIR/study.yaml                  a copy of the study file, for reference
    DIR/points/<id>/overrides.json  the point's overrides (key path -> value), set then axes then zip
    DIR/points/<id>/measured.json   offered rate, first-token rate, sustained (see llmsim.sweep.slo)
    DIR/points/<id>/summary.json    the run summary; written last, so its presence marks the point done
    DIR/points/<id>/error.txt       instead of the two above when the run raised (retried on the next sweep)
    DIR/results.csv, results.parquet, study.html, *.png, *.svg

Every file is written to a temporary name in its folder and renamed into place, so an interrupted sweep
leaves complete files or none.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from llmsim.errors import InputError
from llmsim.sweep.worker import OK, PointOutcome

RECORD = "study.json"
#: Files a sweep writes at the top of its folder (removed by --overwrite along with points/).
TOP_FILES = ("study.json", "study.yaml", "results.csv", "results.parquet", "study.html")


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if isinstance(data, bytes):
        tmp.write_bytes(data)
    else:
        tmp.write_text(data, encoding="utf-8")
    os.replace(tmp, path)


def dump_json(value: Any) -> str:
    """JSON text as stored in a sweep folder (indented, key order kept, newline-terminated)."""
    return json.dumps(value, indent=2) + "\n"


class SweepStore:
    """Reads and writes one sweep folder (see module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.points_dir = self.root / "points"

    def open(self, record: dict[str, Any], study_text: str, *, overwrite: bool) -> None:
        """Prepare the folder for ``record``'s study: create it, or resume it, or (``overwrite``) reset it.

        Raises:
            InputError: the folder holds another study's results (or foreign files) and not ``overwrite``.
        """
        if self.root.exists() and not self.root.is_dir():
            raise InputError("output path exists and is not a folder", source=self.root)
        previous = self.recorded()
        if previous is not None and previous != record:
            if not overwrite:
                raise InputError("holds results of a different study (changed: "
                                 f"{', '.join(_changed(previous, record))}); pass --overwrite to discard them, "
                                 "or choose another --out", source=self.root)
            self._reset()
        elif previous is None and self.root.is_dir() and any(self.root.iterdir()) and not overwrite:
            raise InputError("output folder is not empty and holds no sweep; pass --overwrite to write into it, "
                             "or choose another --out", source=self.root)
        self.points_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.root / RECORD, dump_json(record))
        write_atomic(self.root / "study.yaml", study_text)

    def recorded(self) -> dict[str, Any] | None:
        """The study record saved in the folder, or None."""
        path = self.root / RECORD
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read the sweep record: {exc}", source=path) from None

    def _reset(self) -> None:
        """Remove what an earlier sweep wrote here (points/ and the top-level results), nothing else."""
        if self.points_dir.is_dir():
            shutil.rmtree(self.points_dir)
        for name in TOP_FILES:
            (self.root / name).unlink(missing_ok=True)
        for pattern in ("*.png", "*.svg"):
            for path in self.root.glob(pattern):
                path.unlink()

    def point_dir(self, point_id: str) -> Path:
        """The folder of one point."""
        return self.points_dir / point_id

    def is_done(self, point_id: str) -> bool:
        """True when the point finished successfully in an earlier or the current sweep."""
        folder = self.point_dir(point_id)
        return (folder / "summary.json").is_file() and (folder / "measured.json").is_file()

    def save(self, outcome: PointOutcome, overrides: dict[str, Any]) -> None:
        """Save one outcome as soon as it arrives (summary.json last; stale error.txt removed)."""
        folder = self.point_dir(outcome.id)
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / "overrides.json", dump_json(overrides))
        if outcome.status == OK:
            write_atomic(folder / "measured.json", dump_json(outcome.measured))
            write_atomic(folder / "summary.json", dump_json(outcome.summary))
            (folder / "error.txt").unlink(missing_ok=True)
        else:
            write_atomic(folder / "error.txt", f"{outcome.error}\n\n{outcome.traceback}")

    def load(self, point_id: str) -> PointOutcome | None:
        """The saved outcome of a point (OK or FAILED), or None when it has not run."""
        folder = self.point_dir(point_id)
        if self.is_done(point_id):
            return PointOutcome(point_id, OK, summary=_read_json(folder / "summary.json"),
                                measured=_read_json(folder / "measured.json"))
        error = folder / "error.txt"
        if error.is_file():
            text = error.read_text(encoding="utf-8")
            return PointOutcome(point_id, "failed", error=text.split("\n", 1)[0], traceback=text)
        return None


def _read_json(path: Path) -> Any:
    """A saved JSON file; InputError (delete the point to recompute it) when unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read a saved point (delete its folder to recompute it): {exc}",
                         source=path) from None


def _changed(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Names of the study sections that differ between two records ("base", "axes", ...)."""
    names = []
    if old.get("base") != new.get("base"):
        names.append("base scenario")
    old_study, new_study = old.get("study", {}), new.get("study", {})
    for key in sorted(set(old_study) | set(new_study)):
        if old_study.get(key) != new_study.get(key):
            names.append(key)
    return names or ["record format"]
