"""``WorkloadSpec``: the ``workload:`` section of a scenario, parsed, validated and generated.

Two modes (see ``workloads/README.md`` for examples):

* **replay** -- ``trace: FILE`` with optional ``format``, ``limit``, ``window_s``, ``rate_scale``,
  ``clip_prompt``, ``clip_output`` (see :func:`llmsim.workload.load_trace`). ``arrival: {rate: R}``
  instead of ``rate_scale`` rescales the (windowed, limited) trace to a mean rate of R requests/s,
  the mean rate being (n - 1) / (last arrival - first arrival).
* **synthetic** -- ``arrival`` (see :mod:`~llmsim.workload.arrivals`), lengths from
  ``prompt_tokens`` + ``output_tokens`` (see :mod:`~llmsim.workload.lengths`) or, jointly per request,
  from ``lengths_file`` (any trace or length-statistics file; ``format`` applies to it), and
  ``num_requests`` or ``duration_s``; optionally ``shared_prefix`` and ``multi_turn`` (see
  :mod:`~llmsim.workload.conversations`) and ``clip_prompt`` / ``clip_output``.

With ``multi_turn`` the arrival process gives conversation starts, so the request rate is about
``rate * turns``; ``num_requests`` counts requests (the earliest N are kept) and ``duration_s`` bounds
conversation starts (later turns may arrive after it). ``clip_output`` applies before the history is
built, ``clip_prompt`` after (it caps the resent context). ``seed`` is stored for the caller, which
derives the ``rng`` passed to :meth:`WorkloadSpec.generate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmsim.errors import InputError
from llmsim.workload import _keys
from llmsim.workload.arrivals import MAX_REQUESTS, ArrivalSpec
from llmsim.workload.conversations import (MultiTurnSpec, SharedPrefixSpec, block_hashes,
                                           build_conversations)
from llmsim.workload.formats import TRACE_FORMATS
from llmsim.workload.lengths import FileLength, length_dist_from_dict
from llmsim.workload.loader import (apply_options, check_options, load_lengths, load_trace,
                                    rescale_to_rate)
from llmsim.workload.trace import Trace

REPLAY_ONLY = ("trace", "limit", "window_s", "rate_scale")
SYNTHETIC_ONLY = ("prompt_tokens", "output_tokens", "lengths_file", "num_requests", "duration_s",
                  "shared_prefix", "multi_turn")
COMMON = ("arrival", "format", "clip_prompt", "clip_output", "seed")
ALL_KEYS = (*REPLAY_ONLY, *SYNTHETIC_ONLY, *COMMON)


@dataclass(frozen=True)
class WorkloadSpec:
    """A validated ``workload:`` section; :meth:`generate` turns it into a :class:`Trace`.

    Exactly one of ``trace`` (replay) and ``arrival`` + lengths (synthetic) drives generation;
    ``source`` is the scenario file, for messages. Field meanings follow the YAML keys.
    """

    trace: Path | None = None
    format: str = "auto"
    limit: int | None = None
    window_s: tuple[float, float] | None = None
    rate_scale: float | None = None
    clip_prompt: int | None = None
    clip_output: int | None = None
    arrival: ArrivalSpec | None = None
    prompt_tokens: object | None = None
    output_tokens: object | None = None
    lengths_file: Path | None = None
    num_requests: int | None = None
    duration_s: float | None = None
    shared_prefix: SharedPrefixSpec | None = None
    multi_turn: MultiTurnSpec | None = None
    seed: int | None = None
    source: str | None = None
    where: str = "workload"

    @classmethod
    def from_dict(cls, d: dict, *, source: object = None, base_dir: Path | None = None,
                  where: str = "workload") -> "WorkloadSpec":
        """Parse and validate a ``workload:`` mapping; relative paths resolve against ``base_dir``.

        Raises:
            InputError: naming the key path (``workload.arrival.rate``) of the first problem.
        """
        d = _keys.mapping(d, where, source)
        _keys.check_keys(d, ALL_KEYS, where, source)
        fields = {"source": None if source is None else str(source), "where": where}
        fields.update(_common_fields(d, where, source))
        if "trace" in d:
            fields.update(_replay_fields(d, where, source, base_dir))
        else:
            fields.update(_synthetic_fields(d, where, source, base_dir))
        return cls(**fields)

    def generate(self, rng: np.random.Generator) -> Trace:
        """The requests of this workload; deterministic given ``rng``'s state (its only randomness).

        Replay draws nothing from ``rng``. Raises InputError for problems found in files.
        """
        if self.trace is not None:
            return self._replay()
        return self._synthesize(rng)

    def _replay(self) -> Trace:
        """Load the trace with the replay options, then apply an ``arrival.rate`` override."""
        trace = load_trace(self.trace, self.format, limit=self.limit, window_s=self.window_s,
                           rate_scale=self.rate_scale, clip_prompt=self.clip_prompt,
                           clip_output=self.clip_output)
        if self.arrival is not None:
            trace = rescale_to_rate(trace, self.arrival.rate_per_s, source=self.source,
                                    where=f"{self.where}.arrival.rate")
        return trace

    def _starts(self, rng: np.random.Generator, turns: int) -> np.ndarray:
        """Arrival times (s) of the first turns of all conversations."""
        if self.num_requests is not None:
            return self.arrival.times_for_count(rng, math.ceil(self.num_requests / turns))
        return self.arrival.times_until(rng, self.duration_s)

    def _lengths(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` (user prompt, output) token pairs: joint rows when both come from one file."""
        p, o = self.prompt_tokens, self.output_tokens
        if self.lengths_file is not None:
            prompt, output = load_lengths(self.lengths_file, self.format)
            rows = rng.integers(0, len(prompt), size=n)
            return prompt[rows], output[rows]
        if (isinstance(p, FileLength) and isinstance(o, FileLength)
                and (p.path, p.format) == (o.path, o.format)):
            prompt, output = load_lengths(p.path, p.format)
            rows = rng.integers(0, len(prompt), size=n)
            return p.pick(prompt, output, rows), o.pick(prompt, output, rows)
        return p.sample(rng, n), o.sample(rng, n)

    def _synthesize(self, rng: np.random.Generator) -> Trace:
        """Draw, in order: conversation starts, lengths, think times, system prompt choices."""
        multi = self.multi_turn
        turns = multi.turns if multi else 1
        starts = self._starts(rng, turns)
        user, output = self._lengths(rng, len(starts) * turns)
        if self.clip_output is not None:
            output = np.minimum(output, self.clip_output)
        conv = build_conversations(rng, starts, user, output, turns,
                                   multi.think_time_s if multi else 0.0, self.shared_prefix)
        order = np.argsort(conv.arrival_s, kind="stable")[:self.num_requests]
        hashes, block = None, self._block_tokens()
        if block is not None:
            hashes = block_hashes(conv.prompt_tokens[order], conv.conversation[order],
                                  conv.prefix_choice[order], self.shared_prefix, block)
        trace = Trace(conv.arrival_s[order], conv.prompt_tokens[order], conv.output_tokens[order],
                      hashes, block, "synthetic")
        return apply_options(trace, clip_prompt=self.clip_prompt)

    def _block_tokens(self) -> int | None:
        """Hash block size when prefixes are shared (system prompts or history), else None."""
        if self.shared_prefix is not None:
            return self.shared_prefix.block_tokens
        if self.multi_turn is not None and self.multi_turn.turns > 1:
            return self.multi_turn.block_tokens or 16
        return None


