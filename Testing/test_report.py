"""HTML report: sections, embedded figures, number formats, escaping, offline rendering in headless Chromium."""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from report_inputs import FakeEvaluation, make_evaluation, make_meta, make_model_summary

from ALNMPredictorLib import SYNTHETIC_LABEL, plots, report
from ALNMPredictorLib.errors import ALNMError
from ALNMPredictorLib.report import (
    SECTIONS,
    STUDY_TABLE3_AUC,
    format_auc,
    format_or,
    format_p,
    format_percent,
)

FIGURES = [
    "nomogram",
    "roc",
    "calibration",
    "decision",
    "clinical_impact",
    "risk_groups",
    "selection_funnel",
    "lasso_path_tumor",
    "lasso_cv_tumor",
    "lasso_path_ln",
    "lasso_cv_ln",
    "selection_stability",
    "readers",
]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Page(HTMLParser):
    """Sections, images, figures and table cells (by table id) of a report."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[str] = []
        self.figures: list[str] = []
        self.images: list[dict[str, str]] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.tags: set[str] = set()
        self.title = ""
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._in_title = False
        self._section: str | None = None
        self.section_text: dict[str, list[str]] = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        if tag == "section":
            self.sections.append(a["id"])
            self._section = a["id"]
        elif tag == "figure":
            self.figures.append(a.get("id", ""))
        elif tag == "img":
            self.images.append(a)
        elif tag == "table" and a.get("id"):
            self._table = a["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None
        elif tag == "title":
            self._in_title = False
        elif tag == "section":
            self._section = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._in_title:
            self.title += data
        if self._section:
            self.section_text.setdefault(self._section, []).append(data)

    def text(self, section: str) -> str:
        return " ".join(" ".join(self.section_text.get(section, [])).split())


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    page.close()
    return page


@pytest.fixture(scope="module")
def inputs():
    return make_evaluation(), make_model_summary(), make_meta()


@pytest.fixture(scope="module")
def full_report(tmp_path_factory, inputs):
    evaluation, summary, meta = inputs
    out = tmp_path_factory.mktemp("report")
    seen: list[str] = []
    path = report.write_report(
        out,
        evaluation=evaluation,
        model_summary=summary,
        synthetic=True,
        study_comparison=True,
        meta=meta,
        title="Demo <report>",
        progress=seen.append,
    )
    text = path.read_text(encoding="utf-8")
    return path, text, _parse(text), seen


# ---------------------------------------------------------------------------------- formats


def test_number_formats() -> None:
    assert format_p(0.0004) == "<.001" and format_p(0.04321) == ".043" and format_p(0.9996) == ">.999"
    assert format_p(float("nan")) == "—" and format_p(None) == "—" and format_p(0.001) == ".001"
    assert format_auc(0.9123, 0.8712, 0.9488) == "0.91 (0.87–0.95)" and format_auc(0.9) == "0.90"
    assert format_or(2.2401, 1.1923, 4.2087) == "2.24 (1.19–4.21)" and format_or(float("nan")) == "—"
    assert format_or(float("inf"), 1.0, float("inf")) == "∞ (1.00–∞)"
    assert format_percent(0.8123) == "81.2%" and format_percent(81.23, fraction=False) == "81.2%"
    assert report._num(-0.0001, 3) == "0.000" and report._num(-0.0006, 3) == "-0.001"  # never "-0.000"


# ---------------------------------------------------------------------------------- structure


def test_every_section_and_figure_present(full_report) -> None:
    path, text, page, seen = full_report
    assert path.name == "report.html"
    assert page.sections == list(SECTIONS)
    assert sorted(page.figures) == sorted(f"fig-{name}" for name in FIGURES)
    assert sorted(seen) == sorted(FIGURES)  # progress called once per rendered figure
    assert len(page.images) == len(FIGURES)
    for img in page.images:
        assert img["src"].startswith("data:image/png;base64,")
        assert base64.b64decode(img["src"].split(",", 1)[1])[:8] == PNG_MAGIC
        assert img.get("alt")
    # the nomogram is in the one-screen summary
    summary_start, table1_start = text.index('<section id="summary">'), text.index('<section id="table1">')
    assert summary_start < text.index('id="fig-nomogram"') < table1_start


def test_self_contained_no_network(full_report) -> None:
    _, text, page, _ = full_report
    lowered = text.lower()
    for bad in (
        'src="http',
        "src='http",
        'href="http',
        "@import",
        "url(",
        "<script",
        "<link",
        "<iframe",
        "//fonts.",
    ):
        assert bad not in lowered, bad
    assert "script" not in page.tags and "link" not in page.tags
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in text
    assert "max-width:100%" in text and "overflow-x:auto" in text


def test_synthetic_and_simulated_labels(full_report) -> None:
    _, text, page, _ = full_report
    assert page.title.startswith("SYNTHETIC")
    assert text.count(html.escape(SYNTHETIC_LABEL)) >= 2  # banner on top and in the footer
    assert 'id="synthetic-banner"' in text
    assert "SIMULATED READS" in page.text("readers")


def test_text_is_escaped(full_report) -> None:
    _, text, page, _ = full_report
    assert "<report>" not in text and "Demo &lt;report&gt;" in text
    assert "Margin &lt;b&gt;&amp;" in text and "<b>&" not in text
    assert "mask is empty &lt;script&gt;" in text
    failed = page.tables["failed-cases"]
    assert failed[1] == ["P0007", "column tumor_mask: mask is empty <script>"]


# ---------------------------------------------------------------------------------- numbers


def test_table3_numbers_match_the_input(full_report, inputs) -> None:
    evaluation, _, _ = inputs
    t3 = evaluation.tables["table3"]
    rows = full_report[2].tables["table3-data"]
    header, body = rows[0], rows[1:]
    assert header[:4] == ["Set", "Model", "AUC (95% CI)", "Study AUC (95% CI)"]
    assert len(body) == len(t3)
    for shown, (_, rec) in zip(body, t3.iterrows(), strict=True):
        assert shown[1] == plots.model_label(rec.model)
        assert shown[2] == f"{rec.auc:.2f} ({rec.auc_low:.2f}–{rec.auc_high:.2f})"
        ref = STUDY_TABLE3_AUC[rec.split][rec.model]
        assert shown[3] == f"{ref[0]:.2f} ({ref[1]:.2f}–{ref[2]:.2f})"
        assert shown[4:9] == [
            f"{100 * rec[c]:.1f}%" for c in ("accuracy", "sensitivity", "specificity", "ppv", "npv")
        ]
        assert shown[9] == f"{rec.cutoff:.3f}" and shown[10] == f"{rec.n} ({rec.n_events})"
    assert body[0][0] == "Training set" and body[1][0] == ""  # set named once per group
    assert STUDY_TABLE3_AUC["train"]["clinical_radiomics"] == (0.94, 0.91, 0.96)


def test_study_values_equal_the_reference_file() -> None:
    """report.STUDY_TABLE3_AUC equals the study's Table 3 (fixture copied from the project's machine-readable
    tables; where the shared original is present, the fixture must still equal it)."""
    table3 = json.loads(
        (Path(__file__).parent / "fixtures" / "study_table3.json").read_text(encoding="utf-8")
    )["table3"]
    assert table3["_columns"][:3] == ["auc", "auc_low", "auc_high"]
    for split, models in STUDY_TABLE3_AUC.items():
        for model, values in models.items():
            assert list(values) == table3[split][model][:3]
    assert {s for s in table3 if not s.startswith("_")} == set(STUDY_TABLE3_AUC)
    original = Path(__file__).resolve().parents[2] / "shared" / "reference" / "paper_tables.json"
    if original.is_file():
        assert json.loads(original.read_text(encoding="utf-8"))["table3"] == table3


def test_summary_auc_table(full_report, inputs) -> None:
    evaluation, summary, _ = inputs
    page = full_report[2]
    rows = page.tables["auc-summary"]
    assert rows[0] == [
        "Model",
        "Training set",
        "Internal test set",
        "External test set",
        "Prospective test set",
    ]
    assert rows[1][0] == "Patients" and rows[1][1] == "n = 120, ALNM 70"
    t3 = evaluation.tables["table3"]
    combined = next(r for r in rows if r[0] == "Clinical-radiomics model")
    expected = [
        format_auc(
            *t3[(t3.split == s) & (t3.model == "clinical_radiomics")][["auc", "auc_low", "auc_high"]].iloc[0]
        )
        for s in ("train", "internal", "external", "prospective")
    ]
    assert combined[1:] == expected
    published = rows[rows.index(combined) + 1]
    assert published[1] == "0.94 (0.91–0.96)"
    text = page.text("summary")
    assert summary["formula"] in text
    assert all(f in text for f in summary["region_formulas"].values())
    assert "0.701" in text


def test_table2_s3_s4_and_calibration_numbers(full_report) -> None:
    _, text, page, _ = full_report
    t2 = page.text("table2")
    assert (
        "US-reported ALNM: Present 5.91 (3.81–9.16) <.001 4.68 (2.94–7.46) <.001 2.24 (1.19–4.21) .012" in t2
    )
    assert "Tumor size 1.75 (1.44–2.12) .004 1.52 (1.24–1.87) .045 — —" in t2
    assert "Clinical-radiomics model vs Clinical model 0.93 0.78 3.21 .001" in page.text("table_s3")
    assert "Training set 0.81 (0.56–1.07) <.001 0.41 0.40 0.20 (0.14–0.26) <.001" in page.text("table_s4")
    hl = page.tables["hl-data"]
    assert hl[1] == ["Training set", "Clinical-radiomics model", "11.63", "8", ".169"]
    assert "Training set High 70 62 88.6%" in page.text("risk_groups")
    t1 = page.text("table1")
    assert "Age, years 54.0 ± 10.6" in t1 and ".471 ANOVA" in t1 and "<.001" in t1


def test_readers_methods_and_warnings(full_report, inputs) -> None:
    _, _, meta = inputs
    page = full_report[2]
    metrics = page.tables["reader-metrics"]
    assert metrics[1][:4] == ["junior", "Without AI", "0.71 (0.64–0.77)", "70.1%"]
    assert "0.733 (0.610–0.860)" in page.text("readers")
    versions = dict((row[0], row[1]) for row in page.tables["versions"])
    assert versions["ALNMPredictorLib"] == "0.1.0" and versions["numpy"] == meta["versions"]["numpy"]
    assert "python" in versions and "pandas" in versions
    weights = dict((row[0], row[1]) for row in page.tables["deep-weights"])
    assert weights["name"] == "VGG19_Weights.IMAGENET1K_V1"
    settings = dict((row[0], row[1]) for row in page.tables["settings"])
    assert settings["selection.icc_threshold"] == "0.8" and settings["preset"] == "paper"
    assert dict((row[0], row[1]) for row in page.tables["seeds"]) == {"random_state": "0"}
    degenerate = page.tables["degenerate"]
    assert degenerate[0] == ["ln (3)", "ln_wavelet_x, ln_wavelet_y, ln_wavelet_z"]
    assert "Not computed (tumor 372): the z-high-pass wavelet features" in page.text("methods")
    assert "--full-table computes them" in page.text("methods")
    assert "alnm demo --out demo" in page.text("methods")
    assert "ln score: 3 degenerate features dropped" in page.text("warnings")
    assert "2 warning(s) and 1 failed case(s)" in page.text("summary")


def test_optimism_section_and_model_notes(full_report, inputs) -> None:
    page = full_report[2]
    text = page.text("optimism")
    assert "cross-fitted: out-of-fold region scores" in text and "199 of 200 bootstrap" in text
    rows = {row[0]: row[1:] for row in page.tables["optimism-table"][1:]}
    assert rows["AUC"] == ["0.941", "0.953", "0.930", "0.023", "0.918", "199"]
    assert rows["Calibration slope"][-2:] == ["0.871", "180"]
    assert "1 resample(s) could not be refitted" in text
    auc = {row[0]: row[1:] for row in page.tables["optimism-auc"][1:]}
    assert auc["Clinical-radiomics model"][1] == "0.918" and auc["Clinical model"][1] == "—"
    assert len(auc["Clinical model"]) == 2 + 3  # apparent, corrected, then the three test sets
    stability = page.tables["stability-tumor"][1:]
    assert len(stability) == report.STABILITY_ROWS and stability[0] == [
        "tumor_original_glcm_f0",
        "yes",
        "100.0%",
        "95.0%",
    ]
    assert "5 more in tables/selection_stability.csv" in text
    note = "fitted by Firth's penalised likelihood: separation along ln_score"
    assert note in page.text(
        "table2"
    ) and f"Clinical-radiomics model: the clinical_radiomics model was {note}" in page.text("warnings")


def test_selection_section(full_report, inputs) -> None:
    _, summary, _ = inputs
    text = full_report[2].text("selection")
    assert "Tumor score" in text and "LN score" in text
    assert "mutual_information 120 30" in text
    assert "tumor_original_glcm_f1 0.4000 1.5000 0.2500" in text


# ---------------------------------------------------------------------------------- variants


def _tiny_png(tmp_path: Path, name: str) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    fig.subplots().plot([0, 1], [0, 1])
    return plots.save_figure(fig, tmp_path, name, dpi=20)[0]


def test_a_random_backbone_is_flagged_in_the_summary_warnings_and_formulas(tmp_path, inputs) -> None:
    evaluation, summary, meta = inputs
    text = "Deep features of tumor come from a RANDOM VGG19 backbone (no ImageNet weights were available)"
    flagged = {
        **summary,
        "random_backbone": text,
        "warnings": [text],
        "region_formulas": {
            "tumor": "tumor score = 0.1 + 0.5 × tumor_deep_007 - 0.2 × tumor_original_glcm_f0"
        },
    }
    page = _parse(
        report.write_report(tmp_path, evaluation=evaluation, model_summary=flagged, meta=meta).read_text()
    )
    assert text in page.text("summary") and text in page.text("warnings")
    assert "tumor_deep_007 [RANDOM backbone]" in page.text("summary")
    assert "tumor_original_glcm_f0 [RANDOM" not in page.text("summary")
    assert "tumor_deep_007 [RANDOM backbone]" in page.text("selection")
    plain = _parse(
        report.write_report(
            tmp_path / "plain", evaluation=evaluation, model_summary=summary, meta=meta
        ).read_text()
    )
    assert "RANDOM" not in plain.text("summary")


def test_given_figures_are_embedded_and_missing_ones_reported(tmp_path, inputs) -> None:
    evaluation, summary, meta = inputs
    given = {name: _tiny_png(tmp_path / "figs", name) for name in FIGURES}
    roc_png = given["roc"]
    given["roc"] = (roc_png, roc_png.with_suffix(".svg"))  # as plots.save_all returns
    given["decision"] = tmp_path / "figs" / "gone.png"
    seen: list[str] = []
    path = report.write_report(
        tmp_path / "out",
        evaluation=evaluation,
        model_summary=summary,
        figures=given,
        meta=meta,
        progress=seen.append,
    )
    text = path.read_text(encoding="utf-8")
    page = _parse(text)
    uris = {fig: img["src"] for fig, img in zip(page.figures, page.images, strict=True)}
    assert uris["fig-roc"] == "data:image/png;base64," + base64.b64encode(roc_png.read_bytes()).decode()
    assert seen == ["decision"]  # only the unreadable one was drawn from the data
    assert "figure decision: cannot read" in page.text("warnings")
    assert "SYNTHETIC" not in page.title and 'id="synthetic-banner"' not in text
    assert "Study AUC" not in text
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.html"]


def test_minimal_inputs_still_give_every_section(tmp_path) -> None:
    full = make_evaluation(readers=False)
    evaluation = FakeEvaluation(tables={"table3": full.tables["table3"]}, curves={"roc": full.curves["roc"]})
    text = report.write_report(tmp_path, evaluation=evaluation, model_summary={}).read_text(encoding="utf-8")
    page = _parse(text)
    assert page.sections == [s for s in SECTIONS if s != "readers"]
    assert page.figures == ["fig-roc"]
    assert "Table 1 not available." in page.text("table1")
    assert "No case failed." in page.text("warnings") and "No warnings." in page.text("warnings")
    assert "no VGG19 weights used" in page.text("methods")
    assert "internal validation corrected for optimism was not run" in page.text("optimism")


def test_bad_evaluation_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ALNMError, match="EvaluationResult"):
        report.write_report(tmp_path, evaluation=None, model_summary={})
    assert not any(tmp_path.iterdir())


def test_report_from_a_real_evaluation(tmp_path) -> None:
    """The EvaluationResult that evaluation.evaluate returns (extra columns, simulated reads) renders."""
    from ALNMPredictorLib.evaluation import evaluate
    from ALNMPredictorLib.modeling import fit_logistic_model
    from ALNMPredictorLib.reader_study import simulate_reads

    rng = np.random.default_rng(5)
    n = 240
    y = rng.random(n) < 0.55
    data = pd.DataFrame(
        {
            "split": np.repeat(["train", "internal", "prospective"], [120, 60, 60]),
            "label": y.astype(float),
            "tumor_size": rng.normal(2.5 + 0.6 * y, 1.0),
            "us_alnm": np.where(rng.random(n) < np.where(y, 0.7, 0.3), "present", "absent"),
            "tumor_score": rng.normal(0.9 * y, 1.0),
            "ln_score": rng.normal(1.6 * y, 1.0),
        },
        index=pd.Index([f"P{i:03d}" for i in range(n)], name="case_id"),
    )
    train = data[data["split"] == "train"]
    fit = {"screen_p": None, "stepwise_p": 0.999}
    models = {
        "clinical": fit_logistic_model(
            "clinical", train, train["label"], ["tumor_size", "us_alnm"], categorical=["us_alnm"], **fit
        ),
        "tumor_score": fit_logistic_model("tumor_score", train, train["label"], ["tumor_score"], **fit),
        "ln_score": fit_logistic_model("ln_score", train, train["label"], ["ln_score"], **fit),
        "clinical_radiomics": fit_logistic_model(
            "clinical_radiomics",
            train,
            train["label"],
            ["us_alnm", "tumor_score", "ln_score"],
            categorical=["us_alnm"],
            **fit,
        ),
    }
    pred = data[["split", "label"]].copy()
    pred["status"], pred["error"] = "ok", ""
    for name, model in models.items():
        pred[f"prob_{name}"] = model.predict_proba(data).to_numpy()
    reads = simulate_reads(pred, split="prospective", seed=1, cutoff=models["clinical_radiomics"].cutoff)
    result = evaluate(pred, models, clinical=data[["tumor_size", "us_alnm"]], reads=reads, n_boot=0)
    given = {name: _tiny_png(tmp_path / "figs", name) for name in FIGURES}
    summary = {
        "formula": models["clinical_radiomics"].formula(),
        "nomogram": models["clinical_radiomics"].nomogram_scale(),
    }
    text = report.write_report(tmp_path, evaluation=result, model_summary=summary, figures=given).read_text(
        encoding="utf-8"
    )
    page = _parse(text)
    assert page.sections == list(SECTIONS)
    assert "SIMULATED READS" in page.text("readers")  # from summary["reader_study"]["simulated"]
    t3 = result.tables["table3"]
    rec = t3[(t3["split"] == "prospective") & (t3["model"] == "clinical_radiomics")].iloc[0]
    rows = page.tables["table3-data"]
    start = next(i for i, r in enumerate(rows) if r[0] == "Prospective test set")  # the set is named once
    shown = next(r for r in rows[start:] if r[1] == "Clinical-radiomics model")
    assert shown[2] == format_auc(rec.auc, rec.auc_low, rec.auc_high)
    assert (
        shown[3] == f"{100 * rec.accuracy:.1f}% ({100 * rec.accuracy_low:.1f}–{100 * rec.accuracy_high:.1f})"
    )
    s4 = page.tables["table-s4-data"]
    assert s4[0][-2] == "NRI at cut-off (95% CI)" and len(s4) == 1 + len(result.tables["table_s4"])
    assert "Us alnm: Present vs Absent" in page.text("table2")
    assert "Fisher p" in page.tables["risk-data"][0]


# ---------------------------------------------------------------------------------- headless Chromium

_CHECK_SCRIPT = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (i) { return !i.complete || i.naturalWidth === 0; }).length;
  var ids = Array.prototype.map.call(document.querySelectorAll('section[id]'), function (s) { return s.id; });
  var out = document.createElement('div');
  out.id = 'render-check';
  out.setAttribute('data-images', imgs.length);
  out.setAttribute('data-broken', broken);
  out.setAttribute('data-sections', ids.join(' '));
  out.setAttribute('data-overflow', document.documentElement.scrollWidth > window.innerWidth + 1 ? 1 : 0);
  document.body.appendChild(out);
});
</script>"""


