"""Which build of the simulator's hot modules runs: compiled by mypyc, or pure Python.

``pip install`` compiles the modules of :data:`COMPILED_MODULES` into C extensions with mypyc (see setup.py),
which makes a run about 1.5x faster; the Python sources stay the reference and are what runs without a C
compiler, with ``LLMSIM_PURE_PYTHON=1``, or when they no longer match what was compiled. Both builds give
byte-identical results (tests/test_native.py).

The build records the SHA-256 of every compiled source in ``_native_build.json``. At import, :func:`install`
compares it with the sources next to it; if one differs (an edited checkout: rebuild with ``pip install -e .``)
every listed module is loaded from its source instead, with one warning, so edited code never silently runs
as its stale compiled self. All or none: compiled modules call each other's classes directly.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Mapping

#: Modules compiled by mypyc (setup.py reads this tuple): the event loop's per-iteration and per-request code.
#: A class here may only subclass classes compiled with it: a compiled subclass of an interpreted class (such as
#: ``simpy.Environment``) got a corrupt instance dict under CPython 3.11 (mypy 2.4.1), crashing or not depending on
#: import order, so ``llmsim.engine.events`` stays interpreted (tests/test_native.py checks the rule).
COMPILED_MODULES = (
    "llmsim.costmodel.interp",
    "llmsim.costmodel.scalar",
    "llmsim.engine.decode_batch",
    "llmsim.engine.disaggregated",
    "llmsim.engine.kv_cache",
    "llmsim.engine.records",
    "llmsim.engine.replica",
    "llmsim.engine.requests",
    "llmsim.engine.routers.least_outstanding",
    "llmsim.engine.routers.round_robin",
    "llmsim.engine.schedulers.chunked",
    "llmsim.engine.schedulers.continuous",
    "llmsim.engine.schedulers.static",
    "llmsim.engine.simulation",
    "llmsim.engine.state",
)
MANIFEST = "_native_build.json"  # written by setup.py next to this file: {"modules": {name: sha256 of source}}
SHARED_LIBRARY = "llmsim__mypyc"  # mypyc's one shared library for the group (a top-level module)
PACKAGE_DIR = Path(__file__).resolve().parent

#: What runs, for run_info.json: "compiled (mypyc)" or "pure Python (<why>)". Set by :func:`install`.
BUILD = "pure Python (not decided yet)"


def source_path(module: str, package_dir: Path = PACKAGE_DIR) -> Path:
    """The ``.py`` file of ``module`` (a name in :data:`COMPILED_MODULES`)."""
    return package_dir.joinpath(*module.split(".")[1:]).with_suffix(".py")


def source_digest(path: Path) -> str:
    """SHA-256 (hex) of a source file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def decide(manifest: Mapping | None, digests: Mapping[str, str], *, pure_requested: bool,
           library_loads: bool) -> str | None:
    """Why the sources must run instead of the compiled modules (None: use the compiled ones).

    ``manifest``: the build's record (None when nothing was compiled); ``digests``: module -> SHA-256 of its
    source now; ``library_loads``: whether mypyc's shared library imports.
    """
    if pure_requested:
        return "LLMSIM_PURE_PYTHON is set"
    if manifest is None:
        return "not compiled"
    compiled = manifest.get("modules", {})
    changed = sorted(m for m in COMPILED_MODULES if compiled.get(m) != digests.get(m))
    if changed:
        return f"{changed[0]} changed since it was compiled; rebuild with `pip install -e .`"
    if not library_loads:
        return "the compiled library does not load"
    return None


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Loads llmsim modules from their ``.py`` files, whatever extension module sits beside them: the ``forced``
    ones (all of :data:`COMPILED_MODULES` when the sources run), and any other whose extension an older build left
    behind (a module since dropped from the list: its leftover would import a library that no longer has it)."""

    def __init__(self, forced: frozenset[str]) -> None:
        self.forced = forced

    def find_spec(self, name, path=None, target=None):
        if not name.startswith("llmsim."):
            return None
        source = source_path(name)
        if name not in self.forced and (name in COMPILED_MODULES or not _leftover_extension(source)):
            return None
        loader = importlib.machinery.SourceFileLoader(name, str(source))
        return importlib.util.spec_from_file_location(name, source, loader=loader)


def _leftover_extension(source: Path) -> bool:
    """True when an extension module sits beside ``source`` (``name.cpython-311-x86_64-linux-gnu.so`` etc.)."""
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    return source.is_file() and any(source.with_suffix(s).is_file() for s in suffixes)


def _library_loads() -> bool:
    try:
        importlib.import_module(SHARED_LIBRARY)
    except ImportError:
        return False
    return True


def install() -> str:
    """Decide which build runs (before any listed module is imported); returns and sets :data:`BUILD`."""
    global BUILD
    manifest_path = PACKAGE_DIR / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else None
    digests = {} if manifest is None else {  # (nothing compiled: nothing to compare)
        m: source_digest(source_path(m)) for m in COMPILED_MODULES if source_path(m).is_file()}
    why = decide(manifest, digests, pure_requested=os.environ.get("LLMSIM_PURE_PYTHON", "") not in ("", "0"),
                 library_loads=manifest is not None and _library_loads())
    forced = frozenset() if why is None else frozenset(COMPILED_MODULES)
    finder = next((f for f in sys.meta_path if isinstance(f, _SourceFinder)), None)
    if finder is None:
        sys.meta_path.insert(0, _SourceFinder(forced))
    else:
        finder.forced = forced
    if why is None:
        BUILD = "compiled (mypyc)"
        return BUILD
    if manifest is not None and why.startswith("llmsim."):
        warnings.warn(f"llmsim: running pure Python (slower): {why}", RuntimeWarning, stacklevel=2)
    BUILD = f"pure Python ({why})"
    return BUILD
