"""The compiled build (mypyc) of the hot modules against their Python sources: same bytes out, and the rules
for which of the two runs (llmsim.native)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmsim
from llmsim import native

COMPILED = native.BUILD.startswith("compiled")
needs_compiled = pytest.mark.skipif(
    not COMPILED and os.environ.get("LLMSIM_REQUIRE_COMPILED") != "1",
    reason=f"llmsim runs {native.BUILD}: nothing compiled to compare (LLMSIM_REQUIRE_COMPILED=1 makes this a failure)")

# Runs scenarios (a JSON list on stdin) and prints one digest line per scenario.
WORKER = """
import hashlib, json, sys
import llmsim, llmsim.native
assert llmsim.native.BUILD.startswith("pure"), llmsim.native.BUILD
for scenario in json.loads(sys.stdin.read()):
    print(json.dumps(DIGEST(llmsim.run(scenario))))
"""


def digest(result) -> dict[str, str]:
    """SHA-256 of the run's requests, iterations, ITL tables (as CSV) and summary (as JSON)."""
    out = {name: hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()
           for name, frame in (("requests", result.requests), ("iterations", result.iterations), ("itl", result.itl))}
    out["summary"] = hashlib.sha256(json.dumps(result.summary, sort_keys=True).encode()).hexdigest()
    return out


def pure_python_digests(scenarios: list[dict]) -> list[dict[str, str]]:
    """Digests of ``scenarios`` run by the Python sources (a fresh interpreter with LLMSIM_PURE_PYTHON=1)."""
    import inspect
    code = inspect.getsource(digest).replace("def digest", "def DIGEST") + WORKER
    env = {**os.environ, "LLMSIM_PURE_PYTHON": "1"}
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(scenarios), capture_output=True, text=True,
                         env=env, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return [json.loads(line) for line in out.stdout.splitlines()]


def scenario(policy: str, *, n: int, seed: int, replicas: int = 1, router: str = "round_robin", kv_blocks=None,
             prefix_caching: bool = False, speculative: bool = False, layers: int | None = None) -> dict:
    sc = {"name": "native", "model": "llama-3-8b", "hardware": "h100-sxm",
          "scheduler": {"policy": policy, "max_num_seqs": 32, "max_batched_tokens": 2048, "chunk_size": 256},
          "workload": {"arrival": {"process": "poisson", "rate": 25.0 * replicas},
                       "prompt_tokens": {"dist": "lognormal", "median": 400, "sigma": 0.8, "min": 2, "max": 2000},
                       "output_tokens": {"dist": "lognormal", "median": 60, "sigma": 0.9, "min": 1, "max": 300},
                       "num_requests": n, "seed": seed}}
    if layers:
        sc["model_overrides"] = {"num_layers": layers}
    if kv_blocks:
        sc["scheduler"]["num_kv_blocks"] = kv_blocks
    if policy == "disaggregated":
        sc["disaggregated"] = {"prefill": {"instances": 1}, "decode": {"instances": replicas}}
    else:
        sc.update(replicas=replicas, router=router)
    if prefix_caching:
        sc["scheduler"]["prefix_caching"] = True
        sc["workload"].update(shared_prefix={"tokens": 256, "num_prefixes": 3, "block_tokens": 16},
                              multi_turn={"turns": 2, "think_time_s": 0.2})
    if speculative:
        sc["speculative"] = {"method": "eagle", "num_speculative_tokens": 3, "acceptance": 0.7,
                             "draft_cost_fraction": 0.1}
    return sc


@needs_compiled
def test_the_compiled_build_is_the_one_running_under_ci():
    assert COMPILED, native.BUILD
    import llmsim.engine.replica as replica
    assert not replica.__file__.endswith(".py")


@needs_compiled
def test_compiled_and_pure_python_give_identical_bytes_on_long_runs():
    """Every policy and a routed cluster, long enough for long fast-forward spans and a full KV cache."""
    scenarios = [scenario(p, n=1500, seed=i) for i, p in enumerate(("static", "continuous", "chunked", "disaggregated"))]
    scenarios.append(scenario("continuous", n=1500, seed=7, replicas=3, router="least_outstanding", kv_blocks=900))
    compiled = [digest(llmsim.run(sc)) for sc in scenarios]
    assert compiled == pure_python_digests(scenarios)


@needs_compiled
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(policy=st.sampled_from(["static", "continuous", "chunked", "disaggregated"]), seed=st.integers(0, 10_000),
       replicas=st.integers(1, 3), router=st.sampled_from(["round_robin", "least_outstanding", "least_kv"]),
       kv_blocks=st.sampled_from([None, 90, 250]), extra=st.sampled_from(["", "prefix", "speculative"]),
       fast_forward=st.booleans(), n=st.integers(1, 120))