def _common_fields(d: dict, where: str, source: object) -> dict:
    """``format``, ``clip_prompt``, ``clip_output`` and ``seed``, checked."""
    out = check_options(where=where, source=source, clip_prompt=d.get("clip_prompt"),
                        clip_output=d.get("clip_output"))
    out["format"] = _keys.choice(d.get("format", "auto"), [*TRACE_FORMATS, "auto"],
                                 "trace format", f"{where}.format", source)
    out["seed"] = _keys.optional_number(d, "seed", where, source, integer=True, minimum=0)
    if "format" in d and "trace" not in d and "lengths_file" not in d:
        raise InputError("format applies only to trace or lengths_file", source=source,
                         where=f"{where}.format")
    return out


def _reject(d: dict, keys: tuple[str, ...], why: str, where: str, source: object) -> None:
    """InputError for the first of ``keys`` present in ``d``."""
    for key in keys:
        if key in d:
            raise InputError(f"{key} {why}", source=source, where=f"{where}.{key}")


def _replay_fields(d: dict, where: str, source: object, base_dir: Path | None) -> dict:
    """The fields of a replay workload (``trace:`` given)."""
    _reject(d, SYNTHETIC_ONLY, "cannot be combined with trace (a trace fixes lengths and arrival "
            "times; use limit, window_s, rate_scale, clip_prompt, clip_output)", where, source)
    out = check_options(where=where, source=source, limit=d.get("limit"),
                        window_s=d.get("window_s"), rate_scale=d.get("rate_scale"))
    out["trace"] = _keys.file_path(d["trace"], f"{where}.trace", source, base_dir)
    if d.get("format") == "lengths":
        raise InputError("a length-statistics file has no arrival times: use lengths_file with "
                         "arrival instead of trace", source=source, where=f"{where}.format")
    if "arrival" in d:
        arrival = _keys.mapping(d["arrival"], f"{where}.arrival", source)
        _keys.check_keys(arrival, ("rate",), f"{where}.arrival", source)
        _reject(d, ("rate_scale",), "cannot be combined with arrival.rate (both set the rate)",
                where, source)
        rate = _keys.number(_keys.required(arrival, "rate", f"{where}.arrival", source),
                            f"{where}.arrival.rate", source, positive=True)
        out["arrival"] = ArrivalSpec("poisson", rate)
    return out


