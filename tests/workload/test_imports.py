"""llmsim.workload depends on nothing in llmsim except llmsim.errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import llmsim.workload

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import sys
import llmsim.errors
before = set(sys.modules)
import llmsim.workload
print(" ".join(sorted(m for m in set(sys.modules) - before if m.startswith("llmsim"))))
"""


def test_importing_the_workload_package_imports_no_other_llmsim_package():
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out and all(name.startswith("llmsim.workload") for name in out), out


def test_public_names():
    assert set(llmsim.workload.__all__) >= {"Trace", "WorkloadSpec", "load_trace", "TRACE_FORMATS"}
    for name in llmsim.workload.__all__:
        assert getattr(llmsim.workload, name).__doc__
