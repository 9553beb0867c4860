"""Speculative decoding: the round's price, the acceptance draws, KV lookahead, and equivalence of both modes."""

from __future__ import annotations

import filecmp

import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

import llmsim
from engine.conftest import random_rows
from engine.test_invariants import SETTINGS, _parts, check_invariants
from llmsim.api import build_simulation, cost_model
from llmsim.compare import compare_runs
from llmsim.costmodel import BatchFeatures, CostModel
from llmsim.engine.requests import FINISHED
from llmsim.engine.speculative import (Acceptance, SpeculativeConfig, accepted_drafts, round_uniforms,
                                       with_draft_model)
from llmsim.errors import InputError
from llmsim.scenario import load_scenario

EAGLE = {"method": "eagle", "num_speculative_tokens": 3, "acceptance": 0.7, "draft_cost_fraction": 0.1}


def _eagle(**changes) -> dict:
    return {"speculative": {**EAGLE, **changes}}


def _verify_s(cm, k: int, ctx: int) -> float:
    """One sequence's verification pass: a chunk of k + 1 tokens after ctx, all k + 1 rows sampled."""
    q = k + 1
    return float(cm.time_s(BatchFeatures.from_arrays(prefill_tokens=q, prefill_chunks=1, sampled=q,
                                                     prefill_attn_pairs=q * (ctx + (q + 1) / 2),
                                                     prefill_kv_tokens=ctx + q))[0])


def _decode_s(cm, ctx: int) -> float:
    return float(cm.time_s(BatchFeatures.decode_only(1, ctx))[0])