def test_compiled_and_pure_python_give_identical_bytes(policy, seed, replicas, router, kv_blocks, extra, fast_forward,
                                                       n):
    if policy == "disaggregated":
        extra = "" if extra == "prefix" else extra
    sc = scenario(policy, n=n, seed=seed, replicas=replicas, router=router, kv_blocks=kv_blocks, layers=4,
                  prefix_caching=extra == "prefix", speculative=extra == "speculative")
    sc["engine"] = {"fast_forward": fast_forward}
    assert [digest(llmsim.run(sc))] == pure_python_digests([sc])


DIGESTS = {m: f"{i:064x}" for i, m in enumerate(native.COMPILED_MODULES)}


def test_the_compiled_modules_run_only_while_they_match_their_sources():
    manifest = {"modules": dict(DIGESTS)}
    assert native.decide(manifest, DIGESTS, pure_requested=False, library_loads=True) is None
    edited = {**DIGESTS, "llmsim.engine.replica": "0" * 63 + "f"}
    why = native.decide(manifest, edited, pure_requested=False, library_loads=True)
    assert why is not None and "llmsim.engine.replica" in why and "pip install -e ." in why
    missing = {m: d for m, d in DIGESTS.items() if m != "llmsim.engine.state"}
    assert "llmsim.engine.state" in native.decide(manifest, missing, pure_requested=False, library_loads=True)
    older = {"modules": {m: d for m, d in DIGESTS.items() if m != "llmsim.costmodel.scalar"}}  # a module added since
    assert "llmsim.costmodel.scalar" in native.decide(older, DIGESTS, pure_requested=False, library_loads=True)
    assert native.decide(None, DIGESTS, pure_requested=False, library_loads=False) == "not compiled"
    assert "LLMSIM_PURE_PYTHON" in native.decide(manifest, DIGESTS, pure_requested=True, library_loads=True)
    assert "does not load" in native.decide(manifest, DIGESTS, pure_requested=False, library_loads=False)


def test_every_compiled_module_has_a_source_and_the_run_says_which_build_ran():
    for module in native.COMPILED_MODULES:
        assert native.source_path(module).is_file(), module
    info = llmsim.run("quickstart", ["workload.num_requests=5"]).run_info
    assert info["build"] == native.BUILD


def test_pure_python_is_forced_by_the_environment_variable():
    code = "import llmsim, llmsim.native as n, llmsim.engine.replica as r; print(n.BUILD); print(r.__file__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "LLMSIM_PURE_PYTHON": "1"}).stdout.splitlines()
    assert out[0] == "pure Python (LLMSIM_PURE_PYTHON is set)"
    assert out[1].endswith("replica.py")


def test_compiled_classes_subclass_only_classes_compiled_with_them():
    """A mypyc class deriving from an interpreted one (simpy.Environment) corrupted its instances' dicts."""
    import ast
    compiled_classes = set()
    bases = {}
    for module in native.COMPILED_MODULES:
        for node in ast.walk(ast.parse(native.source_path(module).read_text())):
            if isinstance(node, ast.ClassDef):
                compiled_classes.add(node.name)
                bases[f"{module}.{node.name}"] = [ast.unparse(b) for b in node.bases]
    foreign = {cls: [b for b in bs if b.split(".")[-1] not in compiled_classes] for cls, bs in bases.items()}
    assert not {cls: bs for cls, bs in foreign.items() if bs}


@pytest.mark.parametrize("first", native.COMPILED_MODULES)
def test_a_run_works_whichever_compiled_module_is_imported_first(first):
    """The crash above depended on import order: import each compiled module first in a fresh interpreter."""
    code = (f"import {first}, llmsim; r = llmsim.run('quickstart', ['workload.num_requests=20']); "
            "print(len(r.requests))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == "20"


def test_an_extension_left_by_an_older_build_is_ignored(tmp_path):
    """A module dropped from COMPILED_MODULES may keep its old extension beside it (an editable install does not
    delete it); llmsim then loads its source, as the leftover would import a library without it."""
    import importlib.machinery
    source = tmp_path / "events.py"
    source.write_text("")
    assert not native._leftover_extension(source)
    source.with_suffix(importlib.machinery.EXTENSION_SUFFIXES[0]).write_bytes(b"")
    assert native._leftover_extension(source)
    finder = native._SourceFinder(frozenset({"llmsim.engine.replica"}))
    assert finder.find_spec("llmsim.engine.replica").origin.endswith("replica.py")
    assert finder.find_spec("numpy") is None and finder.find_spec("llmsim.engine") is None
