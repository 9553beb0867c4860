"""Tests of microbench/reference_executor.py on the CPU (skipped where torch is not installed).

They run the real script end to end on a tiny model, and check the parts that must be right before a GPU
run is worth anything: the attention paths against an fp32 oracle (GQA, chunks after cached context,
decodes), the packing that the flash-varlen path relies on, and the KV-cache append / RoPE positions
(a prompt computed whole, in two chunks, or as a decode step gives the same logits).
"""

from __future__ import annotations

import csv
import importlib.util
import math
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

SCRIPT = Path(__file__).resolve().parents[2] / "microbench" / "reference_executor.py"
HEADER = ("kind,mode,model,layers,chunks,decodes,num_tokens,num_sampled,median_s,p10_s,p90_s,reps,note,"
          "gpu,driver,torch,date")


def _load():
    spec = importlib.util.spec_from_file_location("reference_executor", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


rx = _load()
CPU = torch.device("cpu")


def tiny_cfg(**changes):
    base = rx.dataclasses.replace(rx.MODELS["llama-3-8b"], name="tiny", layers=2, **rx.TINY_SHAPE)
    return rx.dataclasses.replace(base, **changes)


# ---------------------------------------------------------------- the script end to end

def _read_rows(path: Path) -> tuple[str, list[dict]]:
    text = path.read_text(encoding="utf-8")
    header = text.splitlines()[0]
    return header, list(csv.DictReader(text.splitlines()))


def _parse_chunks(text: str) -> list[tuple[int, int]]:
    out = []
    for item in filter(None, text.split(";")):
        new, at, prior = item.partition("@")
        assert at == "@", item
        out.append((int(new), int(prior)))
    return out


def _parse_decodes(text: str) -> list[tuple[int, int]]:
    out = []
    for item in filter(None, text.split(";")):
        b, x, l = item.partition("x")
        assert x == "x", item
        out.append((int(b), int(l)))
    return out


def test_quick_cpu_run_writes_consistent_csv(tmp_path, capsys):
    out = tmp_path / "sub" / "measured.csv"
    rc = rx.main(["--out", str(out), "--device", "cpu", "--quick", "--tiny", "--layers", "2",
                  "--target-s-per-point", "0.01"])
    assert rc == 0
    header, rows = _read_rows(out)
    assert header == HEADER
    assert {r["kind"] for r in rows} == {"prefill", "decode", "mixed"}
    assert len(rows) == len([m for m in rx.quick_grid() if m.mode == "eager"])
    for r in rows:
        chunks, decodes = _parse_chunks(r["chunks"]), _parse_decodes(r["decodes"])
        assert chunks or decodes
        assert int(r["num_tokens"]) == sum(c for c, _ in chunks) + sum(b for b, _ in decodes)
        assert int(r["num_sampled"]) == len(chunks) + sum(b for b, _ in decodes)
        expected_kind = "decode" if not chunks else ("mixed" if decodes else "prefill")
        assert r["kind"] == expected_kind
        median, p10, p90 = float(r["median_s"]), float(r["p10_s"]), float(r["p90_s"])
        assert 0 < p10 <= median <= p90
        assert int(r["reps"]) >= 10
        assert r["mode"] == "eager" and r["layers"] == "2" and r["gpu"] == "cpu"
        assert r["model"].startswith("llama-3-8b:tiny")
        assert "attn=sdpa" in r["note"] and "finite=yes" in r["note"] and "attn_check_relerr=" in r["note"]
        assert r["torch"] == torch.__version__ and r["date"].endswith("+00:00")
    err = capsys.readouterr().err
    assert "rows written" in err and "median" in err


def test_shape_overrides_are_recorded(tmp_path):
    out = tmp_path / "o.csv"
    rc = rx.main(["--out", str(out), "--device", "cpu", "--quick", "--model", "qwen2.5-7b", "--layers", "1",
                  "--hidden", "64", "--heads", "4", "--kv-heads", "2", "--intermediate", "96", "--vocab", "300",
                  "--kinds", "decode", "--dtype", "bfloat16", "--target-s-per-point", "0.01"])
    assert rc == 0
    _, rows = _read_rows(out)
    assert rows and all(r["kind"] == "decode" for r in rows)
    assert rows[0]["model"] == "qwen2.5-7b:hidden=64:heads=4:kv_heads=2:intermediate=96:vocab=300:head_dim=16"
    assert "dtype=bfloat16" in rows[0]["note"]


def test_time_budget_drops_points_and_says_so(tmp_path, capsys):
    out = tmp_path / "b.csv"
    rc = rx.main(["--out", str(out), "--device", "cpu", "--quick", "--tiny", "--time-budget-s", "0.001"])
    assert rc == 1                       # nothing fitted: no rows
    header, rows = _read_rows(out)
    assert header == HEADER and rows == []
    assert "dropped" in capsys.readouterr().err


def test_cuda_requested_without_cuda_exits_2(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert rx.main(["--out", str(tmp_path / "x.csv"), "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no CUDA device" in err[0]


def test_dry_run_plan_fits_default_budget_on_h100(tmp_path, capsys):
    assert rx.main(["--out", str(tmp_path / "x.csv"), "--dry-run", "--assume-gpu", "h100"]) == 0
    out = capsys.readouterr().out
    total_line = [line for line in out.splitlines() if line.startswith("total:")][0]
    seconds = float(total_line.split("in ~")[1].split(" s")[0])
    assert seconds < 300
    assert "skip(memory)" in out and "256x4096" in out      # 128 GiB of KV cannot fit an H100
    assert not (tmp_path / "x.csv").exists()


def test_full_grid_covers_the_brief():
    grid = rx.full_grid()
    decode_graph = {m.spec.decodes[0] for m in grid if m.spec.kind == "decode" and m.mode == "graph"}
    assert decode_graph == {(b, l) for b in (1, 8, 32, 64, 128, 256) for l in (128, 512, 1024, 2048, 4096)}
    prefill = {m.spec.chunks_text() for m in grid if m.spec.kind == "prefill"}
    assert {f"{s}@0" for s in (128, 256, 512, 1024, 2048, 4096, 8192, 16384)} <= prefill
    assert ";".join(["512@0"] * 4) in prefill and ";".join(["1024@0"] * 8) in prefill
    mixed = {(m.spec.decodes, m.spec.chunks) for m in grid if m.spec.kind == "mixed"}
    assert mixed == {(((d, 1024),), ((c, p),)) for d in (16, 64) for c in (256, 512, 2048) for p in (0, 2048)}
    assert any(m.spec.kind == "decode" and m.mode == "eager" for m in grid)
    assert len(set(grid)) == len(grid)


def test_iteration_spec_notation_round_trips():
    spec = rx.IterationSpec.parse("512@2048;7", "16x1024;2x5")
    assert spec.chunks == ((512, 2048), (7, 0)) and spec.decodes == ((16, 1024), (2, 5))
    assert spec.chunks_text() == "512@2048;7@0" and spec.decodes_text() == "16x1024;2x5"
    assert spec.num_tokens == 512 + 7 + 16 + 2 and spec.num_sampled == 2 + 18
    assert spec.kv_slots == (2048 + 512) + 7 + 16 * 1025 + 2 * 6
    with pytest.raises(ValueError):
        rx.IterationSpec.parse("0@5", "")
    with pytest.raises(ValueError):
        rx.IterationSpec.parse("", "")


def test_layout_indices():
    layout = rx.BatchLayout.from_spec(rx.IterationSpec(chunks=((3, 2),), decodes=((2, 4),)))
    # decodes first: two sequences with 4 cached tokens each, then a chunk of 3 after 2
    assert [(s.context, s.new, s.q_start, s.slot_start) for s in layout.seqs] == [(4, 1, 0, 0), (4, 1, 1, 5),
                                                                                 (2, 3, 2, 10)]
    assert layout.positions().tolist() == [4, 4, 2, 3, 4]
    assert layout.kv_write_rows().tolist() == [4, 9, 12, 13, 14]
    assert layout.sample_rows().tolist() == [0, 1, 4]
    cu_q, cu_k = layout.cu_seqlens()
    assert cu_q.tolist() == [0, 1, 2, 5] and cu_k.tolist() == [0, 5, 10, 15]
    assert [p.kind for p in layout.pieces] == ["decode", "chunk_ctx"]


# ---------------------------------------------------------------- attention against the fp32 oracle

def naive_varlen_kernel(q, k, v, cu_q, cu_k, max_q, max_k, dropout_p, is_causal, return_debug_mask, *, scale):
    """FlashAttention varlen semantics, written out: per sequence, GQA, causal aligned bottom-right."""
    assert dropout_p == 0.0 and not return_debug_mask
    outs = []
    group = q.shape[1] // k.shape[1]
    for i in range(len(cu_q) - 1):
        qs, ks = q[cu_q[i]:cu_q[i + 1]].double(), k[cu_k[i]:cu_k[i + 1]].double()
        vs = v[cu_k[i]:cu_k[i + 1]].double()
        assert qs.shape[0] <= max_q and ks.shape[0] <= max_k
        out = torch.empty_like(qs)
        for h in range(q.shape[1]):
            scores = qs[:, h] @ ks[:, h // group].T * scale
            if is_causal:
                offset = ks.shape[0] - qs.shape[0]
                visible = torch.arange(ks.shape[0])[None, :] <= torch.arange(qs.shape[0])[:, None] + offset
                scores = scores.masked_fill(~visible, -math.inf)
            out[:, h] = scores.softmax(-1) @ vs[:, h // group]
        outs.append(out)
    return (torch.cat(outs).to(q.dtype),)


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
@pytest.mark.parametrize("heads, kv_heads", [(8, 2), (4, 4)])
def test_sdpa_path_matches_fp32_reference(dtype, tol, heads, kv_heads):
    cfg = tiny_cfg(heads=heads, kv_heads=kv_heads, head_dim=16)
    err = rx.check_attention(rx.SdpaAttention("cpu"), cfg, CPU, dtype)
    assert err < tol


def test_varlen_packing_matches_fp32_reference():
    cfg = tiny_cfg(heads=8, kv_heads=2, head_dim=16)
    err = rx.check_attention(rx.VarlenFlashAttention(kernel=naive_varlen_kernel), cfg, CPU, torch.float32)
    assert err < 1e-5


def test_rope_matches_the_rotate_half_formula_on_strided_input():
    packed = torch.randn(5, 6, 8)
    x = packed[:, :4]                                       # strided, as the forward pass hands q|k over
    angles = torch.randn(5, 1, 4)
    got = rx.apply_rope(x, angles.cos(), angles.sin())
    rotate_half = torch.cat((-x[..., 4:], x[..., :4]), dim=-1)
    want = x * torch.cat((angles.cos(),) * 2, -1) + rotate_half * torch.cat((angles.sin(),) * 2, -1)
    torch.testing.assert_close(got, want)
    assert got.is_contiguous()


def test_oracle_itself_on_a_hand_case():
    """One query after two cached keys, equal scores: the output is the mean of the three values."""
    layout = rx.BatchLayout.from_spec(rx.IterationSpec(chunks=((1, 2),)))
    q = torch.zeros(1, 1, 2)
    k = torch.zeros(3, 1, 2)
    v = torch.tensor([[[1.0, 0.0]], [[0.0, 3.0]], [[2.0, 0.0]]])
    out = rx.reference_attention(q, k, v, layout, 1.0)
    torch.testing.assert_close(out, torch.tensor([[[1.0, 1.0]]]))


def test_check_catches_a_wrong_mask():
    """A top-left causal mask (wrong for chunks after context) must fail the start-up check."""
    def top_left(q, k, v, cu_q, cu_k, max_q, max_k, dropout_p, is_causal, return_debug_mask, *, scale):
        outs = []
        for i in range(len(cu_q) - 1):
            qs, ks, vs = q[cu_q[i]:cu_q[i + 1]], k[cu_k[i]:cu_k[i + 1]], v[cu_k[i]:cu_k[i + 1]]
            qs = qs.transpose(0, 1)[None]
            o = torch.nn.functional.scaled_dot_product_attention(
                qs, ks.transpose(0, 1)[None], vs.transpose(0, 1)[None], is_causal=True, scale=scale,
                enable_gqa=True)
            outs.append(o[0].transpose(0, 1))
        return (torch.cat(outs),)

    cfg = tiny_cfg(heads=4, kv_heads=2, head_dim=16)
    assert rx.check_attention(rx.VarlenFlashAttention(kernel=top_left), cfg, CPU, torch.float32) > 1e-2


# ---------------------------------------------------------------- KV append, RoPE positions, sampling

def _run(w, spec, ids, cache_rows=None, attention=None):
    """Forward ``spec`` with the given token ids; the first slot's leading rows come from ``cache_rows``."""
    layout = rx.BatchLayout.from_spec(spec)
    batch = rx.build_batch(layout, w.cfg, CPU, seed=0)
    batch.input_ids.copy_(torch.as_tensor(ids))
    cache = rx.alloc_kv_cache(w.cfg, layout.kv_slots, CPU, torch.float32)
    for seq, rows in zip(layout.seqs, cache_rows or []):
        cache[:, :, seq.slot_start:seq.slot_start + rows.shape[2]] = rows
    with torch.inference_mode():
        tokens, logits = rx.forward(w, rx.kv_views(cache), batch, attention or rx.SdpaAttention("cpu"))
    return tokens, logits, cache, layout


@pytest.mark.parametrize("varlen", [False, True])
def test_chunked_and_decode_match_whole_prompt(varlen):
    cfg = tiny_cfg(qkv_bias=True)
    w = rx.init_weights(cfg, CPU, torch.float32, seed=0)
    w.ensure_rope(64)
    attention = rx.VarlenFlashAttention(kernel=naive_varlen_kernel) if varlen else rx.SdpaAttention("cpu")
    ids = torch.randint(0, cfg.vocab, (24,), generator=torch.Generator().manual_seed(5))

    whole_tok, whole, cache, _ = _run(w, rx.IterationSpec(chunks=((24, 0),)), ids, attention=attention)
    assert whole.shape == (1, cfg.vocab) and torch.isfinite(whole).all()
    # K/V of positions < 16 depend only on tokens < 16, so the whole run's cache is the first chunk's.
    _, chunked, _, _ = _run(w, rx.IterationSpec(chunks=((8, 16),)), ids[16:], [cache[:, :, :16]], attention)
    torch.testing.assert_close(chunked, whole, rtol=1e-4, atol=1e-4)
    _, decoded, _, _ = _run(w, rx.IterationSpec(decodes=((1, 23),)), ids[23:], [cache[:, :, :23]], attention)
    torch.testing.assert_close(decoded, whole, rtol=1e-4, atol=1e-4)
    # Both in one mixed iteration: decode first, then the chunk; each samples one row.
    mixed_tok, mixed, _, layout = _run(w, rx.IterationSpec(chunks=((8, 16),), decodes=((1, 23),)),
                                       torch.cat([ids[23:], ids[16:]]), [cache[:, :, :23], cache[:, :, :16]],
                                       attention)
    assert mixed.shape == (2, cfg.vocab)
    torch.testing.assert_close(mixed, whole.expand(2, -1), rtol=1e-4, atol=1e-4)
    assert mixed_tok.tolist() == [whole_tok.item()] * 2


def test_iteration_writes_exactly_the_new_rows_of_each_slot():
    w = rx.init_weights(tiny_cfg(), CPU, torch.float32, seed=0)
    w.ensure_rope(16)
    layout = rx.BatchLayout.from_spec(rx.IterationSpec(chunks=((3, 2),), decodes=((2, 4),)))
    batch = rx.build_batch(layout, w.cfg, CPU, seed=0)
    cache = rx.alloc_kv_cache(w.cfg, layout.kv_slots, CPU, torch.float32)
    before = cache.clone()
    with torch.inference_mode():
        rx.forward(w, rx.kv_views(cache), batch, rx.SdpaAttention("cpu"))
    changed = (cache != before).flatten(3).any(-1).all(0).all(0)      # [slots]: changed in every layer, K and V
    untouched = (cache == before).flatten(3).all(-1).all(0).all(0)
    written = torch.zeros(layout.kv_slots, dtype=torch.bool)
    written[torch.from_numpy(layout.kv_write_rows())] = True
    assert torch.equal(changed, written) and torch.equal(untouched, ~written)


def test_outputs_are_finite_for_a_deep_model():
    cfg = tiny_cfg(layers=24)
    w = rx.init_weights(cfg, CPU, torch.float32, seed=1)
    w.ensure_rope(600)
    _, logits, _, _ = _run(w, rx.IterationSpec(chunks=((64, 512),), decodes=((3, 100),)), list(range(67)))
    assert torch.isfinite(logits).all()


def test_cost_guess_is_conservative_and_positive():
    cfg = rx.MODELS["llama-3-8b"]
    args = rx.parse_args(["--out", "x"])
    guess = rx.CostGuess(rx.SPEEDS["h100"], cfg, 2, args)
    decode = rx.Measurement(rx.decode_spec(1, 1024), "graph", 0)
    # batch-1 decode streams all 16 GB of weights: >= ~5 ms at 3.35 TB/s (the H100's peak)
    assert guess.iteration_s(decode.spec, "graph") > 16e9 / 3.35e12
    assert 10 <= guess.reps(decode) <= 40 and guess.measurement_s(decode) > 0
    guess.learn(decode, 0.001)   # far faster than guessed: the scale is clamped at 0.5
    assert guess.iteration_s(decode.spec, "graph") == pytest.approx(0.5 * guess.raw_iteration_s(decode.spec, "graph"))


# ---------------------------------------------------------------- graph-mode orchestration (capture faked)

@pytest.fixture
def fake_graphs(monkeypatch):
    """Let the CPU run the graph-mode bookkeeping: 'capture' returns an eager step (or fails on demand)."""
    calls = {"n": 0, "fail_from": None}

    def fake_graph_step(w, kv, batch, attention, warmup=2):
        calls["n"] += 1
        if calls["fail_from"] is not None and calls["n"] >= calls["fail_from"]:
            raise RuntimeError("operation not permitted when stream is capturing")
        return rx.eager_step(w, kv, batch, attention)

    monkeypatch.setattr(rx, "graphs_supported", lambda device_type: True)
    monkeypatch.setattr(rx, "graph_step", fake_graph_step)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: None)
    return calls


QUICK_DECODES = len([m for m in rx.quick_grid() if m.spec.kind == "decode" and m.mode == "graph"])


def _quick(tmp_path, *extra):
    out = tmp_path / "g.csv"
    rc = rx.main(["--out", str(out), "--device", "cpu", "--quick", "--tiny", "--kinds", "decode",
                  "--target-s-per-point", "0.01", *extra])
    return rc, _read_rows(out)[1]


def test_graph_rows_carry_the_graph_check(tmp_path, fake_graphs):
    rc, rows = _quick(tmp_path)
    assert rc == 0
    graph_rows = [r for r in rows if r["mode"] == "graph"]
    assert len(graph_rows) == len(rows) // 2 == QUICK_DECODES
    assert all("graph=captured graph_check_relerr=0.0e+00" in r["note"] for r in graph_rows)
    preflight = len(rx.GRAPH_CHECK_SPECS)
    assert fake_graphs["n"] == preflight + len(graph_rows)  # the pre-flight, then one capture per point


def test_failed_graph_preflight_falls_back_to_eager(tmp_path, fake_graphs, capsys):
    fake_graphs["fail_from"] = 1
    rc, rows = _quick(tmp_path)
    assert rc == 0 and rows and all(r["mode"] == "eager" for r in rows)
    err = capsys.readouterr().err
    assert "CUDA graph check failed" in err and "graphs disabled" in err


def test_failed_capture_mid_run_keeps_other_rows(tmp_path, fake_graphs, capsys):
    fake_graphs["fail_from"] = len(rx.GRAPH_CHECK_SPECS) + 2   # pre-flight and the first point capture fine
    rc, rows = _quick(tmp_path)
    assert rc == 0
    assert [r["mode"] for r in rows].count("graph") == 1
    assert [r["mode"] for r in rows].count("eager") == QUICK_DECODES
    err = capsys.readouterr().err
    assert "FAILED" in err and "disabling CUDA graphs" in err


@pytest.mark.parametrize("argv", [["--modes", "graphs"], ["--kinds", "prefil"], ["--reps", "5"], ["--warmup", "1"]])
def test_bad_options_are_usage_errors(tmp_path, argv):
    with pytest.raises(SystemExit) as exc:
        rx.main(["--out", str(tmp_path / "x.csv"), "--device", "cpu", *argv])
    assert exc.value.code == 2


def test_bad_device_exits_2(tmp_path):
    assert rx.main(["--out", str(tmp_path / "x.csv"), "--device", "tpu:0"]) == 2


def test_timing_stops_early_when_repetitions_overrun():
    import time as _time

    step = rx.Step(run=lambda: _time.sleep(0.005), outputs=lambda: None)
    timing = rx.time_step(step, CPU, warmup=3, reps=40, min_reps=10, max_timed_s=0.01)
    assert len(timing.times_s) == 10 and min(timing.times_s) >= 0.004
    assert len(rx.time_step(step, CPU, warmup=3, reps=12).times_s) == 12