def _synthetic_lengths(d: dict, where: str, source: object, base_dir: Path | None) -> dict:
    """``lengths_file`` or both ``prompt_tokens`` and ``output_tokens``."""
    if "lengths_file" in d:
        _reject(d, ("prompt_tokens", "output_tokens"), "cannot be combined with lengths_file "
                "(which gives both lengths)", where, source)
        return {"lengths_file": _keys.file_path(d["lengths_file"], f"{where}.lengths_file",
                                                source, base_dir)}
    hint = " (or lengths_file) for a synthetic workload"
    return {role: length_dist_from_dict(_keys.required(d, role, where, source, hint),
                                        f"{where}.{role}", source, role=role.split("_")[0],
                                        base_dir=base_dir)
            for role in ("prompt_tokens", "output_tokens")}


def _synthetic_fields(d: dict, where: str, source: object, base_dir: Path | None) -> dict:
    """The fields of a synthetic workload (no ``trace:``)."""
    _reject(d, REPLAY_ONLY[1:], "applies only to a trace (give trace: FILE)", where, source)
    arrival = _keys.required(d, "arrival", where, source,
                             " (give trace: FILE to replay, or arrival: plus lengths)")
    out = {"arrival": ArrivalSpec.from_dict(arrival, f"{where}.arrival", source)}
    out.update(_synthetic_lengths(d, where, source, base_dir))
    if "shared_prefix" in d:
        out["shared_prefix"] = SharedPrefixSpec.from_dict(d["shared_prefix"],
                                                          f"{where}.shared_prefix", source)
    if "multi_turn" in d:
        out["multi_turn"] = MultiTurnSpec.from_dict(d["multi_turn"], f"{where}.multi_turn", source)
    out.update(_request_count(d, out, where, source))
    return out


def _request_count(d: dict, fields: dict, where: str, source: object) -> dict:
    """``num_requests`` or ``duration_s`` (exactly one), within :data:`MAX_REQUESTS`."""
    if "num_requests" in d and "duration_s" in d:
        raise InputError("give exactly one of num_requests and duration_s", source=source,
                         where=f"{where}.num_requests")
    if "duration_s" not in d:
        _keys.required(d, "num_requests", where, source, " (or duration_s)")
    if "num_requests" in d:
        n = _keys.number(d["num_requests"], f"{where}.num_requests", source, integer=True,
                         minimum=1)
        if n > MAX_REQUESTS:
            raise InputError(f"expected at most {MAX_REQUESTS:,} requests", source=source,
                             where=f"{where}.num_requests", value=n)
        return {"num_requests": n}
    duration = _keys.number(d["duration_s"], f"{where}.duration_s", source, positive=True)
    arrival, multi = fields["arrival"], fields.get("multi_turn")
    if arrival.process == "burst":
        raise InputError("a burst puts every request at t = 0: give num_requests, not duration_s",
                         source=source, where=f"{where}.duration_s")
    expected = arrival.rate_per_s * duration * (multi.turns if multi else 1)
    if expected > MAX_REQUESTS:
        raise InputError(f"rate x duration_s would give about {expected:.3g} requests, more than "
                         f"{MAX_REQUESTS:,}", source=source, where=f"{where}.duration_s",
                         value=duration)
    return {"duration_s": duration}
