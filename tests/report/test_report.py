"""write_report: a self-contained page with the expected sections, valid embedded figures, and files."""

from __future__ import annotations

import io
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from llmsim.errors import InputError
from llmsim.report import default_figures_dir, figure_files, write_report

from .pagecheck import png_bytes, read_page

SECTIONS = ["Scenario", "Summary", "Latency distributions", "Latency over time", "Batch size and KV cache",
            "Iteration timeline", "Time by operator", "SLO attainment and goodput"]
SLUGS = {"latency_cdf", "latency_over_time", "batch_kv", "timeline", "operator_time"}


def test_page_has_title_sections_and_a_summary_table(comparison: Path):
    page = read_page(comparison)
    title = "".join(page.texts["title"])
    assert title == "llmsim report: continuous vs chunked" == "".join(page.texts["h1"])
    headings = page.texts["h2"]
    assert [h for h in headings if h in SECTIONS] == SECTIONS
    assert [t for t in page.all("table") if t.get("class") == "summary"], "no summary table"


def test_summary_table_has_one_column_per_run(comparison: Path):
    html = comparison.read_text()
    table = re.search(r'<table class="summary"><thead><tr>(.*?)</tr>', html).group(1)
    assert re.findall(r"<th>(.*?)</th>", table) == ["metric", "continuous", "chunked"]
    assert "TTFT p99 (ms)" in html and "goodput (requests/s)" in html
    assert '<span class="delta">' in html  # the second run shows its change from the first


def test_every_image_is_an_inline_png_that_decodes(comparison: Path):
    images = read_page(comparison).all("img")
    assert len(images) == len(SLUGS) + 1  # + the SLO bar chart, drawn for several runs
    for img in images:
        data = png_bytes(img["src"])
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            assert im.size == (int(img["width"]), int(img["height"])) and im.size[0] > 300
        assert img["alt"]


def test_nothing_is_fetched_from_the_network(comparison: Path):
    page = read_page(comparison)
    for _, attrs in page.tags:
        for key in ("src", "href"):
            value = attrs.get(key, "")
            assert not re.match(r"(?i)\s*(https?:)?//", value), f"{key}={value[:80]}"
    assert not page.all("script") and not [t for t in page.all("link") if t.get("rel") == "stylesheet"]


def test_scenarios_are_in_collapsible_details(comparison: Path, run_a: Path):
    page = read_page(comparison)
    assert len(page.all("details")) == 2
    assert any("continuous: scenario.yaml" in s for s in page.texts["summary"])
    assert (run_a / "scenario.yaml").read_text().strip() in "".join(page.texts["pre"])


def test_the_scenario_difference_is_listed(comparison: Path):
    html = comparison.read_text()
    row = re.search(r"<tr><td>scheduler\.policy</td>(.*?)</tr>", html)
    assert row and "continuous" in row.group(1) and "chunked" in row.group(1)


def test_figures_are_written_as_png_and_svg(comparison: Path):
    folder = default_figures_dir(comparison)
    assert folder == comparison.parent / "report_figures"
    names = {p.name for p in folder.iterdir()}
    assert names == {f"{slug}.{ext}" for slug in SLUGS | {"slo"} for ext in ("png", "svg")}
    embedded = [png_bytes(img["src"]) for img in read_page(comparison).all("img")]
    for path in sorted(folder.glob("*.png")):
        assert path.read_bytes() in embedded
    for path in sorted(folder.glob("*.svg")):
        root = ET.parse(path).getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg"


def test_single_run_has_no_slo_chart_and_no_comparison_notes(single: Path):
    page = read_page(single)
    assert "".join(page.texts["title"]) == "llmsim report: continuous"
    assert len(page.all("img")) == len(SLUGS)
    assert "<span class=\"delta\">" not in single.read_text()
    assert {p.name for p in figure_files(default_figures_dir(single), 1)} == \
           {p.name for p in default_figures_dir(single).iterdir()}


def test_same_runs_give_the_same_bytes(tmp_path: Path, run_a: Path, run_b: Path):
    first = write_report([run_a, run_b], tmp_path / "one" / "r.html", figures_dir=tmp_path / "figs1")
    second = write_report([run_a, run_b], tmp_path / "two" / "r.html", figures_dir=tmp_path / "figs2")
    assert first.read_text().replace("figs1", "figs2").replace("/one/", "/two/") == second.read_text()
    for path in sorted((tmp_path / "figs1").iterdir()):
        assert path.read_bytes() == (tmp_path / "figs2" / path.name).read_bytes(), path.name


def test_title_and_figures_dir_can_be_chosen(tmp_path: Path, run_a: Path):
    out = write_report([run_a], tmp_path / "page.html", figures_dir=tmp_path / "slides", title="A <b>test</b>")
    html = out.read_text()
    assert "<title>A &lt;b&gt;test&lt;/b&gt;</title>" in html
    assert (tmp_path / "slides" / "latency_cdf.svg").is_file()
    assert 'href="slides/latency_cdf.svg"' in html


def test_a_bad_run_folder_is_an_input_error(tmp_path: Path, run_a: Path):
    with pytest.raises(InputError) as info:
        write_report([run_a, tmp_path / "missing"], tmp_path / "r.html")
    assert info.value.source == str(tmp_path / "missing")
    assert not (tmp_path / "r.html").exists()


def test_an_html_path_that_is_a_folder_is_an_input_error(tmp_path: Path, run_a: Path):
    with pytest.raises(InputError):
        write_report([run_a], tmp_path)


def test_rejected_and_preempted_requests_are_noted(tmp_path: Path, run_a: Path):
    import json
    folder = tmp_path / "run"
    shutil.copytree(run_a, folder)
    summary = json.loads((folder / "summary.json").read_text())
    summary["requests"]["rejected"] = 3
    summary["preemptions"] = {"total": 7, "requests_preempted": 2}
    (folder / "summary.json").write_text(json.dumps(summary))
    html = write_report([folder], tmp_path / "r.html").read_text()
    assert "3 of 60 requests rejected" in html and "7 preemptions" in html
