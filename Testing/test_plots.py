"""Figures: each plot function on small synthetic inputs, real selection/nomogram objects, file output."""

from __future__ import annotations

import math
import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from report_inputs import SPLITS, make_evaluation, make_model_summary, make_nomogram_scale

from ALNMPredictorLib import SYNTHETIC_LABEL, plots
from ALNMPredictorLib.errors import ALNMError


@pytest.fixture(scope="module")
def evaluation():
    return make_evaluation()


@pytest.fixture(scope="module")
def summary():
    return make_model_summary()


def _texts(fig: Figure) -> list[str]:
    out = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        out += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        out += [t.get_text() for t in ax.texts]
        out += [t.get_text() for t in ax.get_xticklabels()]
        legend = ax.get_legend()
        if legend is not None:
            out += [t.get_text() for t in legend.get_texts()]
    for legend in fig.legends:
        out += [t.get_text() for t in legend.get_texts()]
    if fig._suptitle is not None:
        out.append(fig._suptitle.get_text())
    return out


def _visible_axes(fig: Figure) -> list:
    return [
        ax
        for ax in fig.axes
        if ax.get_visible() and ax.get_label() != "<colorbar>" and ax.get_position().width > 0
    ]


def test_roc_panels_legend_and_colours(evaluation) -> None:
    roc, t3 = evaluation.curves["roc"], evaluation.tables["table3"]
    fig = plots.plot_roc(roc, table3=t3)
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert [ax.get_title() for ax in panels] == [plots.split_label(s) for s in SPLITS]
    row = t3[(t3["split"] == "internal") & (t3["model"] == "clinical_radiomics")].iloc[0]
    expected = f"Clinical-radiomics model: AUC {row.auc:.2f} ({row.auc_low:.2f}–{row.auc_high:.2f})"
    legend = [t.get_text() for t in panels[1].get_legend().get_texts()]
    assert expected in legend
    assert len(legend) == 4
    # the combined model keeps its colour; curves start at (0, 0) and end at (1, 1)
    line = next(ln for ln in panels[0].get_lines() if ln.get_label().startswith("Clinical-radiomics"))
    assert matplotlib.colors.to_hex(line.get_color()) == plots.MODEL_COLORS["clinical_radiomics"].lower()
    x, y = line.get_data()
    assert (x[0], y[0], x[-1], y[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(x) >= 0)


def test_roc_subset_and_errors(evaluation) -> None:
    fig = plots.plot_roc(evaluation.curves["roc"], splits=["external"], models=["clinical", "ln_score"])
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert len(panels) == 1 and len(panels[0].get_legend().get_texts()) == 2
    with pytest.raises(ALNMError, match="sensitivity"):
        plots.plot_roc(evaluation.curves["roc"].drop(columns="sensitivity"))
    with pytest.raises(ALNMError, match="no rows for split"):
        plots.plot_roc(evaluation.curves["roc"], splits=["nowhere"])


def test_calibration_hl_in_title_and_points(evaluation) -> None:
    fig = plots.plot_calibration(
        evaluation.curves["calibration_binned"],
        smooth=evaluation.curves["calibration_smooth"],
        hosmer_lemeshow=evaluation.tables["hosmer_lemeshow"],
    )
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert all("Hosmer-Lemeshow p = .169" in t for t in titles) and len(titles) == 4
    ax = fig.axes[0]
    binned = evaluation.curves["calibration_binned"]
    part = binned[(binned.split == "train") & (binned.model == "clinical_radiomics")].sort_values("predicted")
    points = ax.containers[0].lines[0].get_ydata()
    assert np.allclose(points, part["observed"].to_numpy())
    with pytest.raises(ALNMError, match="no rows for model"):
        plots.plot_calibration(binned, model="nonexistent")


def test_decision_curves_have_reference_strategies(evaluation) -> None:
    fig = plots.plot_decision(evaluation.curves["decision"], splits=["internal", "external"])
    labels = [t.get_text() for t in fig.legends[0].get_texts()]  # one legend shared by the panels
    assert labels == [
        "Clinical model",
        "Tumor score",
        "LN score",
        "Clinical-radiomics model",
        "Treat all",
        "Treat none",
    ]
    for ax in [a for a in fig.axes if a.get_visible() and a.get_title()]:
        assert [ln.get_label() for ln in ax.get_lines()] == labels


def test_clinical_impact_and_cost_benefit_axis(evaluation) -> None:
    fig = plots.plot_clinical_impact(evaluation.curves["clinical_impact"], splits=["prospective"])
    texts = _texts(fig)
    assert "Number high risk" in texts and "Number high risk with ALNM" in texts
    assert "Number high risk (of 1,000)" in texts
    top = [child for ax in fig.axes for child in ax.child_axes if child.get_xlabel() == "Cost:Benefit ratio"]
    assert top and [t.get_text() for t in top[0].get_xticklabels()] == ["1:9", "1:3", "1:1", "3:1", "9:1"]


def test_risk_groups_bar_heights_and_labels(evaluation) -> None:
    groups = evaluation.tables["risk_groups"]
    fig = plots.plot_risk_groups(groups, splits=["train"])
    ax = [a for a in fig.axes if a.get_visible() and a.get_title()][0]
    heights = [p.get_height() for p in ax.patches[:2]]
    assert heights == pytest.approx([62 / 70, 9 / 50])
    assert "88.6%\n(62/70)" in _texts(fig)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["High risk", "Low risk"]


def test_nomogram_rows_and_patient_mark() -> None:
    scale = make_nomogram_scale()
    fig = plots.plot_nomogram(scale)
    texts = _texts(fig)
    for row in ("Points", "US-reported ALNM", "Tumor score", "LN score", "Total Points", "Risk of ALNM"):
        assert row in texts
    assert "Absent" in texts and "Present" in texts and "▲ cut-off 0.701" in texts
    patient = {"us_reported_alnm": 13.4, "tumor_score": 60.0, "ln_score": 75.0}
    fig = plots.plot_nomogram(scale, patient)
    total = sum(patient.values())
    risk = 1 / (1 + math.exp(-(scale["lp_offset"] + total / scale["points_per_unit_lp"])))
    assert f"patient: {total:.0f} points, risk {risk:.2f}" in _texts(fig)
    with pytest.raises(ALNMError, match="nomogram"):
        plots.plot_nomogram({"axes": []})


def test_nomogram_tick_labels_never_overlap() -> None:
    scale = make_nomogram_scale()
    # crowded risk axis: a tick every 0.05
    ppu, offset = scale["points_per_unit_lp"], scale["lp_offset"]
    scale["probability_ticks"] = [
        (p, (math.log(p / (1 - p)) - offset) * ppu) for p in np.arange(0.05, 0.96, 0.05)
    ]
    scale["probability_ticks"] = [
        (round(p, 2), t) for p, t in scale["probability_ticks"] if 0 <= t <= scale["max_total_points"]
    ]
    fig = plots.plot_nomogram(scale, synthetic=True)
    ax = fig.axes[0]
    fig.draw_without_rendering()
    labels = [t for t in ax.texts if t.get_fontsize() == 9]
    boxes = [t.get_window_extent() for t in labels]
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert not boxes[i].overlaps(boxes[j]), (labels[i].get_text(), labels[j].get_text())
    shown = {t.get_text() for t in labels}
    assert {"0.05", "0.5", "0.95"} & shown  # some risk labels survive


def test_nomogram_from_a_fitted_model() -> None:
    from ALNMPredictorLib.modeling import fit_logistic_model

    rng = np.random.default_rng(3)
    n = 80
    y = rng.integers(0, 2, n)
    data = pd.DataFrame(
        {
            "tumor_size": rng.normal(2.5, 1, n) + y,
            "us_reported_alnm": np.where(rng.random(n) < 0.3 + 0.4 * y, "present", "absent"),
            "ln_score": rng.normal(0, 1, n) + 1.5 * y,
        },
        index=[f"P{i}" for i in range(n)],
    )
    model = fit_logistic_model(
        "clinical_radiomics",
        data,
        y,
        list(data.columns),
        categorical=["us_reported_alnm"],
        reference={"us_reported_alnm": "absent"},
        screen_p=None,
        stepwise_p=0.999,
    )
    points = model.points(data.iloc[:1]).iloc[0].to_dict()
    fig = plots.plot_nomogram(model.nomogram_scale(), points)
    prob = float(model.predict_proba(data.iloc[:1]).iloc[0])
    assert f"risk {prob:.2f}" in " ".join(_texts(fig))


def test_lasso_and_funnel_from_a_fitted_region_score() -> None:
    from ALNMPredictorLib.selection import RegionScore

    rng = np.random.default_rng(0)
    n = 80
    y = rng.integers(0, 2, n)
    x = pd.DataFrame(
        rng.normal(size=(n, 12)) + y[:, None] * np.linspace(0, 1, 12),
        index=[f"P{i}" for i in range(n)],
        columns=[f"tumor_f{j}" for j in range(12)],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # no re-segmentations: ICC step skipped
        score = RegionScore("tumor", lasso_folds=3, n_lambdas=20, mi_top_k=8).fit(x, y)
    path = plots.plot_lasso_path(
        score.lasso_path_,
        region="tumor",
        lambda_=score.lambda_,
        lambda_min=score.lambda_min_,
        lambda_1se=score.lambda_1se_,
    )
    ax = path.axes[0]
    n_features = score.lasso_path_.shape[1] - 1  # without the intercept
    assert len([ln for ln in ax.get_lines() if len(ln.get_xdata()) == len(score.lasso_path_)]) == n_features
    used = [ln for ln in ax.get_lines() if "(used)" in ln.get_label() or ln.get_label().startswith("λ used")]
    assert len(used) == 1 and used[0].get_xdata()[0] == pytest.approx(math.log(score.lambda_))
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("(used)" in t for t in legend)
    cv = plots.plot_lasso_cv(
        score.lasso_cv_, region="tumor", lambda_min=score.lambda_min_, lambda_1se=score.lambda_1se_
    )
    assert "LASSO cross-validation: Tumor score" in _texts(cv)
    funnel = plots.plot_selection_funnel({"tumor": score.log_})
    bars = [p.get_width() for p in funnel.axes[0].patches]
    assert bars == [float(score.log_["n_in"].iloc[0]), *score.log_["n_out"].astype(float)]


def test_funnel_two_regions_and_records(summary) -> None:
    fig = plots.plot_selection_funnel(summary["selection_logs"])
    widths = [p.get_width() for p in fig.axes[0].patches]
    assert widths[:7] == [979, 976, 950, 600, 120, 30, 12] and widths[7:] == [979, 976, 950, 600, 120, 30, 8]
    with pytest.raises(ALNMError, match="n_out"):
        plots.plot_selection_funnel({"ln": [{"step": "lasso", "n_in": 3}]})


def test_readers_figure(evaluation) -> None:
    metrics = evaluation.tables["reader_metrics"]
    fig = plots.plot_readers(metrics, roc=evaluation.curves["roc"], split="prospective", simulated=True)
    assert len(_visible_axes(fig)) >= 3
    texts = _texts(fig)
    assert any("SIMULATED" in t for t in texts)
    assert "0.71" in texts and "82.1%" in texts
    roc_axis = fig.axes[0]
    marks = {
        line.get_label(): (line.get_marker(), line.get_markersize())
        for line in roc_axis.lines
        if line.get_marker() != "None"
    }
    by_reader = {label.rsplit(" (", 1)[0]: m for label, m in marks.items()}
    assert len(set(by_reader.values())) == len(by_reader) >= 2  # coinciding readers stay distinguishable
    fig = plots.plot_readers(metrics)
    assert not any("SIMULATED" in t for t in _texts(fig))
    assert len([ax for ax in fig.axes if ax.get_title()]) == 2


def test_selection_stability(summary) -> None:
    fig = plots.plot_selection_stability(summary["selection_stability"], top=10, synthetic=True)
    axes = _visible_axes(fig)
    assert [ax.get_title() for ax in axes] == ["Tumor score", "LN score"]
    labels = [t.get_text() for t in axes[0].get_yticklabels()]
    assert len(labels) == 10 and labels[0] == "original_glcm_f0"  # the most often kept on top
    bars = [p for p in axes[0].patches]
    widths = sorted((round(b.get_y(), 3), b.get_width()) for b in bars)
    assert widths[-1][1] == pytest.approx(0.95)  # the top bar: bootstrap share of f0
    filled = [b for b in bars if b.get_facecolor()[:3] != (1.0, 1.0, 1.0)]
    assert len(filled) == 3  # three features in the final score
    assert SYNTHETIC_LABEL in _texts(fig)
    # without a bootstrap, the bars show the cross-fitting folds
    folds_only = [{**r, "bootstrap": None} for r in summary["selection_stability"]]
    fig = plots.plot_selection_stability(folds_only, top=5)
    assert _visible_axes(fig)[0].get_legend().get_texts()[0].get_text() == "cross-fitting folds"
    with pytest.raises(ALNMError, match="selection stability"):
        plots.plot_selection_stability([])


def test_labels_use_the_studys_wording() -> None:
    assert [plots.variable_label(v) for v in ("er", "pr", "her2", "ki67", "tumor_size_cm")] == [
        "ER status",
        "PR status",
        "HER2 status",
        "Ki-67 status",
        "Tumor size (cm)",
    ]
    assert [plots.level_label(v) for v in ("ge20", "lt20", "luminal_a", "non-circumscribed", "present")] == [
        "≥ 20%",
        "< 20%",
        "Luminal A",
        "Non-circumscribed",
        "Present",
    ]
    assert plots.variable_label("my_own_factor") == "My own factor"


def test_synthetic_watermark(evaluation) -> None:
    groups = evaluation.tables["risk_groups"]
    assert SYNTHETIC_LABEL in _texts(plots.plot_risk_groups(groups, synthetic=True))
    assert SYNTHETIC_LABEL not in _texts(plots.plot_risk_groups(groups))


def test_draw_all_names(evaluation, summary) -> None:
    names = set(plots.draw_all(evaluation, summary))
    assert names == {
        "roc",
        "calibration",
        "decision",
        "clinical_impact",
        "risk_groups",
        "nomogram",
        "selection_funnel",
        "lasso_path_tumor",
        "lasso_path_ln",
        "lasso_cv_tumor",
        "lasso_cv_ln",
        "selection_stability",
        "readers",
    }
    bare = make_evaluation(readers=False)
    assert "readers" not in plots.draw_all(bare, {})


def test_save_figure_writes_png_and_svg_atomically(tmp_path, summary) -> None:
    fig = plots.plot_nomogram(summary["nomogram"], synthetic=True)
    png, svg = plots.save_figure(fig, tmp_path / "figs", "nomogram")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    text = svg.read_text(encoding="utf-8")
    assert "<svg" in text and text.rstrip().endswith("</svg>")
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["nomogram.png", "nomogram.svg"]
    # SVG output is reproducible (no date, fixed hash salt)
    _, svg2 = plots.save_figure(fig, tmp_path / "again", "nomogram")
    assert svg2.read_bytes() == svg.read_bytes()
    with pytest.raises(ALNMError, match="plain file name"):
        plots.save_figure(fig, tmp_path, "../escape")


def test_no_global_pyplot_or_rc_state(evaluation) -> None:
    import matplotlib.pyplot as plt

    before = dict(matplotlib.rcParams)
    open_before = plt.get_fignums()
    plots.plot_decision(evaluation.curves["decision"], splits=["train"])
    assert plt.get_fignums() == open_before
    assert dict(matplotlib.rcParams) == before
