"""Fuzzing: random mutations of valid trace files give a valid Trace or an InputError, nothing else."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmsim.errors import InputError
from llmsim.workload import Trace, load_trace


def render_llmsim(rows) -> str:
    """An llmsim CSV of (arrival s, prompt, output) rows."""
    return "arrival_s,prompt_tokens,output_tokens\n" + "".join(
        f"{t:.6f},{p},{o}\n" for t, p, o in rows)


def render_azure(rows) -> str:
    """An Azure 2023 CSV with 7-digit fractional seconds."""
    out = ["TIMESTAMP,ContextTokens,GeneratedTokens\n"]
    for t, p, o in rows:
        whole, frac = divmod(t, 1.0)
        out.append(f"2023-11-16 18:{int(whole) // 60 % 60:02d}:{int(whole) % 60:02d}."
                   f"{int(frac * 1e7):07d},{p},{o}\n")
    return "".join(out)


def render_burstgpt(rows) -> str:
    """A BurstGPT CSV."""
    return "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n" + "".join(
        f"{t:.3f},ChatGPT,{p},{o},{p + o},Conversation log\n" for t, p, o in rows)


def render_vidur(rows) -> str:
    """A Vidur trace-replay CSV."""
    return "arrived_at,num_prefill_tokens,num_decode_tokens\n" + "".join(
        f"{t},{p},{o}\n" for t, p, o in rows)


def render_mooncake(rows) -> str:
    """Mooncake JSON lines (ms timestamps, 512-token hash blocks)."""
    return "".join(json.dumps({"timestamp": int(t * 1000), "input_length": p, "output_length": o,
                               "hash_ids": list(range(-(-p // 512)))}) + "\n"
                   for t, p, o in rows)


RENDERERS = {"llmsim": render_llmsim, "azure": render_azure, "burstgpt": render_burstgpt,
             "vidur": render_vidur, "mooncake": render_mooncake}

rows_strategy = st.lists(st.tuples(st.floats(0, 5), st.integers(1, 5000), st.integers(0, 500)),
                         min_size=1, max_size=12).map(
    lambda rows: [(t, p, o) for t, (_, p, o) in zip(np.cumsum([r[0] for r in rows]), rows)])
garbage = st.one_of(st.text(max_size=12), st.sampled_from(
    [",", ",,", "\n", "\r\n", '"', "{", "}", "[", "]", "-", "nan", "inf", "1e999", "\x00", "\ufeff",
     "99999999999999999999999", "true", "null", " ", ":", '"hash_ids": [1.5]', "\t"]))


@st.composite
def mutated_text(draw, text: str) -> str:
    """``text`` after 1-4 random mutations at random places."""
    for _ in range(draw(st.integers(1, 4))):
        lines = text.split("\n")
        i = draw(st.integers(0, max(len(lines) - 1, 0)))
        kind = draw(st.sampled_from(["insert", "truncate", "drop_field", "blank", "negate",
                                     "swap", "duplicate", "delete_line"]))
        if kind == "insert":
            pos = draw(st.integers(0, len(text)))
            text = text[:pos] + draw(garbage) + text[pos:]
        elif kind == "truncate":
            text = text[:draw(st.integers(0, len(text)))]
        elif kind == "drop_field":
            fields = lines[i].split(",")
            del fields[draw(st.integers(0, len(fields) - 1))]
            lines[i] = ",".join(fields)
            text = "\n".join(lines)
        elif kind == "blank":
            lines.insert(i, draw(st.sampled_from(["", " ", "\t"])))
            text = "\n".join(lines)
        elif kind == "negate":
            pos = draw(st.integers(0, len(text)))
            text = text[:pos] + "-" + text[pos:]
        elif kind in ("swap", "duplicate", "delete_line") and len(lines) > 1:
            j = draw(st.integers(0, len(lines) - 1))
            if kind == "swap":
                lines[i], lines[j] = lines[j], lines[i]
            elif kind == "duplicate":
                lines.insert(j, lines[i])
            else:
                del lines[i]
            text = "\n".join(lines)
    return text


def assert_valid(trace: Trace) -> None:
    """The Trace invariants a loader promises."""
    assert len(trace) >= 1 and trace.arrival_s[0] == 0.0
    assert np.all(np.diff(trace.arrival_s) >= 0) and np.all(np.isfinite(trace.arrival_s))
    assert trace.prompt_tokens.min() >= 1 and trace.output_tokens.min() >= 1
    if trace.prefix_block_hashes is not None:
        assert len(trace.prefix_block_hashes) == len(trace)


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(fmt=st.sampled_from(sorted(RENDERERS)), explicit=st.booleans(), data=st.data())
def test_mutated_files_load_or_raise_input_error(fmt, explicit, data):
    rows = data.draw(rows_strategy)
    text = data.draw(mutated_text(RENDERERS[fmt](rows)))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "trace.txt"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            trace = load_trace(path, fmt if explicit else "auto", limit=data.draw(
                st.one_of(st.none(), st.integers(1, 5))))
        except InputError as error:
            assert str(error)
        else:
            assert_valid(trace)


@settings(max_examples=100, deadline=None, database=None)
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_load_or_raise_input_error(data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "trace.csv"
        path.write_bytes(b"arrival_s,prompt_tokens,output_tokens\n" + data)
        try:
            assert_valid(load_trace(path))
        except InputError:
            pass
