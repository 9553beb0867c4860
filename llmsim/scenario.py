"""Scenarios: the YAML a user writes, validated and resolved into the objects a run needs.

``load_scenario(path_or_dict, overrides=["scheduler.max_num_seqs=64", ...])`` returns a :class:`Scenario`.
Every key is checked (unknown keys get a did-you-mean), every value is checked against what is expected,
and every error names the file and key path. ``Scenario.resolved`` is the full mapping after defaults and
overrides, written to each run directory so a result can be rerun exactly.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import yaml

from llmsim.costmodel.efficiency import DATASHEET, DEFAULT, CalibrationProfile, load_calibration
from llmsim.costmodel.engine import EngineProfile, builtin_engine_dir, load_engine
from llmsim.costmodel.memory import plan_memory
from llmsim.costmodel.operators import Precision
from llmsim.engine.speculative import SpeculativeConfig
from llmsim.errors import InputError, did_you_mean
from llmsim.metrics import Slo
from llmsim.specs._yaml import is_file, parse_yaml_mapping, read_yaml_mapping
from llmsim.specs.hardware import GpuSpec, load_hardware, resolve_hardware_path
from llmsim.specs.model import BUILTIN_MODELS, ModelSpec, load_model
from llmsim.specs.parallelism import Parallelism
from llmsim.workload import WorkloadSpec

POLICIES = ("static", "continuous", "chunked", "disaggregated")
ROUTER_NAMES = ("round_robin", "least_outstanding", "least_kv", "prefix_affinity")
CALIBRATION_KEYWORDS = ("auto", "default", "datasheet")
#: Most replicas (or disaggregated instances of one role) a scenario may ask for: far beyond any real
#: deployment, low enough that a typo (replicas: 1e9) is an error rather than a run that never ends.
MAX_INSTANCES = 10_000
#: Upper bound on the scheduler's token and sequence counts (2**40): beyond any GPU, low enough that memory
#: sizes computed from them stay finite floats.
MAX_COUNT = 2**40

#: Every key a scenario may hold, with its default (None = required or optional without default).
DEFAULTS: dict[str, Any] = {
    "name": "scenario",
    "description": "",
    "model": None,
    "model_overrides": {},
    "hardware": None,
    "parallelism": {"tp": 1, "pp": 1},
    "precision": {"weights": "bf16", "kv": "bf16"},
    "replicas": 1,
    "router": "round_robin",
    "scheduler": {"policy": "continuous", "max_num_seqs": 256, "max_batched_tokens": 8192, "chunk_size": 512,
                  "block_size": 16, "gpu_memory_utilization": 0.9, "prefix_caching": False,
                  "num_kv_blocks": None},
    "workload": None,
    "slo": {"ttft_s": None, "tpot_s": None, "percentile": 99},
    "engine": {"profile": "cuda-graphs", "calibration": "auto", "fast_forward": True},
    "disaggregated": {"prefill": {"instances": 1, "hardware": None, "tp": None, "max_batched_tokens": None},
                      "decode": {"instances": 1, "hardware": None, "tp": None, "max_num_seqs": None},
                      "link": {"kind": "infiniband", "bandwidth_bytes_per_s": 50e9, "latency_s": 5e-6},
                      "stream_layers": False},
    "speculative": None,
}


@dataclass(frozen=True)
class PoolConfig:
    """A group of identical instances (a disaggregated prefill or decode pool, or the replicas)."""

    instances: int
    gpu: GpuSpec
    parallelism: Parallelism
    max_batched_tokens: int
    max_num_seqs: int


@dataclass(frozen=True)
class LinkConfig:
    """The KV-transfer link between prefill and decode instances (bytes/s per direction, seconds per transfer)."""

    kind: str
    bandwidth_bytes_per_s: float
    latency_s: float


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: the resolved mapping plus the objects built from it."""

    resolved: dict[str, Any]
    source: str
    model: ModelSpec
    gpu: GpuSpec
    parallelism: Parallelism
    precision: Precision
    workload: WorkloadSpec
    slo: Slo
    engine: EngineProfile
    calibration: CalibrationProfile
    calibration_source: str
    seed: int
    base_dir: Path | None = None
    disaggregated: dict[str, Any] | None = field(default=None)
    speculative: SpeculativeConfig | None = None

    @property
    def name(self) -> str:
        """The scenario's name."""
        return str(self.resolved["name"])

    @property
    def scheduler(self) -> dict[str, Any]:
        """The resolved ``scheduler:`` section."""
        return self.resolved["scheduler"]

    def rngs(self, n: int) -> list[np.random.Generator]:
        """``n`` independent random streams derived from the seed (stream 0 is the workload's)."""
        return [np.random.default_rng(s) for s in np.random.SeedSequence(self.seed).spawn(n)]