def _chromium() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _run_chromium(binary: str, page: Path, work: Path, *extra: str) -> subprocess.CompletedProcess:
    profile = work / f"profile-{len(list(work.iterdir()))}"
    command = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        *extra,
        page.as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def _page_requests(net_log: Path) -> list[str]:
    """URLs the page (not the browser's own services) asked the network for, from a Chromium net log."""
    data = json.loads(net_log.read_text(encoding="utf-8"))
    start_job = data["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = []
    for event in data["events"]:
        params = event.get("params") or {}
        if event.get("type") != start_job or "url" not in params:
            continue
        from_page = params.get("initiator") != "not an origin" or "file://" in str(
            params.get("network_isolation_key")
        )
        if from_page and not params["url"].startswith(("file:", "data:", "about:", "chrome:", "blob:")):
            urls.append(params["url"])
    return urls


def _render_check(dom: str) -> dict[str, str]:
    """The data- attributes the injected script wrote into the rendered DOM."""
    tag = re.search(r'<div id="render-check"[^>]*>', dom)
    assert tag is not None, "the check script did not run"
    return dict(re.findall(r'(data-[a-z]+)="([^"]*)"', tag.group(0)))


def test_renders_offline_in_headless_chromium(full_report, tmp_path) -> None:
    binary = _chromium()
    if binary is None:
        pytest.skip("headless Chromium is not installed (Debian package 'chromium'; .ci/run installs it)")
    _, text, _, _ = full_report
    check = tmp_path / "check.html"
    check.write_text(text.replace("</body>", _CHECK_SCRIPT + "</body>"), encoding="utf-8")
    bad = tmp_path / "bad.html"  # negative control: the checks must see a remote image and a stylesheet
    bad.write_text(
        text.replace(
            "</body>",
            '<img src="http://example.invalid/x.png" alt="remote">'
            '<link rel="stylesheet" href="https://fonts.example.invalid/a.css">' + _CHECK_SCRIPT + "</body>",
        ),
        encoding="utf-8",
    )
    work = tmp_path / "chromium"
    work.mkdir()
    results = {}
    for name, page in (("check", check), ("bad", bad)):
        net = tmp_path / f"net-{name}.json"
        run = _run_chromium(
            binary,
            page,
            work,
            f"--log-net-log={net}",
            "--window-size=390,2000",
            "--virtual-time-budget=5000",
            "--dump-dom",
        )
        assert run.returncode == 0 and 'id="render-check"' in run.stdout, run.stderr[-2000:]
        results[name] = (_render_check(run.stdout), _page_requests(net), run.stdout)
    info, requests, dom = results["check"]
    assert info["data-images"] == str(len(FIGURES)) and info["data-broken"] == "0"
    assert info["data-sections"].split() == list(SECTIONS)
    assert info["data-overflow"] == "0", "the page scrolls sideways at phone width"
    assert requests == []
    for section in SECTIONS:
        assert f'<section id="{section}">' in dom
    bad_info, bad_requests, _ = results["bad"]
    assert bad_info["data-broken"] == "1"
    assert sorted(bad_requests) == ["http://example.invalid/x.png", "https://fonts.example.invalid/a.css"]
    # a desktop screenshot that is not blank
    shot = tmp_path / "shot.png"
    run = _run_chromium(binary, full_report[0], work, f"--screenshot={shot}", "--window-size=1280,4000")
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (4000, 1280) and pixels.std() > 10


def _pdf_text(pdf: Path) -> tuple[str, list[tuple[float, float]]]:
    pypdf = pytest.importorskip("pypdf")
    reader = pypdf.PdfReader(str(pdf))
    sizes = [(float(page.mediabox.width), float(page.mediabox.height)) for page in reader.pages]
    return "".join("".join(page.extract_text().split()) for page in reader.pages), sizes


def test_printed_to_pdf_every_table_cell_is_on_paper(full_report, tmp_path) -> None:
    """Chromium's print to PDF keeps every cell of the widest tables (Table 2's combined-model ORs, Table 3's
    metrics with CIs and cut-off) on landscape pages; without the print CSS the same report loses them
    (the negative control)."""
    binary = _chromium()
    if binary is None:
        pytest.skip("headless Chromium is not installed (Debian package 'chromium'; .ci/run installs it)")
    path, text, page, _ = full_report
    work = tmp_path / "chromium"
    work.mkdir()
    cells = [
        c
        for table in ("table2-data", "table3-data")
        for row in page.tables[table][1:]
        for c in row
        if c.strip()
    ]
    assert any("(" in c and "%" in c for c in cells)  # Table 3's metrics carry their CIs

    def printed(html: Path) -> tuple[str, list[tuple[float, float]]]:
        pdf = tmp_path / f"{html.stem}.pdf"
        run = _run_chromium(
            binary,
            html,
            work,
            f"--print-to-pdf={pdf}",
            "--no-pdf-header-footer",
            "--virtual-time-budget=5000",
        )
        assert run.returncode == 0 and pdf.is_file(), run.stderr[-2000:]
        return _pdf_text(pdf)

    words, sizes = printed(path)
    assert sizes and all(w > h for w, h in sizes), "pages are not landscape"
    missing = [c for c in cells if "".join(c.split()) not in words]
    assert not missing, f"{len(missing)} table cells are not in the PDF, e.g. {missing[:5]}"
    plain = tmp_path / "no-print-css.html"
    plain.write_text(
        text.replace("@media print{", "@media not all{").replace("@page{", "@page-off{"), encoding="utf-8"
    )
    words, _ = printed(plain)
    assert [c for c in cells if "".join(c.split()) not in words], (
        "the negative control lost no cell: the check is blind"
    )


def test_a_reader_worse_with_ai_is_explained_beside_the_models_results() -> None:
    tests = pd.DataFrame(
        [
            {
                "reader": "junior (simulated)",
                "auc_unaided": 0.74,
                "auc_aided": 0.66,
                "delong_p": 0.03,
                "acc_unaided": 0.76,
                "acc_aided": 0.68,
                "mcnemar_p": 0.25,
            },
            {
                "reader": "senior (simulated)",
                "auc_unaided": 0.75,
                "auc_aided": 0.80,
                "delong_p": 0.4,
                "acc_unaided": 0.76,
                "acc_aided": 0.80,
                "mcnemar_p": 0.5,
            },
        ]
    )
    table3 = pd.DataFrame(
        [
            {"split": "prospective", "model": "clinical_radiomics", "auc": 0.712, "accuracy": 0.64, "n": 25},
            {"split": "external", "model": "clinical_radiomics", "auc": 0.9, "accuracy": 0.85, "n": 52},
        ]
    )
    text = report._readers_worse_with_ai({"reader_tests": tests, "table3": table3}, True, "prospective")
    assert 'id="readers-worse"' in text and "Worse with AI here: junior (simulated)." in text
    assert "senior" not in text.split("In the study")[0]  # the senior improved: not listed
    # the model on the cases read, beside the reader without AI
    assert "(25 patients) the clinical-radiomics model had AUC 0.71 and accuracy 64.0% at its cut-off" in text
    assert "junior (simulated) without AI: AUC 0.74, accuracy 76.0%" in text and "blend" in text
    assert "With 25 patients" in text and "AUC 0.71 junior, 0.75 senior" in text
    better = tests.assign(auc_aided=[0.8, 0.8], acc_aided=[0.8, 0.8])
    assert (
        report._readers_worse_with_ai({"reader_tests": better, "table3": table3}, True, "prospective") == ""
    )