# -- the draws -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("a,k", [(0.3, 1), (0.7, 3), (0.9, 5), (0.5, 8)])
def test_tokens_per_round_match_the_formula_within_sampling_error(a, k):
    n = 200_000
    ids, rounds = np.repeat(np.arange(200), n // 200), np.tile(np.arange(n // 200), 200)
    u = round_uniforms(12345, ids, rounds)
    tokens = accepted_drafts(u, np.full(n, a), np.full(n, k)) + 1
    mean = (1 - a ** (k + 1)) / (1 - a)
    # T = L + 1 with P(T >= m) = a^(m-1), m = 1..k+1: E[T^2] = sum (2m - 1) a^(m-1)
    second = sum((2 * m - 1) * a ** (m - 1) for m in range(1, k + 2))
    sigma = np.sqrt((second - mean**2) / n)
    assert abs(tokens.mean() - mean) < 5 * sigma
    # and the law itself: P(L >= j) = a^j for every j <= k
    for j in range(1, k + 1):
        assert abs((tokens - 1 >= j).mean() - a**j) < 5 * np.sqrt(a**j * (1 - a**j) / n)


def test_draws_are_a_pure_function_of_seed_request_and_round():
    ids, rounds = np.array([3, 3, 7, 9]), np.array([1, 2, 1, 40])
    together = round_uniforms(7, ids, rounds)
    one_by_one = [round_uniforms(7, ids[i:i + 1], rounds[i:i + 1])[0] for i in range(4)]
    assert together.tolist() == one_by_one
    assert len(set(together.tolist())) == 4 and ((together >= 0) & (together < 1)).all()
    assert not np.array_equal(round_uniforms(8, ids, rounds), together)


def test_acceptance_edges_and_beta_moments():
    u = round_uniforms(1, np.arange(1000), np.zeros(1000))
    k = np.full(1000, 4)
    assert (accepted_drafts(u, np.zeros(1000), k) == 0).all()
    assert (accepted_drafts(u, np.ones(1000), k) == 4).all()
    assert (accepted_drafts(u, np.ones(1000), np.full(1000, 2)) == 2).all()  # truncated round
    beta = Acceptance(0.7, 10.0)
    sample = beta.sample(np.random.default_rng(0), 200_000)
    assert sample.mean() == pytest.approx(0.7, abs=0.003)
    assert beta.moment(2) == pytest.approx((sample**2).mean(), abs=0.003)
    assert Acceptance(0.7).expected_tokens_per_round(3) == pytest.approx((1 - 0.7**4) / 0.3)


# -- the price of a round --------------------------------------------------------------------------------
def test_acceptance_zero_is_slower_than_no_speculation(simulate):
    rows = [(0.0, 500, 200), (0.0, 800, 150), (0.01, 300, 100)]
    plain = simulate(rows)
    none_accepted = simulate(rows, **_eagle(acceptance=0.0))
    assert none_accepted.summary["speculative"]["tokens_per_round"] == 1.0
    assert none_accepted.summary["latency_s"]["tpot"]["p50"] > plain.summary["latency_s"]["tpot"]["p50"]
    assert (none_accepted.requests.finish_s > plain.requests.finish_s).all()


def test_full_acceptance_tpot_is_draft_k_plus_verify_over_k_plus_1(simulate):
    prompt, k, rounds = 600, 3, 40
    n = 1 + rounds * (k + 1)
    res = simulate([(0.0, prompt, n)], **_eagle(acceptance=1.0))
    cm = cost_model(res.scenario)
    ctx = [prompt + i * (k + 1) for i in range(rounds)]  # every round adds k + 1 tokens
    # draft step j of a round at context c: 0.1 x a target decode at context c + j
    per_round = [(sum(0.1 * _decode_s(cm, c + j) for j in range(k)) + _verify_s(cm, k, c)) / (k + 1) for c in ctx]
    tpot = res.requests.tpot_s.iloc[0]
    assert tpot == pytest.approx(np.mean(per_round), rel=1e-9)
    assert len(res.iterations) == 1 + rounds  # the prefill, then one iteration per round
    near = simulate([(0.0, prompt, n)], **_eagle(acceptance=0.999))
    assert near.requests.tpot_s.iloc[0] == pytest.approx(tpot, rel=0.02)
    assert tpot < simulate([(0.0, prompt, n)]).requests.tpot_s.iloc[0]  # and beats plain decoding


def test_verification_is_compute_heavier_than_a_decode(simulate):
    res = simulate([(0.0, 100, 10)])
    cm = cost_model(res.scenario)
    for ctx in (100, 2000):
        assert _verify_s(cm, 4, ctx) > _decode_s(cm, ctx)
    it = simulate([(0.0, 100, 10)], **_eagle()).iterations
    verify = it[it.spec_seqs > 0]
    assert (verify.decode_seqs == 0).all() and (verify.prefill_chunks == verify.spec_seqs).all()
    assert (verify.sampled == verify.prefill_tokens).all()  # every verified row is sampled


def test_a_request_never_produces_more_than_its_output_tokens(simulate):
    rows = [(0.0, 50, n) for n in (1, 2, 3, 4, 5, 6, 7, 11)]
    res = simulate(rows, **_eagle(acceptance=1.0, num_speculative_tokens=4))
    assert (res.requests.status == "finished").all()
    it = res.iterations
    assert int(it.spec_tokens.sum()) == sum(n - 1 for *_, n in rows)
    # a request with n tokens: the prefill, then ceil((n - 1) / 5) rounds of up to 5 tokens
    assert res.summary["speculative"]["rounds"] == sum(-(-(n - 1) // 5) for *_, n in rows)


def test_itl_is_one_gap_per_round_and_zeros_for_the_other_tokens(simulate):
    rows = [(0.0, 400, 121), (0.0, 300, 81)]
    res = simulate(rows, **_eagle(acceptance=1.0))
    gaps = res.itl
    assert int(gaps["count"].sum()) == 120 + 80  # n - 1 gaps per request, as without speculation
    zeros = int(gaps.loc[gaps.gap_s == 0.0, "count"].sum())
    assert zeros == 3 * (30 + 20)  # 4 tokens per round: 1 real gap and 3 at zero


def test_summary_reports_rounds_acceptance_and_time_shares(simulate):
    rng = np.random.default_rng(1)
    rows = random_rows(rng, 40, rate=20.0, max_prompt=800, max_output=400)
    res = simulate(rows, **_eagle())
    spec = res.summary["speculative"]
    assert spec["method"] == "eagle" and spec["rounds"] == int(res.iterations.spec_seqs.sum())
    assert spec["tokens_per_round"] == pytest.approx(spec["accepted_tokens_per_round"] + 1)
    assert spec["tokens_per_round"] == pytest.approx(spec["expected_tokens_per_round"], rel=0.06)
    assert 0 < spec["draft_time_share"] < spec["verify_time_share"] < 1
    assert res.summary["time_by_operator_s"]["speculative_draft"] == pytest.approx(res.iterations.draft_s.sum())
    assert "speculative" not in simulate(rows).summary


def test_per_request_beta_acceptance_is_drawn_from_the_seed(simulate):
    rows = [(0.0, 200, 300)] * 6
    beta = _eagle(acceptance={"dist": "beta", "mean": 0.6, "concentration": 4})
    a, b = simulate(rows, **beta), simulate(rows, **beta)
    assert a.requests.equals(b.requests)
    c = simulate(rows, overrides=["workload.seed=5"], **beta)
    assert not np.array_equal(a.requests.finish_s, c.requests.finish_s)
    assert a.requests.finish_s.nunique() > 1  # identical requests, different acceptance rates


# -- KV cache --------------------------------------------------------------------------------------------
def test_a_round_reserves_blocks_for_k_plus_1_tokens_and_preempts_when_short(simulate):
    # block 16, k = 4: a sequence at kv_len 31 needs blocks up to 36 tokens = 3 blocks before its round
    rows = [(0.0, 1000, 300)] * 3
    res = simulate(rows, scheduler={"num_kv_blocks": 150}, **_eagle(num_speculative_tokens=4))
    assert (res.requests.status == "finished").all()
    assert res.requests.preemptions.sum() >= 1
    assert res.iterations.kv_blocks_used.max() <= 150


def _run_raw(scenario: dict, rows, tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text("arrival_s,prompt_tokens,output_tokens\n" + "\n".join(f"{a!r},{p},{o}" for a, p, o in rows))
    sc = load_scenario({**scenario, "workload": {"trace": str(path)}})
    sim, _ = build_simulation(sc, sc.workload.generate(sc.rngs(1)[0]))
    return sim, sim.run()


@pytest.mark.parametrize("policy", ["continuous", "chunked", "disaggregated"])
def test_token_and_kv_accounting_close_exactly(tmp_path, policy):
    rows = random_rows(np.random.default_rng(7), 30, rate=40.0, max_prompt=900, max_output=200)
    parts = _parts(policy, 120, 2, "least_outstanding")
    base = {"name": "t", "model": "llama-3-8b", "hardware": "h100-sxm", **parts, **_eagle(acceptance=0.8)}
    sim, raw = _run_raw(base, rows, tmp_path)
    t = raw.table
    done = t.status == FINISHED
    assert (t.generated[done] == t.output[done]).all()
    assert (t.kv_len[done] == t.prompt[done] + t.output[done] - 1).all()  # the last token's K/V is never written
    assert all(rep.state.kv.used == 0 for rep in sim.replicas)  # every block came back


# -- fast-forward equivalence and invariants ---------------------------------------------------------------
POLICIES = ["static", "continuous", "chunked", "disaggregated"]
ROUTERS = ["round_robin", "least_outstanding", "least_kv", "prefix_affinity"]


@SETTINGS
@given(seed=st.integers(0, 10_000), policy=st.sampled_from(POLICIES), router=st.sampled_from(ROUTERS),
       replicas=st.integers(1, 3), kv_blocks=st.integers(60, 400), n=st.integers(1, 50),
       k=st.integers(1, 6), acceptance=st.sampled_from([0.0, 0.5, 0.8, 1.0, "beta"]))
def test_invariants_and_fast_forward_equivalence_with_speculation(simulate, tmp_path, seed, policy, router, replicas,
                                                                  kv_blocks, n, k, acceptance):
    rows = random_rows(np.random.default_rng(seed), n, rate=40.0, max_prompt=1200, max_output=150)
    a = {"dist": "beta", "mean": 0.7, "concentration": 5} if acceptance == "beta" else acceptance
    parts = {**_parts(policy, kv_blocks, replicas, router), **_eagle(num_speculative_tokens=k, acceptance=a)}
    fast = simulate(rows, **{**parts, "engine": {"fast_forward": True}})
    step = simulate(rows, **{**parts, "engine": {"fast_forward": False}})
    check_invariants(fast, rows)
    assert int(fast.iterations.spec_tokens.sum()) <= int(fast.requests.output_tokens.sum())
    a_dir, b_dir = tmp_path / f"ff{seed}", tmp_path / f"step{seed}"
    fast.save(a_dir, overwrite=True)
    step.save(b_dir, overwrite=True)
    for name in ("requests.csv", "iterations.csv", "itl.csv", "summary.json"):
        assert filecmp.cmp(a_dir / name, b_dir / name, shallow=False), name


@pytest.mark.parametrize("policy", ["continuous", "chunked", "disaggregated"])
def test_fast_forward_and_step_by_step_identical_per_policy(simulate, tmp_path, policy):
    rows = random_rows(np.random.default_rng(11), 40, rate=30.0, max_prompt=1000, max_output=200)
    parts = {**_parts(policy, 200, 2, "round_robin"), **_eagle(acceptance={"dist": "beta", "mean": 0.7,
                                                                           "concentration": 10})}
    runs = [simulate(rows, **{**parts, "engine": {"fast_forward": ff}}) for ff in (True, False)]
    for i, res in enumerate(runs):
        res.save(tmp_path / str(i), overwrite=True)
    for name in ("requests.csv", "iterations.csv", "itl.csv", "summary.json"):
        assert filecmp.cmp(tmp_path / "0" / name, tmp_path / "1" / name, shallow=False), name
    assert runs[0].summary["speculative"]["rounds"] > 0


def test_disaggregated_speculates_on_the_decode_side_only(simulate):
    rows = [(i * 0.05, 1500, 60) for i in range(20)]
    res = simulate(rows, scheduler={"policy": "disaggregated"}, **_eagle())
    it = res.iterations
    assert it.loc[it.replica == 0, "spec_seqs"].sum() == 0
    assert it.loc[it.replica == 1, "spec_seqs"].sum() > 0
    assert (res.requests.status == "finished").all()


# -- a draft model ---------------------------------------------------------------------------------------
def test_a_draft_model_is_priced_by_its_own_cost_model_and_takes_memory(simulate, tmp_path):
    draft = tmp_path / "tiny-draft.yaml"
    draft.write_text("base: llama-3-8b\nname: tiny-draft\nnum_layers: 2\n")
    prompt, k, rounds = 400, 2, 20
    spec = {"method": "draft_model", "draft_model": str(draft), "num_speculative_tokens": k, "acceptance": 1.0}
    res = simulate([(0.0, prompt, 1 + rounds * (k + 1))], speculative=spec)
    cm = cost_model(res.scenario)
    draft_cm = CostModel(res.scenario.speculative.draft_model, cm.gpu, cm.parallelism, cm.precision, cm.calibration,
                         cm.engine)
    ctx = [prompt + i * (k + 1) for i in range(rounds)]
    expected = sum(_decode_s(draft_cm, c) + _decode_s(draft_cm, c + 1) + _verify_s(cm, k, c) for c in ctx)
    assert res.requests.tpot_s.iloc[0] == pytest.approx(expected / (rounds * (k + 1)), rel=1e-9)
    plain = simulate([(0.0, prompt, 10)])
    assert res.summary["memory"]["replica"]["kv_blocks"] < plain.summary["memory"]["replica"]["kv_blocks"]


def test_draft_model_memory_adds_weights_and_kv_per_token(llama3_8b, h100):
    from llmsim.costmodel import Precision, plan_memory
    from llmsim.specs import Parallelism, load_model
    plan = plan_memory(load_model("llama-3-70b"), h100, Parallelism(4), Precision())
    both = with_draft_model(plan, llama3_8b, Parallelism(4), Precision())
    assert both.weight_bytes > plan.weight_bytes
    assert both.kv_bytes_per_token == pytest.approx(plan.kv_bytes_per_token * (1 + 32 / 80))  # 8 KV heads both
    assert both.kv_blocks < plan.kv_blocks


# -- the scenario section --------------------------------------------------------------------------------
SMALL_WORKLOAD = {"arrival": {"rate": 1.0}, "num_requests": 2, "prompt_tokens": {"dist": "fixed", "value": 100},
                  "output_tokens": {"dist": "fixed", "value": 10}}


def _load(spec, **extra):
    return load_scenario({"name": "t", "model": "llama-3-8b", "hardware": "h100-sxm", "speculative": spec,
                          "workload": SMALL_WORKLOAD, **extra})


@pytest.mark.parametrize("spec,match,where", [
    ({"draft": "x"}, "did you mean 'draft_model'", "speculative.draft"),
    ({**EAGLE, "acceptance": 1.5}, "probability", "speculative.acceptance"),
    ({**EAGLE, "acceptance": {"dist": "beta", "mean": 0.7}}, "concentration", "speculative.acceptance.concentration"),
    ({**EAGLE, "acceptance": {"dist": "gamma"}}, "unknown acceptance distribution", "speculative.acceptance.dist"),
    ({**EAGLE, "num_speculative_tokens": 0}, ">= 1", "speculative.num_speculative_tokens"),
    ({**EAGLE, "draft_cost_fraction": None}, "draft_cost_fraction", "speculative.draft_cost_fraction"),
    ({**EAGLE, "method": "eagel"}, "did you mean 'eagle'", "speculative.method"),
    ({**EAGLE, "draft_model": "llama-3-8b"}, "draft_model is for method draft_model", "speculative.draft_model"),
    ({"method": "draft_model", "num_speculative_tokens": 3, "acceptance": 0.7, "draft_model": "llama-9"},
     "unknown model", "speculative.draft_model"),
    ({"num_speculative_tokens": 3, "acceptance": 0.7}, "missing required key 'method'", "speculative.method"),
    ("eagle", "expected a mapping", "speculative"),
])
def test_bad_sections_are_input_errors_naming_the_key(spec, match, where):
    with pytest.raises(InputError, match=match) as info:
        _load(spec)
    assert info.value.where == where


def test_sections_that_load():
    assert _load(None).speculative is None
    off = _load({**EAGLE, "method": "none"}).speculative
    assert not off.enabled
    inferred = _load({"draft_model": "llama-2-7b", "num_speculative_tokens": 2, "acceptance": 0.6}).speculative
    assert inferred.method == "draft_model" and inferred.draft_model.name == "llama-2-7b"
    assert SpeculativeConfig.from_dict(EAGLE).acceptance == Acceptance(0.7)


def test_a_draft_model_that_does_not_fit_is_an_input_error_naming_the_file(tmp_path):
    path = tmp_path / "s.yaml"
    spec = {"method": "draft_model", "draft_model": "llama-2-70b", "num_speculative_tokens": 2, "acceptance": 0.5}
    path.write_text(yaml.safe_dump({"name": "t", "model": "llama-3-8b", "hardware": "h100-sxm",
                                    "workload": SMALL_WORKLOAD, "speculative": spec}))
    with pytest.raises(InputError, match="leaves no room") as info:
        llmsim.run(path)
    assert str(path) in str(info.value) and info.value.where == "speculative.draft_model"


def test_shipped_scenario_and_compare_report_the_tpot_change():
    common = ["workload.num_requests=150"]
    rows = compare_runs("speculative-chat", [("bf16", []), ("fp8", ["precision.weights=fp8"]),
                                             ("eagle", ["speculative.method=eagle"])], common)
    assert [r["run"] for r in rows] == ["bf16", "fp8", "eagle"]
    assert rows[0]["tpot_p50_change"] == 0.0
    assert rows[1]["tpot_p50_change"] < -0.2 and rows[2]["tpot_p50_change"] < -0.1
    res = llmsim.run("speculative-chat", [*common, "speculative.method=eagle"])
    spec = res.summary["speculative"]
    assert spec["acceptance"] == {"dist": "beta", "mean": 0.7, "concentration": 10}
    assert 1.5 < spec["tokens_per_round"] < 3.0


def test_chunked_budget_counts_the_tokens_each_round_verifies(simulate):
    # chunk 64, k = 3: 10 decoding sequences verify 40 tokens, leaving 24 for prompt chunks
    rows = [(0.0, 20, 200)] * 10 + [(0.5, 1000, 5)]
    res = simulate(rows, scheduler={"policy": "chunked", "chunk_size": 64}, **_eagle())
    it = res.iterations
    assert (it.prefill_tokens <= 64).all()  # prompt chunks + verified tokens stay within the budget
    mixed = it[(it.spec_seqs > 0) & (it.prefill_chunks > it.spec_seqs)]
    assert (mixed.prefill_tokens == 64).sum() > len(mixed) // 2  # full, except where a prompt's last chunk is short