def builtin_scenario_dir() -> Path:
    """Folder of the scenarios shipped with llmsim."""
    return Path(str(resources.files("llmsim.scenarios")))


def load_scenario(spec: str | Path | Mapping[str, Any], overrides: Sequence[str] = ()) -> Scenario:
    """Read (a path, a built-in scenario name, or a mapping), apply ``--set`` overrides, validate, build.

    Unlike :func:`build_scenario` (which sweeps use, where a point that does not fit is a result), a model
    that leaves no room for a KV cache is an :class:`InputError` here, before anything runs.
    """
    if isinstance(spec, Mapping):
        data, source, base_dir = copy.deepcopy(dict(spec)), "<scenario>", None
    else:
        path = _scenario_path(spec)
        data, source, base_dir = read_yaml_mapping(path), str(path), path.parent
    for item in overrides:
        apply_override(data, item)
    scenario = build_scenario(data, source=source, base_dir=base_dir)
    check_memory(scenario)
    return scenario


def _scenario_path(spec: str | Path) -> Path:
    path = Path(spec)
    if is_file(path):
        return path
    builtin = builtin_scenario_dir() / f"{spec}.yaml"
    if is_file(builtin):
        return builtin
    names = sorted(p.stem for p in builtin_scenario_dir().glob("*.yaml"))
    raise InputError(f"scenario file not found (built-in scenarios: {', '.join(names)})"
                     f"{did_you_mean(str(spec), names)}", source=spec)


def apply_override(data: dict[str, Any], item: str) -> None:
    """Apply one ``key.path=value`` override (the value is parsed as YAML) to ``data`` in place."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise InputError("expected key.path=value, e.g. scheduler.max_num_seqs=64", source="--set", value=item)
    if "\n" in text or "\r" in text:
        raise InputError("expected a one-line value", source="--set", where=key.strip(), value=text)
    value = parse_yaml_mapping(f"v: {text}", source=f"--set {item}")["v"] if text.strip() else None
    try:
        set_path(data, key.strip(), value)
    except InputError as exc:
        raise InputError(exc.message, source="--set", value=item) from None


def set_path(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``data[a][b][c] = value`` for ``key = "a.b.c"`` in place, creating missing mappings.

    Raises:
        InputError: when a prefix of ``key`` holds something other than a mapping.
    """
    parts = key.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise InputError(f"'{'.'.join(parts[:i + 1])}' is not a mapping, so '{key}' cannot be set",
                             where=key, value=child)
        node = child
    node[parts[-1]] = copy.deepcopy(value)


def _merge_defaults(data: dict[str, Any], defaults: dict[str, Any], where: str, source: str) -> dict[str, Any]:
    """``data`` over ``defaults``, recursively for mapping defaults; unknown keys are errors."""
    for key in data:
        if key not in defaults:
            raise InputError(f"unknown key{did_you_mean(key, defaults)}; expected one of {', '.join(defaults)}",
                             source=source, where=f"{where}{key}")
    out: dict[str, Any] = {}
    for key, default in defaults.items():
        value = data.get(key, copy.deepcopy(default))
        if isinstance(default, dict) and default and key not in ("model_overrides",):
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise InputError("expected a mapping", source=source, where=f"{where}{key}", value=value)
            value = _merge_defaults(value, default, f"{where}{key}.", source)
        out[key] = value
    return out


def _int(value: Any, where: str, source: str, *, minimum: int = 1, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"expected an integer >= {minimum}", source=source, where=where, value=value)
    if maximum is not None and value > maximum:
        raise InputError(f"expected an integer from {minimum} to {maximum:,}", source=source, where=where,
                         value=value)
    return value


def _num(value: Any, where: str, source: str, *, positive: bool = True) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float))
    if ok:
        try:
            ok = math.isfinite(value) and (value > 0 if positive else value >= 0)
        except OverflowError:  # an int too large for a float
            ok = False
    if not ok:
        raise InputError("expected a positive number" if positive else "expected a number >= 0", source=source,
                         where=where, value=value)
    return float(value)


def _text(value: Any, where: str, source: str, expected: str) -> str:
    """``value`` when it is a non-empty string; else an :class:`InputError` saying what was ``expected``."""
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"expected {expected}", source=source, where=where, value=value)
    return value


