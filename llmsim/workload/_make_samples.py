"""Generate the small sample workloads shipped in ``workloads/`` (run from the repository root).

    python -m llmsim.workload._make_samples            # rewrite workloads/chat_300.csv
    python -m llmsim.workload._make_samples --refit    # print the fit from ../shared (needs it)

``chat_300.csv``: 300 requests, Poisson arrivals at 5 req/s, prompt and output lengths drawn
independently from lognormal distributions fitted to the Azure LLM inference trace 2023,
conversation service (``../shared/traces/azure_llm_2023/AzureLLMInferenceTrace_conv.csv``,
19,366 requests). The fit is by quantiles of log(tokens), robust to the trace's heavy tails:
median = the sample median, sigma = IQR(log tokens) / 1.349 (the IQR of a standard normal).
Result (computed with ``--refit``)::

    ContextTokens   (prompt): median 1020 tokens, sigma 0.8150; observed range [2, 14050]
    GeneratedTokens (output): median  129 tokens, sigma 1.1388; observed range [7, 1000]

(The maximum-likelihood fit, mean and std of log tokens, gives median 760 / sigma 0.985 and
median 151 / sigma 0.859; it is pulled by the many short prompts and was not used.) Samples are
clipped to the observed ranges. Seed 20231116 (the trace's date).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from llmsim.workload.formats import save_trace
from llmsim.workload.loader import load_trace
from llmsim.workload.spec import WorkloadSpec
from llmsim.workload.trace import Trace

AZURE_CONV = Path("traces/azure_llm_2023/AzureLLMInferenceTrace_conv.csv")
CHAT_300_SEED = 20231116
CHAT_300 = {
    "arrival": {"process": "poisson", "rate": 5.0},
    "prompt_tokens": {"dist": "lognormal", "median": 1020, "sigma": 0.8150, "min": 2, "max": 14050},
    "output_tokens": {"dist": "lognormal", "median": 129, "sigma": 1.1388, "min": 7, "max": 1000},
    "num_requests": 300,
}


def fit_lognormal(tokens: np.ndarray) -> tuple[float, float]:
    """(median, sigma) of a lognormal fitted by quantiles: sample median, IQR(log) / 1.349."""
    logs = np.log(np.asarray(tokens, dtype=np.float64))
    q25, q50, q75 = np.percentile(logs, [25, 50, 75])
    return float(np.exp(q50)), float((q75 - q25) / 1.3489795)


def chat_300() -> Trace:
    """The ``chat_300`` workload, regenerated from :data:`CHAT_300` and :data:`CHAT_300_SEED`."""
    return WorkloadSpec.from_dict(CHAT_300).generate(np.random.default_rng(CHAT_300_SEED))


def refit(shared: Path) -> str:
    """The lognormal fit of the Azure conversation trace under ``shared``, as text."""
    trace = load_trace(shared / AZURE_CONV)
    lines = []
    for name, tokens in (("prompt", trace.prompt_tokens), ("output", trace.output_tokens)):
        median, sigma = fit_lognormal(tokens)
        lines.append(f"{name}: median {median:.0f}, sigma {sigma:.4f}, "
                     f"range [{tokens.min()}, {tokens.max()}]")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Command line: write the samples into ``--out`` or, with ``--refit``, print the fit."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("workloads"))
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--refit", action="store_true")
    args = parser.parse_args(argv)
    if args.refit:
        print(refit(args.shared))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    print(save_trace(chat_300(), args.out / "chat_300.csv"))


if __name__ == "__main__":
    main()
