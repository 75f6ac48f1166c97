"""One self-contained HTML report of a study run: every table and figure, readable offline and on a phone.

:func:`write_report` writes ``report.html``: figures embedded as base64 data URIs, CSS inline, no
script, font, stylesheet or image fetched from anywhere. Sections have stable ids (:data:`SECTIONS`)
so tests, links and the Slicer module can address them. All text is HTML-escaped.

Formatting follows the study: p-values ``<.001`` / ``.043``, odds ratios with 2 decimals,
``AUC 0.91 (0.87–0.95)``, percentages with 1 decimal.
"""

from __future__ import annotations

import base64
import html
import importlib.metadata
import json
import math
import os
import platform
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ALNMPredictorLib import SYNTHETIC_LABEL, __version__
from ALNMPredictorLib.errors import ALNMError
from ALNMPredictorLib.fileio import write_text

__all__ = [
    "SECTIONS",
    "STUDY_TABLE3_AUC",
    "write_report",
    "render_report",
    "format_p",
    "format_or",
    "format_auc",
    "format_percent",
]

#: Section id → heading, in report order.
SECTIONS: dict[str, str] = {
    "summary": "Summary",
    "table1": "Table 1. Baseline characteristics",
    "table2": "Table 2. Univariable and multivariable logistic regression",
    "table3": "Table 3. Diagnostic performance at the training cut-off",
    "roc": "ROC curves",
    "table_s3": "Table S3. DeLong tests of the combined model",
    "table_s4": "Table S4. Reclassification: NRI and IDI",
    "calibration": "Calibration",
    "decision": "Decision curves",
    "clinical_impact": "Clinical impact curves",
    "risk_groups": "Risk groups",
    "optimism": "How much of the training performance is optimism",
    "selection": "Feature selection and region scores",
    "heatmaps": "Grad-CAM heatmaps of the deep features",
    "readers": "Reader study",
    "methods": "Methods, software and settings",
    "warnings": "Warnings and failed cases",
}

# Zhang et al., ultrasound deep-learning radiomics for ALNM, multicentre study: Table 3, AUC (95% CI)
# per set and model (Testing/fixtures/study_table3.json holds the study's table; a test keeps the two equal).
STUDY_TABLE3_AUC: dict[str, dict[str, tuple[float, float, float]]] = {
    "train": {
        "clinical": (0.78, 0.74, 0.82),
        "tumor_score": (0.80, 0.76, 0.84),
        "ln_score": (0.91, 0.87, 0.93),
        "clinical_radiomics": (0.94, 0.91, 0.96),
    },
    "internal": {
        "clinical": (0.79, 0.70, 0.86),
        "tumor_score": (0.76, 0.67, 0.84),
        "ln_score": (0.83, 0.77, 0.88),
        "clinical_radiomics": (0.92, 0.85, 0.96),
    },
    "external": {
        "clinical": (0.73, 0.67, 0.79),
        "tumor_score": (0.76, 0.70, 0.82),
        "ln_score": (0.88, 0.83, 0.92),
        "clinical_radiomics": (0.91, 0.87, 0.95),
    },
    "prospective": {
        "clinical": (0.75, 0.66, 0.82),
        "tumor_score": (0.81, 0.73, 0.88),
        "ln_score": (0.91, 0.85, 0.96),
        "clinical_radiomics": (0.95, 0.89, 0.98),
    },
}
STUDY_CITATION = "Zhang et al., multicentre ultrasound deep-learning radiomics study of ALNM, Table 3"

#: Multi-panel figures: on a phone they keep a legible width and scroll sideways.
_WIDE_FIGURES = {"nomogram", "roc", "calibration", "decision", "clinical_impact", "risk_groups", "readers"}
_PERCENT_COLUMNS = ("accuracy", "sensitivity", "specificity", "ppv", "npv")
_MIME = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
_VERSION_PACKAGES = (
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "matplotlib",
    "SimpleITK",
    "pydicom",
    "pillow",
    "pyradiomics-bhklab",
    "pyradiomics",
    "torch",
    "torchvision",
    "safetensors",
)

_CSS = """
:root{--fg:#1b1f24;--muted:#5b6470;--line:#d9dee4;--bg:#fff;--band:#f5f7f9;--accent:#0b5cad;--warn:#9a3412}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
color:var(--fg);background:var(--bg)}
main,header,footer,nav{max-width:1180px;margin:0 auto;padding:0 16px}
header{padding-top:18px}
h1{font-size:1.6rem;line-height:1.25;margin:.2em 0 .3em}
h2{font-size:1.3rem;margin:1.8em 0 .5em;padding-top:.6em;border-top:2px solid var(--line)}
h3{font-size:1.05rem;margin:1.2em 0 .4em}
p,li{max-width:75ch}
.muted{color:var(--muted);font-size:.92rem}
.synthetic{background:#b00000;color:#fff;font-weight:700;padding:10px 14px;border-radius:6px;margin:10px 0;
letter-spacing:.02em}
.simulated{background:#fff3cd;border:2px solid #b45309;color:#7c2d12;font-weight:700;padding:8px 12px;
border-radius:6px;margin:8px 0}
nav{position:sticky;top:0;z-index:5;background:rgba(255,255,255,.96);border-bottom:1px solid var(--line);
padding-top:6px;padding-bottom:6px}
nav ul{display:flex;flex-wrap:wrap;gap:2px 14px;list-style:none;margin:0;padding:0;font-size:.9rem}
nav li{white-space:nowrap}
nav a{color:var(--accent);text-decoration:none}
nav a:hover{text-decoration:underline}
.formula{background:var(--band);border:1px solid var(--line);border-radius:6px;padding:10px 12px;
font:14px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;white-space:pre-wrap;
overflow-wrap:anywhere;margin:.4em 0}
.table-wrap{overflow-x:auto;-webkit-overflow-scrolling:touch;margin:.5em 0 1em;border:1px solid var(--line);
border-radius:6px;max-width:100%}
table{border-collapse:collapse;font-size:.9rem;min-width:100%}
th,td{padding:5px 9px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top;white-space:nowrap}
td.text{white-space:normal;min-width:14em;overflow-wrap:anywhere}
tr.group td{border-top:2px solid #b8c0ca}
tr.study td{color:var(--muted);font-style:italic;font-size:.85rem}
thead th{background:var(--band);position:sticky;top:0;white-space:nowrap}
td.num,th.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
tbody tr:nth-child(even){background:#fafbfc}
td.study{color:var(--muted);font-style:italic}
caption{caption-side:bottom;text-align:left;padding:6px 9px;color:var(--muted);font-size:.85rem}
figure{margin:1em 0;padding:0}
figure img{display:block;max-width:100%;height:auto;border:1px solid var(--line);border-radius:4px;background:#fff}
figcaption{color:var(--muted);font-size:.88rem;margin-top:.3em}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,420px),1fr));gap:14px}
.summary-grid{display:grid;grid-template-columns:minmax(0,1fr);gap:10px}
.kv th{width:34%;white-space:normal}
.kv td{white-space:normal;overflow-wrap:anywhere}
.fig-scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
figure.wide img{max-width:min(100%,980px)}
.warn li{color:var(--warn)}
.note{color:var(--muted);font-style:italic}
footer{margin:2.5em auto 1.5em;color:var(--muted);font-size:.85rem}
@media (max-width:600px){body{font-size:15px}h1{font-size:1.3rem}h2{font-size:1.15rem}
nav ul{flex-wrap:nowrap;overflow-x:auto;-webkit-overflow-scrolling:touch}
th,td{padding:4px 6px}table{font-size:.84rem}main,header,footer,nav{padding:0 10px}}
@page{size:A4 landscape;margin:10mm}
@media print{body{font-size:10pt}nav{display:none}main,header,footer{max-width:none;padding:0}
h2{break-before:auto;break-after:avoid}figure,tr{break-inside:avoid}
.table-wrap{overflow:visible;border:none}table{font-size:7.5pt;min-width:0;width:100%}
th,td{white-space:normal;padding:2px 4px}thead th{position:static}td.text{min-width:0}
.grid2{display:block}figure img,figure.wide img{max-width:100%;width:auto;max-height:170mm}
.fig-scroll{overflow:visible}}
details{margin:.4em 0}summary{cursor:pointer;color:var(--accent)}
"""