def _name(value: Any, source: str) -> str:
    """The scenario's name: also the default output folder runs/NAME, so one plain path component."""
    name = _text(value, "name", source, "a name (text)")
    if any(c in name for c in "/\\\0") or name.strip() in (".", ".."):
        raise InputError("expected a name without '/', '\\' or NUL that is not '.' or '..' (it names the output "
                         "folder runs/NAME)", source=source, where="name", value=name)
    return name


def build_scenario(data: dict[str, Any], *, source: str, base_dir: Path | None) -> Scenario:
    """Validate a scenario mapping and build its objects (see module docstring)."""
    r = _merge_defaults(data, DEFAULTS, "", source)
    for key in ("model", "hardware", "workload"):
        if r[key] is None:
            raise InputError("required key missing", source=source, where=key)
    _name(r["name"], source)
    if r["description"] is not None and not isinstance(r["description"], str):
        raise InputError("expected text", source=source, where="description", value=r["description"])
    _text(r["model"], "model", source, "a built-in model name, a HuggingFace config.json or a model YAML")
    _text(r["hardware"], "hardware", source, "a built-in GPU name or a hardware YAML")
    model = _model(r, source, base_dir)
    gpu = _hardware(r["hardware"], "hardware", source, base_dir)
    par = Parallelism(_int(r["parallelism"]["tp"], "parallelism.tp", source),
                      _int(r["parallelism"]["pp"], "parallelism.pp", source))
    _check_located(lambda: par.check_model(model), source)
    precision = _precision(r["precision"], source)
    _scheduler(r["scheduler"], source)
    _int(r["replicas"], "replicas", source, maximum=MAX_INSTANCES)
    if r["router"] not in ROUTER_NAMES:
        raise InputError(f"unknown router{did_you_mean(str(r['router']), ROUTER_NAMES)}; expected one of "
                         f"{', '.join(ROUTER_NAMES)}", source=source, where="router", value=r["router"])
    slo = _slo(r["slo"], source)
    engine_cfg = r["engine"]
    if not isinstance(engine_cfg["fast_forward"], bool):
        raise InputError("expected true or false", source=source, where="engine.fast_forward",
                         value=engine_cfg["fast_forward"])
    _text(engine_cfg["profile"], "engine.profile", source, "an engine profile name or a profile YAML")
    engine = _check_located(lambda: load_engine(engine_cfg["profile"], base_dir=base_dir), source,
                            "engine.profile")
    _text(engine_cfg["calibration"], "engine.calibration", source,
          f"{', '.join(CALIBRATION_KEYWORDS)} or a calibration YAML")
    calibration, cal_source = resolve_calibration(engine_cfg["calibration"], r["hardware"], base_dir, source)
    if not isinstance(r["workload"], dict):
        raise InputError("expected a mapping", source=source, where="workload", value=r["workload"])
    workload = WorkloadSpec.from_dict(r["workload"], source=source, base_dir=base_dir)
    seed = r["workload"].get("seed", 0)
    seed = 0 if seed is None else _int(seed, "workload.seed", source, minimum=0)
    disagg = _disaggregated(r, model, gpu, par, source, base_dir) if r["scheduler"]["policy"] == "disaggregated" \
        else None
    speculative = None if r["speculative"] is None else \
        SpeculativeConfig.from_dict(r["speculative"], source=source, base_dir=base_dir)
    return Scenario(resolved=r, source=source, model=model, gpu=gpu, parallelism=par, precision=precision,
                    workload=workload, slo=slo, engine=engine, calibration=calibration,
                    calibration_source=cal_source, seed=seed, base_dir=base_dir, disaggregated=disagg,
                    speculative=speculative)


def _check_located(fn, source: str, where: str | None = None):
    try:
        return fn()
    except InputError as exc:
        raise exc.located(source=source, where_prefix=where if exc.where is None else None) from None


def _model(r: dict[str, Any], source: str, base_dir: Path | None) -> ModelSpec:
    overrides = {} if r["model_overrides"] is None else r["model_overrides"]
    if not isinstance(overrides, dict):
        raise InputError("expected a mapping of model fields", source=source, where="model_overrides", value=overrides)
    try:
        return load_model(str(r["model"]), overrides, base_dir=base_dir)
    except InputError as exc:
        where = f"model_overrides.{exc.where}" if exc.where and exc.source is None else "model"
        raise InputError(exc.message, source=exc.source or source, where=exc.where if exc.source else where,
                         value=exc.value) from None


