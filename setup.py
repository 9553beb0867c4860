"""Build step beyond pyproject.toml: compile the simulator's hot modules with mypyc (C extensions).

The modules are listed in ``llmsim/native.py`` (``COMPILED_MODULES``); the build records each source's SHA-256
in ``llmsim/_native_build.json`` so that llmsim runs the compiled modules only while they match their sources.
``LLMSIM_PURE_PYTHON=1 pip install ...`` skips compiling; so does a machine where mypyc or the C compiler fails
(the extensions are optional): llmsim then runs the same Python code, about 1.5x slower.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import sys
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent


def compiled_modules() -> tuple[str, ...]:
    """``COMPILED_MODULES`` from llmsim/native.py, read without importing llmsim (its dependencies may be absent)."""
    tree = ast.parse((ROOT / "llmsim" / "native.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "COMPILED_MODULES" for t in node.targets):
            return ast.literal_eval(node.value)
    raise RuntimeError("llmsim/native.py defines no COMPILED_MODULES")


def ext_modules() -> list:
    manifest = ROOT / "llmsim" / "_native_build.json"
    manifest.unlink(missing_ok=True)  # no record, no compiled modules used (until this build succeeds)
    if os.environ.get("LLMSIM_PURE_PYTHON", "") not in ("", "0"):
        return []
    modules = compiled_modules()
    sources = [f"{m.replace('.', '/')}.py" for m in modules]
    try:
        from mypyc.build import mypycify
        extensions = mypycify(["--ignore-missing-imports", "--follow-imports=silent", *sources],
                              opt_level="3", group_name="llmsim")
    except (Exception, SystemExit) as error:  # mypy reports type errors by exiting
        print(f"llmsim: not compiling the hot modules ({error!r}); installing pure Python", file=sys.stderr)
        return []
    for extension in extensions:
        extension.optional = True  # a failed C compile leaves pure Python, not a failed install
    digests = {m: hashlib.sha256((ROOT / s).read_bytes()).hexdigest() for m, s in zip(modules, sources)}
    manifest.write_text(json.dumps({"modules": digests}, indent=1) + "\n")
    return extensions


setup(ext_modules=ext_modules())