# --------------------------------------------------------------------------------------------
# Number formatting


def _finite(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def format_p(p: Any) -> str:
    """p-value as in the study: ``<.001``, ``.043``, ``>.999``; ``—`` when missing."""
    if not _finite(p):
        return "—"
    p = float(p)
    if p < 0.001:
        return "<.001"
    if p > 0.999:
        return ">.999"
    return f"{p:.3f}".lstrip("0")


def _num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(v):
        return "—"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    text = f"{v:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.000"


def format_or(value: Any, low: Any = None, high: Any = None) -> str:
    """Odds ratio with 2 decimals and its CI: ``2.24 (1.19–4.21)``; ``—`` when missing."""
    if not _finite(value) and not (value is not None and _is_inf(value)):
        return "—"
    text = _num(value, 2)
    if low is not None and high is not None and (_finite(low) or _finite(high)):
        text += f" ({_num(low, 2)}–{_num(high, 2)})"
    return text


def _is_inf(value: Any) -> bool:
    try:
        return math.isinf(float(value))
    except (TypeError, ValueError):
        return False


def format_auc(auc: Any, low: Any = None, high: Any = None) -> str:
    """AUC with its CI: ``0.91 (0.87–0.95)``."""
    if not _finite(auc):
        return "—"
    text = f"{float(auc):.2f}"
    if _finite(low) and _finite(high):
        text += f" ({float(low):.2f}–{float(high):.2f})"
    return text


def format_percent(value: Any, *, fraction: bool = True) -> str:
    """A proportion (``fraction=True``) or a percentage as ``82.4%`` with 1 decimal."""
    if not _finite(value):
        return "—"
    v = float(value) * (100.0 if fraction else 1.0)
    return f"{v:.1f}%"


def _is_fraction_column(column: pd.Series) -> bool:
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    return not values.size or float(np.max(np.abs(values))) <= 1.0


# --------------------------------------------------------------------------------------------
# HTML building blocks


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _cell(value: str, cls: str = "") -> str:
    return f'<td class="{cls}">{_e(value)}</td>' if cls else f"<td>{_e(value)}</td>"


def _table(
    header: Sequence[str] | Sequence[Sequence[tuple[str, int]]],
    rows: Iterable[Sequence[str]],
    *,
    numeric: Sequence[int] = (),
    cls: str = "",
    caption: str = "",
    row_classes: Sequence[str] | None = None,
    table_id: str = "",
    text: Sequence[int] = (),
) -> str:
    """An HTML table (escaped) inside a horizontally scrolling wrapper.

    ``header``: column names, or rows of ``(text, colspan)`` for grouped headers. ``numeric``: column
    indexes aligned right; ``text``: column indexes of free text that may wrap.
    """
    numeric_set, text_set = set(numeric), set(text)
    head_rows: list[str] = []
    if header and isinstance(header[0], str):
        num = ' class="num"'
        cells = "".join(
            f'<th scope="col"{num if i in numeric_set else ""}>{_e(h)}</th>' for i, h in enumerate(header)
        )
        head_rows.append(f"<tr>{cells}</tr>")
    else:
        for hrow in header:
            cells = "".join(f'<th scope="col"{_colspan(span)}>{_e(text)}</th>' for text, span in hrow)
            head_rows.append(f"<tr>{cells}</tr>")
    body = []
    for k, row in enumerate(rows):
        tr_cls = f' class="{_e(row_classes[k])}"' if row_classes and row_classes[k] else ""
        cells = "".join(
            _cell(v, "num" if i in numeric_set else "text" if i in text_set else "")
            for i, v in enumerate(row)
        )
        body.append(f"<tr{tr_cls}>{cells}</tr>")
    attrs = f' class="{_e(cls)}"' if cls else ""
    attrs += f' id="{_e(table_id)}"' if table_id else ""
    cap = f"<caption>{_e(caption)}</caption>" if caption else ""
    return (
        f'<div class="table-wrap"><table{attrs}>{cap}<thead>{"".join(head_rows)}</thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _colspan(span: int) -> str:
    return f' colspan="{int(span)}"' if span > 1 else ""


def _kv_table(pairs: Iterable[tuple[str, Any]], table_id: str = "") -> str:
    rows = [(k, v if isinstance(v, str) else _plain_text(v)) for k, v in pairs]
    if not rows:
        return '<p class="note">None recorded.</p>'
    body = "".join(f'<tr><th scope="row">{_e(k)}</th><td>{_e(v)}</td></tr>' for k, v in rows)
    tid = f' id="{_e(table_id)}"' if table_id else ""
    return f'<div class="table-wrap"><table class="kv"{tid}><tbody>{body}</tbody></table></div>'


def _plain_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, Mapping | list | tuple):
        try:
            return json.dumps(value, default=str, ensure_ascii=False)
        except (TypeError, ValueError):
            return str(value)
    return str(value)


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.extend(_flatten(value, f"{name}."))
        else:
            out.append((name, value))
    return out


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


class _Figures:
    """Figure name → data URI, from a given file or else drawn from the data on demand."""

    def __init__(
        self,
        given: Mapping[str, Any] | None,
        drawer: Callable[[str], Any],
        warnings: list[str],
        progress: Callable[[str], None] | None,
    ) -> None:
        self._given = dict(given or {})
        self._drawer = drawer
        self._warnings = warnings
        self._progress = progress

    def _from_file(self, name: str, value: Any) -> str | None:
        if isinstance(value, list | tuple):
            paths = [Path(v) for v in value]
            value = next((p for p in paths if p.suffix.lower() == ".png"), paths[0] if paths else None)
        if value is None:
            return None
        path = Path(value)
        mime = _MIME.get(path.suffix.lower())
        if mime is None:
            self._warnings.append(f"figure {name}: {path} is not a PNG, SVG or JPEG file; not embedded")
            return None
        try:
            data = path.read_bytes()
        except OSError as exc:
            self._warnings.append(f"figure {name}: cannot read {path} ({exc.strerror or exc}); not embedded")
            return None
        if not data:
            self._warnings.append(f"figure {name}: {path} is empty; not embedded")
            return None
        return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"

    def uri(self, name: str) -> str | None:
        if name in self._given:
            uri = self._from_file(name, self._given[name])
            if uri is not None:
                return uri
        fig = self._drawer(name)
        if fig is None:
            return None
        from ALNMPredictorLib.plots import figure_bytes

        if self._progress is not None:
            self._progress(name)
        data = figure_bytes(fig, "png")
        return f"data:image/png;base64,{base64.b64encode(data).decode('ascii')}"

    def html(self, name: str, alt: str, caption: str = "", *, wide: bool = False) -> str:
        """A <figure> with the image embedded; ``wide`` keeps it legible (scrolling) on a phone."""
        wide = wide or name in _WIDE_FIGURES
        uri = self.uri(name)
        if uri is None:
            return _note(f"{alt}: not available for this run.")
        cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
        img = f'<img src="{uri}" alt="{_e(alt)}" loading="eager">'
        if wide:
            return (
                f'<figure id="fig-{_e(name)}" class="wide"><div class="fig-scroll">{img}</div>{cap}</figure>'
            )
        return f'<figure id="fig-{_e(name)}">{img}{cap}</figure>'


# --------------------------------------------------------------------------------------------
# Sections


def _tables(evaluation: Any) -> dict[str, pd.DataFrame]:
    tables = getattr(evaluation, "tables", None) or {}
    return {k: v for k, v in tables.items() if isinstance(v, pd.DataFrame)}


def _split_order(values: Iterable[Any]) -> list[str]:
    from ALNMPredictorLib.plots import split_order as order

    return order(values)


def _model_order(values: Iterable[Any]) -> list[str]:
    from ALNMPredictorLib.plots import model_order as order

    return order(values)


def _labels() -> tuple[Callable[[str], str], Callable[[str], str], Callable[[str], str]]:
    from ALNMPredictorLib.plots import model_label, split_label, variable_label

    return model_label, split_label, variable_label


def _auc_matrix(table3: pd.DataFrame, study: bool) -> str:
    model_label, split_label, _ = _labels()
    splits = _split_order(table3["split"])
    models = _model_order(table3["model"])
    header = ["Model", *(split_label(s) for s in splits)]
    rows = []
    counts = []
    for s in splits:
        part = table3[table3["split"].astype(str) == s]
        if "n" in part and len(part):
            n = part["n"].iloc[0]
            ev = part["n_events"].iloc[0] if "n_events" in part else None
            counts.append(f"n = {_num(n, 0)}" + (f", ALNM {_num(ev, 0)}" if _finite(ev) else ""))
        else:
            counts.append("")
    if any(counts):
        rows.append(["Patients", *counts])
    classes = [""] * len(rows)
    for m in models:
        row = [model_label(m)]
        for s in splits:
            hit = table3[(table3["split"].astype(str) == s) & (table3["model"].astype(str) == m)]
            row.append(
                format_auc(*(hit.iloc[0].get(c) for c in ("auc", "auc_low", "auc_high"))) if len(hit) else "—"
            )
        rows.append(row)
        classes.append("")
        if study and any(m in STUDY_TABLE3_AUC.get(s, {}) for s in splits):
            ref = [STUDY_TABLE3_AUC.get(s, {}).get(m) for s in splits]
            rows.append(["  published study", *(format_auc(*r) if r else "—" for r in ref)])
            classes.append("study")
    caption = "AUC (95% CI, DeLong) per set."
    if study:
        caption += f" Published study: {STUDY_CITATION}."
    return _table(
        header,
        rows,
        numeric=range(1, len(header)),
        caption=caption,
        table_id="auc-summary",
        row_classes=classes,
    )


def _section_summary(
    ev: Any, ms: Mapping[str, Any], figs: _Figures, study: bool, n_warn: int, n_failed: int
) -> str:
    model_label, _, _ = _labels()
    parts = []
    formula = ms.get("formula")
    parts.append("<h3>Clinical-radiomics model (Nomo-score)</h3>")
    parts.append(
        f'<div class="formula" id="combined-formula">{_e(formula)}</div>'
        if formula
        else _note("No model formula given.")
    )
    if _finite(ms.get("cutoff")):
        parts.append(
            f"<p>Youden cut-off of the Nomo-score on the training set: <strong>{_num(ms['cutoff'], 3)}</strong>, applied unchanged to every test set.</p>"
        )  # noqa: E501
    if ms.get("random_backbone"):
        parts.insert(
            0, f'<div class="simulated" id="random-backbone" role="note">{_e(ms["random_backbone"])}</div>'
        )
    region_formulas = ms.get("region_formulas") or {}
    if region_formulas:
        parts.append("<h3>Region scores</h3>")
        parts.extend(
            f'<div class="formula">{_e(_mark_random_deep(text, ms))}</div>'
            for text in region_formulas.values()
        )
    table3 = _tables(ev).get("table3")
    parts.append("<h3>Discrimination (AUC)</h3>")
    parts.append(
        _auc_matrix(table3, study)
        if table3 is not None and not table3.empty
        else _note("Table 3 not available.")
    )
    notes = []
    if n_warn:
        notes.append(f"{n_warn} warning(s)")
    if n_failed:
        notes.append(f"{n_failed} failed case(s)")
    if notes:
        parts.append(
            f'<p class="muted">This run recorded {_e(" and ".join(notes))}: see <a href="#warnings">Warnings</a>.</p>'
        )
    parts.append(
        figs.html(
            "nomogram",
            "Nomogram of the clinical-radiomics model",
            "Nomogram: read each predictor's points, add them up, and read the risk of ALNM "
            "under the total; the triangle marks the training cut-off.",
            wide=True,
        )
    )
    return "".join(parts)


def _mark_random_deep(formula: str, ms: Mapping[str, Any]) -> str:
    """A score formula with each deep feature marked when the backbone was random."""
    if not ms.get("random_backbone"):
        return formula
    import re

    return re.sub(r"\b(\w+_deep_\d{3})\b", r"\1 [RANDOM backbone]", formula)


def _section_table1(ev: Any) -> str:
    _, split_label, variable_label = _labels()
    t1 = _tables(ev).get("table1")
    if t1 is None or t1.empty:
        return _note("Table 1 not available.")
    fixed = {"characteristic", "level", "p_value", "statistical_test"}
    splits = [c for c in t1.columns if c not in fixed]
    header = ["Characteristic", "Level", *(split_label(s) for s in splits), "p", "Test"]
    rows, previous = [], None
    for rec in t1.to_dict(orient="records"):
        name = str(rec.get("characteristic", ""))
        rows.append(
            [
                variable_label(name) if name != previous else "",
                _level(rec.get("level")),
                *(_text(rec.get(s)) for s in splits),
                format_p(rec.get("p_value")) if _finite(rec.get("p_value")) else "",
                _text(rec.get("statistical_test")),
            ]
        )
        previous = name
    return _table(header, rows, numeric=[len(splits) + 2], caption="Mean ± SD or n (%). p across sets.")


def _level(value: Any) -> str:
    """A categorical level as the study writes it (see :func:`ALNMPredictorLib.plots.level_label`)."""
    from ALNMPredictorLib.plots import level_label

    text = _text(value)
    return level_label(text) if text else ""


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _section_table2(ev: Any, ms: Mapping[str, Any]) -> str:
    _, _, variable_label = _labels()
    t2 = _tables(ev).get("table2")
    if t2 is None or t2.empty:
        return _note("Table 2 not available.") + _model_notes(ms)
    header = [
        [("", 1), ("Univariable", 2), ("Clinical model", 2), ("Clinical-radiomics model", 2)],
        [("Variable", 1), *([("OR (95% CI)", 1), ("p", 1)] * 3)],
    ]
    rows = []
    for rec in t2.to_dict(orient="records"):
        name = variable_label(str(rec.get("variable", "")))
        level, reference = _level(rec.get("level")), _level(rec.get("reference"))
        if level and reference:
            level = f"{level} vs {reference}"
        row = [f"{name}: {level}" if level else name]
        for prefix in ("uni", "clin", "cr"):
            value = rec.get(f"{prefix}_or")
            row.append(format_or(value, rec.get(f"{prefix}_low"), rec.get(f"{prefix}_high")))
            row.append(format_p(rec.get(f"{prefix}_p")) if _finite(value) else "—")
        rows.append(row)
    table = _table(
        header,
        rows,
        numeric=range(1, 7),
        table_id="table2-data",
        caption="Odds ratios from logistic regression (training set), Wald 95% CIs; — = not in that model.",
    )
    return table + _model_notes(ms)


def _model_notes(ms: Mapping[str, Any]) -> str:
    """The fit's notes (Firth, variables left out, skipped filters) by model, under Table 2."""
    model_label, _, _ = _labels()
    notes = ms.get("model_notes") or {}
    items = [
        f"<li><strong>{_e(model_label(name))}</strong>: {_e(note)}</li>"
        for name in _model_order(notes)
        for note in notes.get(name) or []
    ]
    if not items:
        return ""
    return f'<div class="note" id="model-notes"><p>Notes on the fitted models:</p><ul>{"".join(items)}</ul></div>'


def _section_table3(ev: Any, study: bool) -> str:
    model_label, split_label, _ = _labels()
    t3 = _tables(ev).get("table3")
    if t3 is None or t3.empty:
        return _note("Table 3 not available.")
    fraction = {c: _is_fraction_column(t3[c]) for c in _PERCENT_COLUMNS if c in t3}
    header = ["Set", "Model", "AUC (95% CI)"]
    if study:
        header.append("Study AUC (95% CI)")
    header += ["ACC", "SEN", "SPE", "PPV", "NPV", "Cut-off", "n (ALNM)"]
    rows, classes = [], []
    splits = _split_order(t3["split"])
    for s in splits:
        part = t3[t3["split"].astype(str) == s]
        for k, m in enumerate(_model_order(part["model"])):
            rec = part[part["model"].astype(str) == m].iloc[0]
            auc = format_auc(rec.get("auc"), rec.get("auc_low"), rec.get("auc_high"))
            row = [split_label(s) if k == 0 else "", model_label(m), auc]
            if study:
                ref = STUDY_TABLE3_AUC.get(s, {}).get(m)
                row.append(format_auc(*ref) if ref else "—")
            row += [_percent_ci(rec, c, fraction.get(c, True)) for c in _PERCENT_COLUMNS]
            row.append(_num(rec.get("cutoff"), 3))
            n, e = rec.get("n"), rec.get("n_events")
            row.append(f"{_num(n, 0)} ({_num(e, 0)})" if _finite(n) else "—")
            rows.append(row)
            classes.append("group" if k == 0 else "")
    caption = (
        "ACC accuracy, SEN sensitivity, SPE specificity, PPV/NPV positive/negative predictive value, at the "
        "training Youden cut-off, with 95% Clopper-Pearson CIs."
    )
    if study:
        caption += f" Study AUC: {STUDY_CITATION}."
    return _table(
        header,
        rows,
        numeric=range(2, len(header)),
        caption=caption,
        table_id="table3-data",
        row_classes=classes,
    )


def _percent_ci(rec: Mapping[str, Any], column: str, fraction: bool) -> str:
    """``82.4% (75.1–88.2)``: a Table 3 metric with its CI (table3.csv's ``<metric>_low/_high``) where there is one."""
    text = format_percent(rec.get(column), fraction=fraction)
    low, high = rec.get(f"{column}_low"), rec.get(f"{column}_high")
    if _finite(rec.get(column)) and _finite(low) and _finite(high):
        scale = 100.0 if fraction else 1.0
        text += f" ({float(low) * scale:.1f}–{float(high) * scale:.1f})"
    return text


def _section_table_s3(ev: Any) -> str:
    model_label, split_label, _ = _labels()
    t = _tables(ev).get("table_s3")
    if t is None or t.empty:
        return _note("Table S3 not available.")
    rows = [
        [
            split_label(str(r["split"])),
            f"{model_label(str(r['model_a']))} vs {model_label(str(r['model_b']))}",
            _num(r.get("auc_a")),
            _num(r.get("auc_b")),
            _num(r.get("z")),
            format_p(r.get("p")),
        ]
        for r in t.to_dict(orient="records")
    ]
    return _table(
        ["Set", "Comparison", "AUC A", "AUC B", "Z", "p"],
        rows,
        numeric=range(2, 6),
        caption="Paired DeLong tests.",
    )


def _section_table_s4(ev: Any) -> str:
    _, split_label, _ = _labels()
    t = _tables(ev).get("table_s4")
    if t is None or t.empty:
        return _note("Table S4 not available.")
    categorical = "nri_cat" in t.columns and t["nri_cat"].notna().any()
    rows = []
    for r in t.to_dict(orient="records"):
        row = [
            split_label(str(r["split"])),
            format_or(r.get("nri"), r.get("nri_low"), r.get("nri_high")),
            format_p(r.get("nri_p")),
            _num(r.get("nri_events")),
            _num(r.get("nri_nonevents")),
            format_or(r.get("idi"), r.get("idi_low"), r.get("idi_high")),
            format_p(r.get("idi_p")),
        ]
        if categorical:
            row += [
                format_or(r.get("nri_cat"), r.get("nri_cat_low"), r.get("nri_cat_high")),
                format_p(r.get("nri_cat_p")),
            ]
        rows.append(row)
    header = ["Set", "NRI (95% CI)", "p", "NRI events", "NRI non-events", "IDI (95% CI)", "p"]
    caption = "Clinical-radiomics vs clinical model; continuous NRI and IDI"
    if categorical:
        header += ["NRI at cut-off (95% CI)", "p"]
        cut = t["nri_cat_cutoff"].dropna() if "nri_cat_cutoff" in t.columns else pd.Series(dtype=float)
        caption += "; categorical NRI at the combined model's cut-off" + (
            f" ({_num(cut.iloc[0], 3)})" if len(cut) else ""
        )
    return _table(
        header, rows, numeric=range(1, len(header)), caption=caption + ".", table_id="table-s4-data"
    )


def _section_calibration(ev: Any, figs: _Figures) -> str:
    model_label, split_label, _ = _labels()
    tables = _tables(ev)
    parts = []
    hl = tables.get("hosmer_lemeshow")
    cal = tables.get("calibration")
    if hl is not None and not hl.empty:
        notes = "note" in hl.columns and hl["note"].fillna("").astype(str).str.strip().ne("").any()
        rows = [
            [
                split_label(str(r["split"])),
                model_label(str(r["model"])),
                _num(r.get("statistic")),
                _num(r.get("df"), 0),
                format_p(r.get("p")),
                *([_text(r.get("note"))] if notes else []),
            ]
            for r in hl.to_dict(orient="records")
        ]
        parts.append("<h3>Hosmer-Lemeshow test</h3>")
        header = ["Set", "Model", "χ²", "df", "p", *(["Note"] if notes else [])]
        parts.append(
            _table(
                header,
                rows,
                numeric=range(2, 5),
                table_id="hl-data",
                text=[5] if notes else (),
                caption="10 risk groups. A Hosmer-Lemeshow test is unreliable on small sets (n < 100) and "
                "with sparse groups (expected counts below 5): read the calibration curve and the "
                "intercept and slope instead.",
            )
        )
    if cal is not None and not cal.empty:
        rows = [
            [
                split_label(str(r["split"])),
                model_label(str(r["model"])),
                _value_ci(r, "intercept"),
                _value_ci(r, "slope"),
                _num(r.get("brier"), 3),
            ]
            for r in cal.to_dict(orient="records")
        ]
        parts.append("<h3>Calibration intercept, slope and Brier score</h3>")
        parts.append(
            _table(
                ["Set", "Model", "Intercept", "Slope", "Brier"],
                rows,
                numeric=range(2, 5),
                table_id="calibration-stats",
                caption="Logistic recalibration y ~ a + b·logit(p) (ideal a = 0, b = 1), 95% outcome-stratified "
                "percentile-bootstrap CIs.",
            )
        )
    parts.append(
        figs.html(
            "calibration",
            "Calibration curves per set",
            "Grouped observed proportion (95% CI) against predicted probability, lowess smooth, "
            "and the diagonal of perfect calibration.",
        )
    )
    return "".join(parts)


def _value_ci(rec: Mapping[str, Any], name: str, digits: int = 3) -> str:
    """``value (low–high)`` with the ``<name>_low``/``<name>_high`` CI when there is one."""
    text = _num(rec.get(name), digits)
    low, high = rec.get(f"{name}_low"), rec.get(f"{name}_high")
    if _finite(rec.get(name)) and _finite(low) and _finite(high):
        text += f" ({_num(low, digits)}–{_num(high, digits)})"
    return text


def _section_risk_groups(ev: Any, figs: _Figures) -> str:
    _, split_label, _ = _labels()
    t = _tables(ev).get("risk_groups")
    parts = []
    if t is not None and not t.empty:
        fisher = "p_fisher" in t.columns and t["p_fisher"].notna().any()
        rows, classes, previous = [], [], None
        for r in t.to_dict(orient="records"):
            n, e = r.get("n"), r.get("n_events")
            prop = r.get("proportion")
            if not _finite(prop):
                prop = float(e) / float(n) if _finite(n) and float(n) > 0 and _finite(e) else None
            share = format_percent(prop)
            if _finite(prop) and _finite(r.get("low")) and _finite(r.get("high")):
                share += f" ({100 * float(r['low']):.1f}–{100 * float(r['high']):.1f})"
            split = str(r["split"])
            row = [
                split_label(split) if split != previous else "",
                str(r["risk_group"]).replace("_", " ").capitalize(),
                _num(n, 0),
                _num(e, 0),
                share,
            ]
            if fisher:
                row.append(format_p(r.get("p_fisher")) if split != previous else "")
            classes.append("group" if split != previous and previous is not None else "")
            previous = split
            rows.append(row)
        header = ["Set", "Risk group", "n", "ALNM", "ALNM % (95% CI)", *(["Fisher p"] if fisher else [])]
        parts.append(
            _table(
                header,
                rows,
                numeric=range(2, len(header)),
                row_classes=classes,
                table_id="risk-data",
                caption="High risk: Nomo-score at or above the training cut-off.",
            )
        )
    parts.append(
        figs.html(
            "risk_groups",
            "Proportion of ALNM in the high- and low-risk groups",
            "Proportion of ALNM in the high- and low-risk groups of each set (as the study's Figure 1B–D).",
        )
    )
    return "".join(parts)


def _records(value: Any) -> pd.DataFrame:
    if isinstance(value, pd.DataFrame):
        return value
    try:
        return pd.DataFrame(list(value or []))
    except (TypeError, ValueError):
        return pd.DataFrame()


_OPTIMISM_NAMES = {
    "auc": "AUC",
    "intercept": "Calibration intercept",
    "slope": "Calibration slope",
    "brier": "Brier score",
}
#: features per region shown in the selection-stability table (all of them are in tables/selection_stability.csv)
STABILITY_ROWS = 20


def _section_optimism(ev: Any, ms: Mapping[str, Any], figs: _Figures) -> str:
    model_label, split_label, _ = _labels()
    parts = []
    if ms.get("score_fit"):
        parts.append(
            f'<p id="score-fit"><strong>Region scores in the second stage:</strong> {_e(ms["score_fit"])}.</p>'
        )
    validation = ms.get("internal_validation") or {}
    table = validation.get("table") or {}
    if table:
        n_boot, n_used = validation.get("n_boot"), validation.get("n_used")
        used = f"{_num(n_used, 0)} of {_num(n_boot, 0)}" if n_used != n_boot else f"{_num(n_boot, 0)}"
        parts.append(
            f"<p>Harrell's bootstrap (as R rms <code>validate</code>): the whole fitting procedure (region scores "
            f"with their selection chain, univariate screen, stepwise model) was repeated in {_e(used)} bootstrap "
            f"resamples of the training cases (seed {_e(validation.get('seed'))}). Each refit's performance on its own "
            "resample, less its performance on the original training cases, is that resample's optimism; the "
            "corrected value is the apparent one less the mean optimism. A calibration slope below 1 means the "
            "model's predictions are too extreme on new patients and should be shrunk.</p>"
        )
        rows = []
        for key, name in _OPTIMISM_NAMES.items():
            rec = table.get(key) or {}
            values = [_num(rec.get(c), 3) for c in ("apparent", "training", "test", "optimism", "corrected")]
            rows.append([name, *values, _num(rec.get("n"), 0) if _finite(rec.get("n")) else "—"])
        parts.append(
            _table(
                [
                    "Index",
                    "Apparent",
                    "Bootstrap training",
                    "Bootstrap test",
                    "Optimism",
                    "Corrected",
                    "Resamples",
                ],
                rows,
                numeric=range(1, 7),
                table_id="optimism-table",
                caption=f"{model_label('clinical_radiomics')}, training set: apparent and optimism-corrected performance. "
                "Resamples: refits in which the index exists (a calibration slope does not where a refit separates its "
                "cases completely).",
            )
        )
        failures = validation.get("failures") or []
        if failures:
            parts.append(
                _note(
                    f"{len(failures)} resample(s) could not be refitted and were left out, e.g. {failures[0]}."
                )
            )
    else:
        parts.append(
            _note(
                "The internal validation corrected for optimism was not run for this model "
                "(setting optimism_boot = 0, or a model saved before it existed)."
            )
        )
    table3 = _tables(ev).get("table3")
    if table3 is not None and not table3.empty:
        train_split = str((getattr(ev, "summary", None) or {}).get("train_split") or "train")
        splits = _split_order(table3["split"])
        tests = [x for x in splits if x != train_split]
        header = [
            "Model",
            f"{split_label(train_split)} (apparent)",
            f"{split_label(train_split)} (corrected)",
            *(split_label(x) for x in tests),
        ]
        corrected = (table.get("auc") or {}).get("corrected")
        rows = []
        for m in _model_order(table3["model"]):

            def auc(split: str, model: str = m) -> str:
                hit = table3[(table3["split"].astype(str) == split) & (table3["model"].astype(str) == model)]
                return _num(hit.iloc[0].get("auc"), 3) if len(hit) else "—"

            fixed = _num(corrected, 3) if m == "clinical_radiomics" and _finite(corrected) else "—"
            rows.append([model_label(m), auc(train_split), fixed, *(auc(x) for x in tests)])
        parts.append(
            _table(
                header,
                rows,
                numeric=range(1, len(header)),
                table_id="optimism-auc",
                caption="AUC of every model: on the training set as fitted (apparent), corrected for "
                "optimism (clinical-radiomics model), and on each test set.",
            )
        )
    stability = _records(ms.get("selection_stability"))
    if not stability.empty:
        parts.append("<h3>Selection stability</h3>")
        parts.append(
            "<p>How often each region feature was kept by the selection chain (ICC filter, redundancy, mutual "
            "information, LASSO): in the cross-fitting folds and in the bootstrap resamples. Features kept "
            "rarely are chance findings of this training set.</p>"
        )
        parts.append(
            figs.html(
                "selection_stability",
                "Selection stability of the region-score features",
                "Share of cross-fitting folds and bootstrap resamples whose selection kept each feature; "
                "filled: in the final score.",
                wide=True,
            )
        )
        for region, part in stability.groupby(stability["region"].astype(str), sort=False):
            rows = [
                [
                    _text(r.get("feature")),
                    "yes" if bool(r.get("final")) else "",
                    format_percent(r.get("crossfit")) if _finite(r.get("crossfit")) else "—",
                    format_percent(r.get("bootstrap")) if _finite(r.get("bootstrap")) else "—",
                ]
                for r in part.head(STABILITY_ROWS).to_dict(orient="records")
            ]
            more = len(part) - STABILITY_ROWS
            caption = f"{model_label(f'{region}_score')}: the {min(len(part), STABILITY_ROWS)} most often kept features"
            caption += f" ({more} more in tables/selection_stability.csv)." if more > 0 else "."
            parts.append(
                _table(
                    ["Feature", "In final score", "Cross-fitting folds", "Bootstrap resamples"],
                    rows,
                    numeric=[2, 3],
                    caption=caption,
                    table_id=f"stability-{region}",
                )
            )
    return "".join(parts)


def _section_heatmaps(gallery: Mapping[str, Any] | None, figs: _Figures) -> str:
    """Grad-CAM gallery (:func:`ALNMPredictorLib.gradcam.report_gallery`): per test set and category, the
    cases' heatmaps, and the randomised-head sanity check; a note when the run has none."""
    if not gallery:
        return _note(
            "No Grad-CAM heatmaps: the model has no deep features, or this report was written without "
            "them (alnm run and alnm evaluate draw them for a model with deep features)."
        )
    parts = [
        "<p>Grad-CAM (Selvaraju et al. 2017) on each region's ROI crop (white outline: the ROI): where the deep "
        "head's ALNM logit, and the deep part of the region score where the score kept deep features, are raised "
        "by what the network sees. Shown: a few true/false positives/negatives per test set at the training "
        "cut-off, the most confident of each (combined model). A heatmap shows what moves the deep features, "
        "not a finding.</p>"
    ]
    sanity = (gallery.get("sanity") or {}).get("regions") or {}
    if sanity:
        texts = [
            f"{_e(region)} {_num(v.get('mean_spearman'), 2)} (n = {_e(v.get('n'))})"
            for region, v in sanity.items()
        ]
        parts.append(
            "<p>Sanity check (Adebayo et al. 2018): with the head's weights re-drawn at random, the Spearman rank "
            "correlation between its maps and the trained head's maps, mean over the crops below: "
            + "; ".join(texts)
            + ". Near 0: the maps depend on what the head learned; near 1 they would not.</p>"
        )
    items = list(gallery.get("items") or [])
    if not items:
        parts.append(_note("No heatmap could be drawn for this run."))
    for split in dict.fromkeys(str(i.get("split")) for i in items):
        parts.append(f"<h3>{_e(split)}</h3>")
        for category in dict.fromkeys(str(i.get("category")) for i in items if str(i.get("split")) == split):
            chosen = [i for i in items if str(i.get("split")) == split and str(i.get("category")) == category]
            parts.append(f'<h4>{_e(category)}</h4><div class="grid2">')
            for item in chosen:
                uri = figs._from_file(f"heatmap {item.get('case_id')}", item.get("file"))
                if uri is None:
                    continue
                what = "deep head" if item.get("target") == "head" else "region score (deep part)"
                caption = (
                    f"case {item.get('case_id')}, {item.get('region')}, {what}; label {item.get('label')}, "
                    f"probability {_num(item.get('probability'), 3)}"
                )
                parts.append(
                    f'<figure><img src="{uri}" alt="{_e(caption)}" loading="eager">'
                    f"<figcaption>{_e(caption)}</figcaption></figure>"
                )
            parts.append("</div>")
    for text in gallery.get("failed") or []:
        parts.append(_note(f"not drawn: {text}"))
    return "".join(parts)


def _section_selection(ms: Mapping[str, Any], figs: _Figures) -> str:
    model_label, _, _ = _labels()
    parts = [
        figs.html(
            "selection_funnel",
            "Feature-selection funnel",
            "Features left after each selection step, per region.",
        )
    ]
    logs = ms.get("selection_logs") or {}
    regions = list(
        dict.fromkeys(
            [
                *logs,
                *(ms.get("region_formulas") or {}),
                *(ms.get("region_formula_tables") or {}),
                *(ms.get("lasso_path") or {}),
                *(ms.get("lasso_cv") or {}),
            ]
        )
    )
    if not regions:
        parts.append(_note("No region-score selection details given."))
    for region in regions:
        title = model_label(f"{region}_score")
        parts.append(f'<h3 id="selection-{_e(region)}">{_e(title)}</h3>')
        formula = (ms.get("region_formulas") or {}).get(region)
        if formula:
            parts.append(f'<div class="formula">{_e(_mark_random_deep(formula, ms))}</div>')
        log = _records(logs.get(region))
        if not log.empty:
            cols = [c for c in ("step", "n_in", "n_out", "removed", "why", "warning") if c in log.columns]
            rows = [
                [_text(r.get(c)) if c not in ("n_in", "n_out") else _num(r.get(c), 0) for c in cols]
                for r in log.to_dict(orient="records")
            ]
            names = {
                "step": "Step",
                "n_in": "In",
                "n_out": "Out",
                "removed": "Removed (examples)",
                "why": "Rule",
                "warning": "Warning",
            }
            parts.append(
                _table(
                    [names[c] for c in cols],
                    rows,
                    numeric=[i for i, c in enumerate(cols) if c in ("n_in", "n_out")],
                    text=[i for i, c in enumerate(cols) if c in ("removed", "why", "warning")],
                )
            )
        ftable = _records((ms.get("region_formula_tables") or {}).get(region))
        if not ftable.empty:
            rows = [
                [
                    _text(r.get("term")),
                    _num(r.get("coefficient"), 4),
                    _num(r.get("mean"), 4),
                    _num(r.get("sd"), 4),
                ]
                for r in ftable.to_dict(orient="records")
            ]
            parts.append(
                _table(
                    ["Term", "Coefficient", "Training mean", "Training SD"],
                    rows,
                    numeric=[1, 2, 3],
                    caption="Score = intercept + Σ coefficient × (x − mean) / SD.",
                )
            )
        parts.append('<div class="grid2">')
        parts.append(
            figs.html(
                f"lasso_path_{region}",
                f"LASSO coefficient path, {title}",
                "Coefficients against log(λ); red: λ used.",
            )
        )
        parts.append(
            figs.html(
                f"lasso_cv_{region}",
                f"LASSO cross-validation curve, {title}",
                "Cross-validated deviance ± SE; dotted λ.min, dash-dot λ.1se.",
            )
        )
        parts.append("</div>")
    return "".join(parts)


def _section_readers(ev: Any, figs: _Figures, simulated: bool, reader_split: str | None = None) -> str:
    tables = _tables(ev)
    parts = []
    if simulated:
        parts.append(
            '<div class="simulated" id="readers-simulated">SIMULATED READS: these reader results come from '
            "simulated radiologists, not from a real reader study.</div>"
        )
    parts.append(_readers_worse_with_ai(tables, simulated, reader_split))
    metrics = tables.get("reader_metrics")
    if metrics is not None and not metrics.empty:
        fraction = {c: _is_fraction_column(metrics[c]) for c in _PERCENT_COLUMNS if c in metrics}
        rows = []
        for r in metrics.to_dict(orient="records"):
            rows.append(
                [
                    _text(r.get("reader")),
                    "With AI"
                    if r.get("session") == "aided"
                    else "Without AI"
                    if r.get("session") == "unaided"
                    else _text(r.get("session")),  # noqa: E501
                    format_auc(r.get("auc"), r.get("auc_low"), r.get("auc_high")),
                    *(format_percent(r.get(c), fraction=fraction.get(c, True)) for c in _PERCENT_COLUMNS),
                    _num(r.get("n"), 0),
                ]
            )
        parts.append(
            _table(
                ["Reader", "Session", "AUC (95% CI)", "ACC", "SEN", "SPE", "PPV", "NPV", "n"],
                rows,
                numeric=range(2, 9),
                table_id="reader-metrics",
            )
        )
    tests = tables.get("reader_tests")
    if tests is not None and not tests.empty:
        fraction_acc = _is_fraction_column(
            pd.concat(
                [
                    tests.get("acc_unaided", pd.Series(dtype=float)),
                    tests.get("acc_aided", pd.Series(dtype=float)),
                ]
            )
        )  # noqa: E501
        rows = [
            [
                _text(r.get("reader")),
                _num(r.get("auc_unaided")),
                _num(r.get("auc_aided")),
                format_p(r.get("delong_p")),
                format_percent(r.get("acc_unaided"), fraction=fraction_acc),
                format_percent(r.get("acc_aided"), fraction=fraction_acc),
                _num(r.get("mcnemar_stat")),
                format_p(r.get("mcnemar_p")),
            ]
            for r in tests.to_dict(orient="records")
        ]
        parts.append("<h3>Without vs with AI</h3>")
        parts.append(
            _table(
                [
                    "Reader",
                    "AUC without",
                    "AUC with",
                    "DeLong p",
                    "ACC without",
                    "ACC with",
                    "McNemar χ²",
                    "McNemar p",
                ],
                rows,
                numeric=range(1, 8),
            )
        )
    kappa = tables.get("reader_kappa")
    if kappa is not None and not kappa.empty:
        notes = "note" in kappa.columns and kappa["note"].fillna("").astype(str).str.strip().ne("").any()
        rows = [
            [
                _text(r.get("session")),
                f"{_text(r.get('reader_a'))} vs {_text(r.get('reader_b'))}",
                _ci3(r.get("kappa"), r.get("low"), r.get("high")),
                *([_text(r.get("note"))] if notes else []),
            ]
            for r in kappa.to_dict(orient="records")
        ]
        parts.append("<h3>Agreement between readers (Cohen's κ)</h3>")
        parts.append(
            _table(
                ["Session", "Readers", "κ (95% CI)", *(["Note"] if notes else [])],
                rows,
                numeric=[2],
                text=[3] if notes else (),
            )
        )
    parts.append(
        figs.html(
            "readers",
            "Reader study: AUC and accuracy without and with AI",
            "As the study's Figure 3: reader operating points on the model's ROC curve, AUC and accuracy "
            "without and with AI assistance." + (" Simulated reads." if simulated else ""),
        )
    )
    return "".join(parts)


def _readers_worse_with_ai(
    tables: Mapping[str, pd.DataFrame], simulated: bool, reader_split: str | None
) -> str:
    """Why a reader's AUC or accuracy fell with AI, beside the model's own results on the cases read."""
    tests = tables.get("reader_tests")
    if tests is None or tests.empty:
        return ""
    worse = [
        r
        for r in tests.to_dict(orient="records")
        if (
            _finite(r.get("auc_aided"))
            and _finite(r.get("auc_unaided"))
            and r["auc_aided"] < r["auc_unaided"]
        )
        or (
            _finite(r.get("acc_aided"))
            and _finite(r.get("acc_unaided"))
            and r["acc_aided"] < r["acc_unaided"]
        )
    ]
    if not worse:
        return ""
    model_label, split_label, _ = _labels()
    t3 = tables.get("table3")
    model = None
    if t3 is not None and not t3.empty and reader_split is not None:
        rows = t3[
            (t3["split"].astype(str) == str(reader_split)) & (t3["model"].astype(str) == "clinical_radiomics")
        ]
        model = rows.iloc[0].to_dict() if len(rows) else None
    names = ", ".join(_text(r.get("reader")) for r in worse)
    text = [f"<strong>Worse with AI here: {names}.</strong>"]
    if simulated:
        text.append(
            "Simulated aided calls blend each reader's own evidence with the model's (trust weight; see Methods), "
            "so they move toward the model's calls: they improve only where the model is right more often "
            "than the reader on the cases read."
        )
    else:
        text.append(
            "Aided readers follow the model's output to some degree, so their calls move toward the model's."
        )
    if model is not None:
        fraction = _is_fraction_column(pd.Series([model.get("accuracy")]))
        text.append(
            f"On the {html.escape(split_label(str(reader_split)).lower())} ({_num(model.get('n'), 0)} patients) the "
            f"{html.escape(model_label('clinical_radiomics')[:1].lower() + model_label('clinical_radiomics')[1:])} had AUC {_num(model.get('auc'))} and accuracy "
            f"{format_percent(model.get('accuracy'), fraction=fraction)} at its cut-off;"
        )
        details = []
        for r in worse:
            frac = _is_fraction_column(pd.Series([r.get("acc_unaided")]))
            details.append(
                f"{_text(r.get('reader'))} without AI: AUC {_num(r.get('auc_unaided'))}, accuracy "
                f"{format_percent(r.get('acc_unaided'), fraction=frac)} (DeLong p {format_p(r.get('delong_p'))}, "
                f"McNemar p {format_p(r.get('mcnemar_p'))})"
            )
        text.append("; ".join(details) + ".")
        small = _finite(model.get("n")) and float(model["n"]) < 100
        if small:
            text.append(
                f"With {_num(model.get('n'), 0)} patients a few calls move these numbers by several points: "
                "read the CIs and p-values, not the direction alone."
            )
    from ALNMPredictorLib.reader_study import STUDY_READER_RESULTS

    study_auc = [
        v["clinical_radiomics"][0]
        for k, v in STUDY_TABLE3_AUC.items()
        if k != "train" and "clinical_radiomics" in v
    ]
    text.append(
        f"In the study, the model (AUC {min(study_auc):.2f}-{max(study_auc):.2f} on its test sets) outperformed "
        f"both radiologists (AUC {STUDY_READER_RESULTS['junior']['auc_unaided']:.2f} junior, "
        f"{STUDY_READER_RESULTS['senior']['auc_unaided']:.2f} senior without AI), and both improved with it; a "
        "model no better than the reader on the cases read cannot do that."
    )
    return f'<p class="note" id="readers-worse">{" ".join(text)}</p>'


def _ci3(value: Any, low: Any, high: Any) -> str:
    if not _finite(value):
        return "—"
    ci = f" ({_num(low, 3)}–{_num(high, 3)})" if _finite(low) and _finite(high) else ""
    return f"{_num(value, 3)}{ci}"


def _versions(meta_versions: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    found: dict[str, str] = {"ALNMPredictorLib": __version__, "python": platform.python_version()}
    for name in _VERSION_PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    found.update({str(k): str(v) for k, v in (meta_versions or {}).items()})
    return sorted(found.items(), key=lambda kv: kv[0].lower())


def _section_methods(ms: Mapping[str, Any], meta: Mapping[str, Any]) -> str:
    parts = [
        "<h3>Software versions</h3>",
        _kv_table(_versions(meta.get("versions") or ms.get("versions")), "versions"),
    ]
    weights = meta.get("deep_weights", ms.get("deep_weights"))
    parts.append("<h3>Deep features (VGG19 weights)</h3>")
    if isinstance(weights, Mapping) and weights:
        parts.append(_kv_table(_flatten(weights), "deep-weights"))
    elif weights:
        parts.append(f'<p id="deep-weights">{_e(weights)}</p>')
    else:
        parts.append(
            '<p id="deep-weights" class="note">No deep features in this model (no VGG19 weights used).</p>'
        )
    seeds = meta.get("seeds", ms.get("seeds"))
    parts.append("<h3>Seeds</h3>")
    parts.append(
        _kv_table(
            _flatten(seeds) if isinstance(seeds, Mapping) else [("seed", seeds)] if seeds is not None else [],
            "seeds",
        )
    )
    settings = meta.get("settings", ms.get("settings"))
    parts.append("<h3>Settings</h3>")
    parts.append(_kv_table(_flatten(settings) if isinstance(settings, Mapping) else [], "settings"))
    degenerate = ms.get("degenerate_features") or meta.get("degenerate_features") or {}
    parts.append("<h3>Degenerate features dropped</h3>")
    if isinstance(degenerate, Mapping) and any(degenerate.values()):
        total = sum(len(v) for v in degenerate.values())
        parts.append(
            _collapsed(
                f"{total} features ({', '.join(f'{r}: {len(v)}' for r, v in degenerate.items() if v)}): show the names",
                _kv_table(
                    [(f"{r} ({len(v)})", ", ".join(map(str, v))) for r, v in degenerate.items() if v],
                    "degenerate",
                ),
            )
        )
    elif isinstance(degenerate, list | tuple) and degenerate:
        parts.append(
            _collapsed(
                f"{len(degenerate)} features: show the names",
                _kv_table(
                    [(f"all regions ({len(degenerate)})", ", ".join(map(str, degenerate)))], "degenerate"
                ),
            )
        )
    else:
        parts.append('<p id="degenerate" class="note">None.</p>')
    not_computed = {r: len(v) for r, v in (ms.get("not_computed_features") or {}).items() if v}
    if not_computed:
        counts = ", ".join(f"{r} {n}" for r, n in not_computed.items())
        parts.append(
            f'<p id="not-computed" class="note">Not computed ({_e(counts)}): the z-high-pass wavelet features, '
            "rounding noise on a 2D image (a one-slice volume); <code>--full-table</code> computes them, and "
            "they are then listed above.</p>"
        )
    skip = {
        "versions",
        "deep_weights",
        "seeds",
        "settings",
        "warnings",
        "failed_cases",
        "degenerate_features",
        "readers_simulated",
    }
    run = [(k, v) for k, v in meta.items() if k not in skip and not isinstance(v, Mapping)]
    if run:
        parts.append("<h3>Run</h3>")
        parts.append(_kv_table(run, "run"))
    return "".join(parts)


def _collapsed(summary: str, body: str) -> str:
    """A long list folded away (``<details>``), opened by a click."""
    return f"<details><summary>{_e(summary)}</summary>{body}</details>"


def _failed_cases(ev: Any, meta: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    summary = getattr(ev, "summary", None) or {}
    cases = list(summary.get("failed_cases") or []) + list(meta.get("failed_cases") or [])
    return [c if isinstance(c, Mapping) else {"case_id": str(c), "error": ""} for c in cases]


def _section_warnings(warnings: Sequence[str], failed: Sequence[Mapping[str, Any]]) -> str:
    parts = ["<h3>Warnings</h3>"]
    if warnings:
        parts.append(
            '<ul class="warn" id="warning-list">' + "".join(f"<li>{_e(w)}</li>" for w in warnings) + "</ul>"
        )
    else:
        parts.append('<p class="note" id="warning-list">No warnings.</p>')
    parts.append("<h3>Failed cases</h3>")
    if failed:
        rows = [[_text(c.get("case_id")), _text(c.get("error"))] for c in failed]
        parts.append(_table(["Case", "Error"], rows, table_id="failed-cases", text=[1]))
    else:
        parts.append('<p class="note" id="failed-cases">No case failed.</p>')
    return "".join(parts)


# --------------------------------------------------------------------------------------------
# Entry points


def _readers_simulated(ev: Any, meta: Mapping[str, Any]) -> bool:
    summary = getattr(ev, "summary", None) or {}
    study = summary.get("reader_study") if isinstance(summary.get("reader_study"), Mapping) else {}
    flags = [meta.get("readers_simulated"), summary.get("readers_simulated"), study.get("simulated")]
    metrics = _tables(ev).get("reader_metrics")
    if metrics is not None and "simulated" in metrics.columns:
        flags.append(bool(metrics["simulated"].astype(bool).any()))
    return any(bool(f) for f in flags if f is not None)


def render_report(
    *,
    evaluation: Any,
    model_summary: Mapping[str, Any] | None = None,
    figures: Mapping[str, Any] | None = None,
    title: str = "ALNM Predictor report",
    synthetic: bool = False,
    study_comparison: bool = False,
    meta: Mapping[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> str:
    """The report as an HTML string (see :func:`write_report`)."""
    if evaluation is None or not hasattr(evaluation, "tables"):
        raise ALNMError(
            "report: evaluation must be an EvaluationResult (with .tables, .curves, .summary, .warnings)"
        )
    ms = dict(model_summary or {})
    meta = dict(meta or {})
    warnings = [str(w) for w in (getattr(evaluation, "warnings", None) or [])]
    warnings += [str(w) for w in (ms.get("warnings") or []) if str(w) not in warnings]
    warnings += [str(w) for w in (meta.get("warnings") or []) if str(w) not in warnings]
    label = _labels()[0]
    notes = [
        f"{label(name)}: {note}"
        for name, items in (ms.get("model_notes") or {}).items()
        for note in items or []
    ]
    warnings += [w for w in notes if w not in warnings]
    figure_warnings: list[str] = []
    simulated = _readers_simulated(evaluation, meta)
    reader_split = meta.get("reader_split") or (getattr(evaluation, "summary", None) or {}).get(
        "reader_split"
    )

    def draw(name: str) -> Any:
        from ALNMPredictorLib.plots import draw_all

        drawn = draw_all(
            evaluation,
            ms,
            synthetic=synthetic,
            readers_simulated=simulated,
            reader_split=reader_split,
            only=[name],
        )
        return drawn.get(name)

    figs = _Figures(figures, draw, figure_warnings, progress)
    failed = _failed_cases(evaluation, meta)
    has_readers = _tables(evaluation).get("reader_metrics") is not None

    body: dict[str, str] = {}
    body["summary"] = ""  # filled last: it counts the warnings of every other section
    body["table1"] = _section_table1(evaluation)
    body["table2"] = _section_table2(evaluation, ms)
    body["table3"] = _section_table3(evaluation, study_comparison)
    body["roc"] = figs.html("roc", "ROC curves per set", "ROC curves per set; AUC (95% CI) in the legend.")
    body["table_s3"] = _section_table_s3(evaluation)
    body["table_s4"] = _section_table_s4(evaluation)
    body["calibration"] = _section_calibration(evaluation, figs)
    body["decision"] = figs.html(
        "decision",
        "Decision curves per set",
        "Net benefit of each model against the threshold probability, with treat-all and treat-none.",
    )
    body["clinical_impact"] = figs.html(
        "clinical_impact",
        "Clinical impact curves per set",
        "Of 1,000 patients: number classified high risk and number of those with ALNM, "
        "by threshold probability (clinical-radiomics model).",
    )
    body["risk_groups"] = _section_risk_groups(evaluation, figs)
    body["optimism"] = _section_optimism(evaluation, ms, figs)
    body["selection"] = _section_selection(ms, figs)
    body["heatmaps"] = _section_heatmaps(meta.get("heatmaps"), figs)
    if has_readers:
        body["readers"] = _section_readers(evaluation, figs, simulated, reader_split)
    body["methods"] = _section_methods(ms, meta)
    all_warnings = warnings + figure_warnings
    body["summary"] = _section_summary(evaluation, ms, figs, study_comparison, len(all_warnings), len(failed))
    all_warnings = warnings + figure_warnings  # the summary may have added a figure warning
    body["warnings"] = _section_warnings(all_warnings, failed)

    page_title = f"SYNTHETIC — {title}" if synthetic else title
    banner = (
        f'<div class="synthetic" id="synthetic-banner" role="note">{_e(SYNTHETIC_LABEL)}</div>'
        if synthetic
        else ""
    )
    nav = "".join(f'<li><a href="#{sid}">{_e(_short(sid))}</a></li>' for sid in SECTIONS if sid in body)
    sections = "".join(
        f'<section id="{sid}"><h2>{_e(SECTIONS[sid])}</h2>{body[sid]}</section>'
        for sid in SECTIONS
        if sid in body
    )
    subtitle = []
    if meta.get("created"):
        subtitle.append(f"created {meta['created']}")
    if meta.get("cohort"):
        subtitle.append(f"cohort {meta['cohort']}")
    subtitle.append(f"ALNM Predictor {__version__}")
    footer_banner = f'<p class="synthetic">{_e(SYNTHETIC_LABEL)}</p>' if synthetic else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{_e(page_title)}</title><style>{_CSS}</style></head><body>"
        f'<header><h1>{_e(title)}</h1>{banner}<p class="muted">{_e(" · ".join(subtitle))}</p></header>'
        f'<nav aria-label="Sections"><ul>{nav}</ul></nav>'
        f"<main>{sections}</main>"
        f"<footer>{footer_banner}<p>Generated by ALNM Predictor {_e(__version__)}. Research software, "
        "not a medical device.</p></footer>"
        "</body></html>\n"
    )


def _short(section_id: str) -> str:
    return {
        "summary": "Summary",
        "table1": "Table 1",
        "table2": "Table 2",
        "table3": "Table 3",
        "roc": "ROC",
        "table_s3": "Table S3",
        "table_s4": "Table S4",
        "calibration": "Calibration",
        "decision": "Decision curves",
        "clinical_impact": "Clinical impact",
        "risk_groups": "Risk groups",
        "selection": "Feature selection",
        "readers": "Readers",
        "methods": "Methods",
        "warnings": "Warnings",
        "optimism": "Optimism",
        "heatmaps": "Heatmaps",
    }.get(section_id, section_id)


def write_report(
    out_dir: str | os.PathLike[str],
    *,
    evaluation: Any,
    model_summary: Mapping[str, Any] | None = None,
    figures: Mapping[str, Any] | None = None,
    title: str = "ALNM Predictor report",
    synthetic: bool = False,
    study_comparison: bool = False,
    meta: Mapping[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Write ``<out_dir>/report.html`` atomically and return its path.

    ``evaluation``: an ``EvaluationResult`` (``.tables``, ``.curves``, ``.summary`` with
    ``failed_cases``, ``.warnings``). ``figures``: name → PNG/SVG path (or ``(png, svg)`` as
    :func:`ALNMPredictorLib.plots.save_all` returns) to embed; a figure not given is drawn from the
    data (names: see :func:`ALNMPredictorLib.plots.draw_all`). ``synthetic`` labels the report and
    its figures SYNTHETIC; ``study_comparison`` shows the study's Table 3 AUCs beside ours.
    ``progress(name)`` is called before each figure is rendered.

    ``model_summary`` keys (all optional):
      ``formula`` (str, the combined model), ``cutoff`` (float, training Youden cut-off),
      ``region_formulas`` ({region: str}), ``region_formula_tables`` ({region: records of
      ``term coefficient mean sd``}), ``nomogram`` (``LogisticModel.nomogram_scale()``),
      ``selection_logs`` ({region: ``RegionScore.log_`` records}), ``lasso_path`` ({region:
      ``lasso_path_`` DataFrame or records with a ``lambda`` column}), ``lasso_cv`` ({region:
      ``lasso_cv_`` records}), ``lambdas`` ({region: {``lambda``, ``lambda_min``, ``lambda_1se``}}),
      ``degenerate_features`` ({region: [names]}), ``warnings`` ([str]); ``deep_weights``,
      ``settings``, ``seeds``, ``versions`` when not in ``meta``.

    ``meta`` keys (all optional): ``versions`` ({package: version}, added to those detected),
      ``settings`` (nested dict), ``seeds``, ``deep_weights`` (dict or text: which VGG19 weights,
      checksum, source), ``readers_simulated`` (bool), ``reader_split``, ``warnings``,
      ``failed_cases`` ([{case_id, error}]), and scalars shown under "Run" (``command``,
      ``created``, ``cohort``, ...).
    """
    text = render_report(
        evaluation=evaluation,
        model_summary=model_summary,
        figures=figures,
        title=title,
        synthetic=synthetic,
        study_comparison=study_comparison,
        meta=meta,
        progress=progress,
    )
    return write_text(Path(out_dir) / "report.html", text)