def _hardware(name: Any, where: str, source: str, base_dir: Path | None) -> GpuSpec:
    try:
        return load_hardware(str(name), base_dir=base_dir)
    except InputError as exc:
        if exc.source is None:
            raise exc.located(source=source, where_prefix=where) from None
        raise


def _precision(p: dict[str, Any], source: str) -> Precision:
    allowed = {"weights": ("bf16", "fp16", "fp8", "int8", "int4"), "kv": ("bf16", "fp16", "fp8", "int8")}
    for key, options in allowed.items():
        if p[key] not in options:
            raise InputError(f"expected one of {', '.join(options)}", source=source, where=f"precision.{key}",
                             value=p[key])
    return Precision(weights=p["weights"], kv=p["kv"])


def _scheduler(s: dict[str, Any], source: str) -> None:
    if s["policy"] not in POLICIES:
        raise InputError(f"unknown policy{did_you_mean(str(s['policy']), POLICIES)}; expected one of "
                         f"{', '.join(POLICIES)}", source=source, where="scheduler.policy", value=s["policy"])
    for key in ("max_num_seqs", "max_batched_tokens", "chunk_size", "block_size"):
        _int(s[key], f"scheduler.{key}", source, maximum=MAX_COUNT)
    util = s["gpu_memory_utilization"]
    if isinstance(util, bool) or not isinstance(util, (int, float)) or not 0 < util <= 1:
        raise InputError("expected a fraction in (0, 1]", source=source, where="scheduler.gpu_memory_utilization",
                         value=util)
    if s["num_kv_blocks"] is not None:
        _int(s["num_kv_blocks"], "scheduler.num_kv_blocks", source, maximum=MAX_COUNT)
    if not isinstance(s["prefix_caching"], bool):
        raise InputError("expected true or false", source=source, where="scheduler.prefix_caching",
                         value=s["prefix_caching"])


def _slo(s: dict[str, Any], source: str) -> Slo:
    for key in ("ttft_s", "tpot_s"):
        if s[key] is not None:
            _num(s[key], f"slo.{key}", source)
    p = _num(s["percentile"], "slo.percentile", source)
    if p > 100:
        raise InputError("expected a percentile in (0, 100]", source=source, where="slo.percentile", value=p)
    return Slo(s["ttft_s"], s["tpot_s"], p)


def resolve_calibration(spec: Any, hardware: Any, base_dir: Path | None, source: str) -> tuple[CalibrationProfile, str]:
    """``auto`` (the profile beside the hardware YAML, else defaults), ``default``, ``datasheet`` or a path.

    ``source`` is the scenario file (errors then name the key ``engine.calibration``) or a flag such as
    ``--calibration``.
    """
    text = str(spec)
    if text == "datasheet":
        return DATASHEET, "datasheet"
    if text == "default":
        return DEFAULT, "default"
    if text == "auto":
        hw_path = resolve_hardware_path(str(hardware), base_dir=base_dir)
        beside = hw_path.with_name(f"{hw_path.stem}.calibration.yaml")
        return (load_calibration(beside), str(beside)) if is_file(beside) else (DEFAULT, "default")
    path = Path(text) if base_dir is None or Path(text).is_absolute() else base_dir / text
    if not is_file(path):
        raise InputError(f"calibration file not found: {path} (expected auto, default, datasheet or a path)",
                         source=source, where=None if str(source).startswith("--") else "engine.calibration",
                         value=text)
    return load_calibration(path), str(path)


def _disaggregated(r: dict[str, Any], model: ModelSpec, gpu: GpuSpec, par: Parallelism, source: str,
                   base_dir: Path | None) -> dict[str, Any]:
    d, sched = r["disaggregated"], r["scheduler"]
    pools = {}
    for role, limit_key in (("prefill", "max_batched_tokens"), ("decode", "max_num_seqs")):
        cfg = d[role]
        n = _int(cfg["instances"], f"disaggregated.{role}.instances", source, maximum=MAX_INSTANCES)
        if cfg["hardware"] is not None:
            _text(cfg["hardware"], f"disaggregated.{role}.hardware", source, "a built-in GPU name or a hardware YAML")
        hw = _hardware(cfg["hardware"], f"disaggregated.{role}.hardware", source, base_dir) \
            if cfg["hardware"] is not None else gpu
        tp = par.tp if cfg["tp"] is None else _int(cfg["tp"], f"disaggregated.{role}.tp", source)
        p = Parallelism(tp, par.pp)
        _check_located(lambda: p.check_model(model), source)
        limit = sched[limit_key] if cfg[limit_key] is None else \
            _int(cfg[limit_key], f"disaggregated.{role}.{limit_key}", source, maximum=MAX_COUNT)
        pools[role] = PoolConfig(n, hw, p, limit if role == "prefill" else sched["max_batched_tokens"],
                                 limit if role == "decode" else sched["max_num_seqs"])
    link = d["link"]
    _text(link["kind"], "disaggregated.link.kind", source, "a link name such as infiniband")
    for key in ("bandwidth_bytes_per_s", "latency_s"):
        _num(link[key], f"disaggregated.link.{key}", source, positive=(key == "bandwidth_bytes_per_s"))
    if not isinstance(d["stream_layers"], bool):
        raise InputError("expected true or false", source=source, where="disaggregated.stream_layers",
                         value=d["stream_layers"])
    return {"prefill": pools["prefill"], "decode": pools["decode"],
            "link": LinkConfig(str(link["kind"]), float(link["bandwidth_bytes_per_s"]), float(link["latency_s"])),
            "stream_layers": d["stream_layers"]}


def check_memory(sc: Scenario) -> None:
    """InputError (with the numbers, naming the file) when the weights leave no room for a KV cache.

    Sizes memory as the run does (``llmsim.api``): the activation budget is ``chunk_size`` under the chunked
    policy, else the pool's ``max_batched_tokens``.
    """
    s = sc.scheduler
    if sc.disaggregated is None:
        budget = s["chunk_size"] if s["policy"] == "chunked" else s["max_batched_tokens"]
        pools = [("parallelism", sc.gpu, sc.parallelism, budget, s["max_num_seqs"])]
    else:
        pools = [(f"disaggregated.{role}", pool.gpu, pool.parallelism, pool.max_batched_tokens, pool.max_num_seqs)
                 for role, pool in ((r, sc.disaggregated[r]) for r in ("prefill", "decode"))]
    for where, gpu, par, budget, seqs in pools:
        try:
            plan_memory(sc.model, gpu, par, sc.precision, gpu_memory_utilization=s["gpu_memory_utilization"],
                        block_size=s["block_size"], max_batched_tokens=budget, max_num_seqs=seqs)
        except InputError as exc:
            raise InputError(exc.message, source=sc.source, where=where) from None


def dump_resolved(scenario: Scenario) -> str:
    """The resolved scenario as YAML (defaults and overrides applied, the seed written out).

    Relative file paths are written absolute, so the file reruns the same scenario from any folder
    (a run folder included).
    """
    out = _absolute_paths(scenario.resolved, scenario.base_dir)
    if isinstance(out.get("workload"), dict):
        out["workload"]["seed"] = scenario.seed
    return yaml.safe_dump(_plain(out), sort_keys=False, width=120)


def _absolute_paths(resolved: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    """A copy of ``resolved`` whose file paths (model, draft model, hardware, engine profile, calibration,
    trace and length files) are absolute, resolved as the loaders resolve them (against ``base_dir``, else the
    working directory). Built-in names are kept."""
    out = copy.deepcopy(resolved)
    base = Path.cwd() if base_dir is None else Path(base_dir)

    def fix(node: Any, key: str, is_path) -> None:
        value = node.get(key) if isinstance(node, dict) else None
        if isinstance(value, str) and is_path(value) and not Path(value).expanduser().is_absolute():
            node[key] = str((base / Path(value).expanduser()).resolve())

    def hardware_path(v: str) -> bool:
        return "/" in v or v.endswith((".yaml", ".yml"))
    fix(out, "model", lambda v: v not in BUILTIN_MODELS)
    fix(out.get("speculative"), "draft_model", lambda v: v not in BUILTIN_MODELS)
    fix(out, "hardware", hardware_path)
    engine = out.get("engine") or {}
    fix(engine, "profile", lambda v: v != "cuda-graphs" and not is_file(builtin_engine_dir() / f"{v}.yaml"))
    fix(engine, "calibration", lambda v: v not in CALIBRATION_KEYWORDS)
    for role in ("prefill", "decode"):
        fix((out.get("disaggregated") or {}).get(role), "hardware", hardware_path)
    workload = out.get("workload") or {}
    for key in ("trace", "lengths_file"):
        fix(workload, key, lambda v: True)
    for key in ("prompt_tokens", "output_tokens"):
        dist = workload.get(key)
        if isinstance(dist, dict) and dist.get("dist") == "file":
            fix(dist, "path", lambda v: True)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
