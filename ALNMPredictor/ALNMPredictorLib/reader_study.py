"""Reader study (the study's Figure 3 and Table S5): reads CSV, per-reader metrics and tests, simulation.

Reads CSV: one row per (case, reader, session) with columns ``case_id, reader, session, call`` and an
optional ``confidence``: ``session`` is ``unaided`` or ``aided`` (with the model's output), ``call`` 1 =
metastasis, 0 = none; ``confidence`` is any score that increases with suspicion (e.g. 1-5 or a
probability). Other columns are kept and ignored.

:func:`reader_study` gives, per reader and session, AUC (DeLong CI; of ``confidence`` when the reads
have it, else of the 0/1 call, as pROC would on either), accuracy, sensitivity, specificity, PPV and
NPV of the call; per reader, unaided vs aided: paired DeLong test of the AUCs and McNemar tests of the
calls' correctness (accuracy), of the calls of events (sensitivity) and of non-events (specificity);
per session, Cohen's kappa of every pair of readers' calls.

:func:`simulate_reads` makes SIMULATED reads for ``alnm demo`` (see its docstring and :data:`AIDED_RULE`).
:func:`record_read` appends one read to a reads CSV (the Slicer panel), keeping the study's protocol.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import optimize
from scipy import stats as sps
from scipy.special import logit

from ALNMPredictorLib import stats
from ALNMPredictorLib.errors import InputError, StatsError

__all__ = [
    "READS_COLUMNS",
    "SESSIONS",
    "STUDY_READER_RESULTS",
    "STUDY_KAPPA",
    "ReaderProfile",
    "STUDY_READERS",
    "AIDED_RULE",
    "McNemarResult",
    "mcnemar_test",
    "validate_reads",
    "load_reads",
    "reader_study",
    "simulate_reads",
    "read_status",
    "record_read",
]

READS_COLUMNS = ("case_id", "reader", "session", "call", "confidence")
SESSIONS = ("unaided", "aided")

#: The study's prospective reader study (Zhang et al., Table S5 and Figure 3; text of "Radiologist
#: assessment and AI-assisted assessment"): AUC, accuracy (%) and specificity (%) without and with
#: the model. Its reader AUCs equal (sensitivity + specificity) / 2, i.e. they are AUCs of the 0/1 call.
STUDY_READER_RESULTS: dict[str, dict[str, float]] = {
    "junior": {
        "auc_unaided": 0.71,
        "auc_aided": 0.82,
        "acc_unaided": 70.1,
        "acc_aided": 82.1,
        "spe_unaided": 61.9,
        "spe_aided": 85.7,
    },
    "senior": {
        "auc_unaided": 0.75,
        "auc_aided": 0.85,
        "acc_unaided": 76.1,
        "acc_aided": 86.3,
        "spe_unaided": 87.3,
        "spe_aided": 98.4,
    },
}
#: Cohen's kappa between the two radiologists in the study (same source), without and with the model.
STUDY_KAPPA: dict[str, float] = {"unaided": 0.557, "aided": 0.733}


@dataclass(frozen=True)
class ReaderProfile:
    """A simulated reader: unaided ``accuracy`` and ``specificity`` (fractions), and ``trust`` in
    [0, 1], the weight the reader gives the model's output when aided (see :data:`AIDED_RULE`)."""

    name: str
    accuracy: float
    specificity: float
    trust: float


#: The study's junior (5 years) and senior (15 years) radiologists, unaided operating points from
#: STUDY_READER_RESULTS. Trust weights are this simulation's choice: with a model like the study's
#: (prevalence 46 %, SEN 0.76 and SPE 0.92 at its cut-off) they give, on 40,000 simulated cases,
#: aided accuracy 82.6 % / 86.4 % (study 82.1 / 86.3), specificity 80.3 % / 95.9 % (85.7 / 98.4) and
#: aided kappa 0.71 (0.733).
STUDY_READERS: tuple[ReaderProfile, ...] = (
    ReaderProfile("junior (simulated)", accuracy=0.701, specificity=0.619, trust=0.40),
    ReaderProfile("senior (simulated)", accuracy=0.761, specificity=0.873, trust=0.50),
)

AIDED_RULE = (
    "Simulated reads. Unaided: each case has a latent suspicion per reader, "
    "L = mu*y + sqrt(rho)*D + sqrt(1-rho)*E (D a case effect shared by all readers, E the reader's own "
    "noise, both standard normal), and the reader calls metastasis when L >= t; t and mu give the "
    "reader's specificity and sensitivity (sensitivity from the study's accuracy, specificity and the "
    "split's prevalence), rho gives the study's inter-reader kappa. Aided: the reader blends their own "
    "evidence with the model's, A = (1 - w)*(L - t) + w*M, where M = (logit(Nomo-score) - "
    "logit(cut-off)) / SD over the split, and calls metastasis when A >= 0; w is the reader's trust in "
    "the model, so a call flips toward the model when the model is confident."
)


# --------------------------------------------------------------------------------------------------
# McNemar


@dataclass(frozen=True)
class McNemarResult:
    """McNemar test of paired binary outcomes: ``b`` = a 1 and b 0, ``c`` = a 0 and b 1 (discordant pairs)."""

    statistic: float
    p: float
    exact_p: float
    b: int
    c: int
    n: int
    correct: bool


def mcnemar_test(a: ArrayLike, b: ArrayLike, correct: bool = True) -> McNemarResult:
    """McNemar's chi-square test of paired 0/1 outcomes, as R ``mcnemar.test(table(a, b))``.

    With ``correct=True`` (R's default) the continuity-corrected statistic ``(|b - c| - 1)^2 / (b + c)``
    (as R, uncorrected 0 when b = c), else ``(b - c)^2 / (b + c)``; 1 degree of freedom. ``exact_p`` is the
    two-sided exact (binomial) McNemar p, R ``binom.test(b, b + c)``. With no discordant pair the
    statistic and ``p`` are NaN (R: NaN/NA) and ``exact_p`` is 1.
    """
    x = np.asarray(a, dtype=float).reshape(-1)
    z = np.asarray(b, dtype=float).reshape(-1)
    if x.size != z.size:
        raise StatsError(f"b: length {z.size} does not match a (length {x.size})")
    for name, arr in (("a", x), ("b", z)):
        bad = ~np.isin(arr, (0.0, 1.0))
        if bad.any():
            raise StatsError(
                f"{name}: values must be 0/1, found {arr[bad][0]!r} at position {int(np.flatnonzero(bad)[0])}"
            )
    n_b = int(np.sum((x == 1) & (z == 0)))
    n_c = int(np.sum((x == 0) & (z == 1)))
    m = n_b + n_c
    if m == 0:
        return McNemarResult(float("nan"), float("nan"), 1.0, 0, 0, int(x.size), bool(correct))
    stat = (abs(n_b - n_c) - (1.0 if correct and n_b != n_c else 0.0)) ** 2 / m
    exact = float(sps.binomtest(n_b, m, 0.5).pvalue)
    return McNemarResult(
        float(stat), float(sps.chi2.sf(stat, 1)), exact, n_b, n_c, int(x.size), bool(correct)
    )


# --------------------------------------------------------------------------------------------------
# Reads: validation and loading


def _show(value: Any) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value) if isinstance(value, str) else str(value)


def _where(row: int, from_file: bool) -> str:
    return f"row {row + 1}" + (f" (line {row + 2})" if from_file else "")


def validate_reads(reads: pd.DataFrame, path: str | PathLike[str] | None = None) -> pd.DataFrame:
    """Checked copy of a reads table: ``case_id``/``reader`` as text, ``session`` lower-case, ``call`` int.

    Raises :class:`InputError` naming the row (and file line), case and column for: a missing column,
    an empty table, a blank case or reader, a session other than unaided/aided, a call other than
    0/1, a non-numeric confidence, a confidence given for some reads of a reader's session but not
    others, and a (case, reader, session) read twice.
    """
    from_file = path is not None
    missing = [c for c in READS_COLUMNS[:4] if c not in reads.columns]
    if missing:
        raise InputError(
            f"reads need the columns {', '.join(READS_COLUMNS[:4])} (confidence optional)",
            column=missing[0],
            path=path,
        )
    if len(reads) == 0:
        raise InputError("the reads table has no rows", path=path)
    out = reads.reset_index(drop=True).copy()
    for col in ("case_id", "reader", "session"):
        text = out[col].astype(object).where(out[col].notna(), "").astype(str).str.strip()
        blank = (text == "") | text.isin(["nan", "NaN", "None", "<NA>"])
        if blank.any():
            k = int(np.flatnonzero(blank.to_numpy())[0])
            raise InputError(f"{_where(k, from_file)}: empty value", column=col, path=path)
        out[col] = text
    out["session"] = out["session"].str.lower()
    bad = ~out["session"].isin(SESSIONS)
    if bad.any():
        k = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"{_where(k, from_file)}: session must be 'unaided' or 'aided', got {_show(reads['session'].iloc[k])}",
            case=out["case_id"][k],
            column="session",
            path=path,
        )
    call = pd.to_numeric(out["call"].astype(object), errors="coerce")
    bad = ~call.isin([0, 1])
    if bad.any():
        k = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"{_where(k, from_file)}: call must be 0 or 1, got {_show(reads['call'].iloc[k])}",
            case=out["case_id"][k],
            column="call",
            path=path,
        )
    out["call"] = call.astype(int)
    if "confidence" in out.columns:
        raw = out["confidence"]
        conf = pd.to_numeric(raw.astype(object), errors="coerce").astype(float)
        text = raw.astype(object).where(raw.notna(), "").astype(str).str.strip()
        bad = conf.isna() & ~text.isin(["", "nan", "NaN", "None", "<NA>"]) | np.isinf(conf)
        if bad.any():
            k = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(
                f"{_where(k, from_file)}: confidence must be a number, got {_show(raw.iloc[k])}",
                case=out["case_id"][k],
                column="confidence",
                path=path,
            )
        out["confidence"] = conf
        for (reader, session), grp in out.groupby(["reader", "session"], sort=False):
            have = grp["confidence"].notna()
            if have.any() and not have.all():
                k = int(grp.index[~have.to_numpy()][0])
                raise InputError(
                    f"{_where(k, from_file)}: reader {reader}, session {session} gives a confidence for some "
                    "cases but not this one; give it for every case of the session or for none",
                    case=out["case_id"][k],
                    column="confidence",
                    path=path,
                )
    dup = out.duplicated(subset=["case_id", "reader", "session"], keep="first")
    if dup.any():
        k = int(np.flatnonzero(dup.to_numpy())[0])
        raise InputError(
            f"{_where(k, from_file)}: reader {out['reader'][k]} read this case twice in the {out['session'][k]} session",
            case=out["case_id"][k],
            column="case_id",
            path=path,
        )
    out.attrs = dict(reads.attrs)
    return out


def load_reads(path: str | PathLike[str]) -> pd.DataFrame:
    """Read and validate a reads CSV (see :func:`validate_reads`); errors name the file, line, case and column."""
    path = Path(path)
    if not path.is_file():
        raise InputError("reads file not found", path=path)
    try:
        table = pd.read_csv(path, dtype={"case_id": str, "reader": str, "session": str}, keep_default_na=True)
    except pd.errors.EmptyDataError:
        raise InputError("the reads file is empty", path=path) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"not a readable CSV file: {exc}", path=path) from None
    table.columns = [str(c).strip() for c in table.columns]
    return validate_reads(table, path=path)


# --------------------------------------------------------------------------------------------------
# Analysis


def _labelled(reads: pd.DataFrame, labels: pd.Series) -> pd.DataFrame:
    lab = labels.copy()
    lab.index = lab.index.astype(str)
    lab = pd.to_numeric(lab.astype(object), errors="coerce").astype(float)
    unknown = ~reads["case_id"].isin(lab.index)
    if unknown.any():
        case = reads["case_id"][unknown].iloc[0]
        raise InputError(
            f"the reads name a case that is not in the predictions ({int(unknown.sum())} read(s) of unknown cases)",
            case=case,
            column="case_id",
        )
    out = reads.copy()
    out["label"] = lab.reindex(out["case_id"]).to_numpy()
    nolabel = out["label"].isna()
    if nolabel.any():
        raise InputError(
            "the case has no known label (pathology), so its reads cannot be scored",
            case=out["case_id"][nolabel].iloc[0],
            column="label",
        )
    return out


def _score(group: pd.DataFrame) -> tuple[np.ndarray, str]:
    if "confidence" in group.columns and group["confidence"].notna().all():
        return group["confidence"].to_numpy(dtype=float), "confidence"
    return group["call"].to_numpy(dtype=float), "call"


def reader_study(reads: pd.DataFrame, labels: pd.Series) -> dict[str, pd.DataFrame]:
    """Reader-study tables ``reader_metrics``, ``reader_tests``, ``reader_kappa`` and curve ``reader_roc``.

    ``reads`` is a validated reads table, ``labels`` the 0/1 outcome by case_id (the predictions'
    ``label``). A read of a case missing from ``labels`` or without a known label is an InputError
    naming the case.
    """
    data = _labelled(reads, labels)
    readers = list(dict.fromkeys(data["reader"]))
    metric_rows, roc_parts = [], []
    for reader in readers:
        for session in SESSIONS:
            grp = data[(data["reader"] == reader) & (data["session"] == session)]
            if grp.empty:
                continue
            y = grp["label"].to_numpy() == 1.0
            score, source = _score(grp)
            auc = None
            if 0 < y.sum() < y.size:
                try:
                    auc = stats.auc_ci(y, score)
                except StatsError:
                    auc = None
                roc_parts.append(
                    stats.roc_curve(y, score).assign(
                        reader=reader, session=session, auc=auc.auc if auc else np.nan
                    )
                )
            m = stats.classification_metrics(y, grp["call"].to_numpy(dtype=float), 0.5)
            row: dict[str, Any] = {
                "reader": reader,
                "session": session,
                "auc": auc.auc if auc else np.nan,
                "auc_low": auc.low if auc else np.nan,
                "auc_high": auc.high if auc else np.nan,
                "accuracy": m.accuracy,
                "sensitivity": m.sensitivity,
                "specificity": m.specificity,
                "ppv": m.ppv,
                "npv": m.npv,
                "n": int(y.size),
                "n_events": int(y.sum()),
                "auc_of": source,
            }
            for key in ("accuracy", "sensitivity", "specificity", "ppv", "npv"):
                row[f"{key}_low"], row[f"{key}_high"] = getattr(m, f"{key}_ci")
            metric_rows.append(row)

    test_rows = []
    for reader in readers:
        un = data[(data["reader"] == reader) & (data["session"] == "unaided")].set_index("case_id")
        ai = data[(data["reader"] == reader) & (data["session"] == "aided")].set_index("case_id")
        common = un.index.intersection(ai.index, sort=False)
        if len(common) == 0:
            continue
        un, ai = un.loc[common], ai.loc[common]
        y = un["label"].to_numpy() == 1.0
        s_un, _ = _score(un)
        s_ai, _ = _score(ai)
        c_un, c_ai = un["call"].to_numpy(), ai["call"].to_numpy()
        row = {"reader": reader, "n": int(len(common)), "n_events": int(y.sum())}
        try:
            dl = stats.delong_test(y, s_ai, s_un)
            row.update(auc_unaided=dl.auc_b, auc_aided=dl.auc_a, delong_z=dl.z, delong_p=dl.p)
        except StatsError:
            row.update(auc_unaided=np.nan, auc_aided=np.nan, delong_z=np.nan, delong_p=np.nan)
        right_un, right_ai = (c_un == y).astype(int), (c_ai == y).astype(int)
        acc = mcnemar_test(right_un, right_ai)
        row.update(
            mcnemar_stat=acc.statistic,
            mcnemar_p=acc.p,
            mcnemar_exact_p=acc.exact_p,
            acc_unaided=float(right_un.mean()),
            acc_aided=float(right_ai.mean()),
            sen_unaided=float(c_un[y].mean()) if y.any() else np.nan,
            sen_aided=float(c_ai[y].mean()) if y.any() else np.nan,
            spe_unaided=float(1 - c_un[~y].mean()) if (~y).any() else np.nan,
            spe_aided=float(1 - c_ai[~y].mean()) if (~y).any() else np.nan,
            mcnemar_sen_p=mcnemar_test(c_un[y], c_ai[y]).p if y.any() else np.nan,
            mcnemar_spe_p=mcnemar_test(c_un[~y], c_ai[~y]).p if (~y).any() else np.nan,
        )
        test_rows.append(row)

    kappa_rows = []
    for session in SESSIONS:
        for ra, rb in itertools.combinations(readers, 2):
            a = data[(data["reader"] == ra) & (data["session"] == session)].set_index("case_id")["call"]
            b = data[(data["reader"] == rb) & (data["session"] == session)].set_index("case_id")["call"]
            common = a.index.intersection(b.index, sort=False)
            if len(common) == 0:
                continue
            row = {"session": session, "reader_a": ra, "reader_b": rb, "n": int(len(common))}
            try:
                k = stats.cohen_kappa(a.loc[common].to_numpy(), b.loc[common].to_numpy())
                row.update(kappa=k.kappa, low=k.low, high=k.high, note="")
            except StatsError as exc:
                row.update(kappa=np.nan, low=np.nan, high=np.nan, note=str(exc))
            kappa_rows.append(row)

    metric_cols = [
        "reader",
        "session",
        "auc",
        "auc_low",
        "auc_high",
        "accuracy",
        "sensitivity",
        "specificity",
        "ppv",
        "npv",
        "n",
        "n_events",
        "auc_of",
        "accuracy_low",
        "accuracy_high",
        "sensitivity_low",
        "sensitivity_high",
        "specificity_low",
        "specificity_high",
        "ppv_low",
        "ppv_high",
        "npv_low",
        "npv_high",
    ]
    test_cols = [
        "reader",
        "auc_unaided",
        "auc_aided",
        "delong_p",
        "mcnemar_stat",
        "mcnemar_p",
        "acc_unaided",
        "acc_aided",
        "delong_z",
        "mcnemar_exact_p",
        "sen_unaided",
        "sen_aided",
        "mcnemar_sen_p",
        "spe_unaided",
        "spe_aided",
        "mcnemar_spe_p",
        "n",
        "n_events",
    ]
    roc_cols = ["reader", "session", "threshold", "sensitivity", "specificity", "auc"]
    return {
        "reader_metrics": pd.DataFrame(metric_rows, columns=metric_cols),
        "reader_tests": pd.DataFrame(test_rows, columns=test_cols),
        "reader_kappa": pd.DataFrame(
            kappa_rows, columns=["session", "reader_a", "reader_b", "kappa", "low", "high", "n", "note"]
        ),
        "reader_roc": (pd.concat(roc_parts, ignore_index=True) if roc_parts else pd.DataFrame()).reindex(
            columns=roc_cols
        ),
    }


# --------------------------------------------------------------------------------------------------
# Simulation


def _operating_point(profile: ReaderProfile, prevalence: float) -> tuple[float, float, float]:
    """Threshold ``t``, class separation ``mu`` and sensitivity of a binormal reader (non-events N(0, 1))."""
    spe, acc = profile.specificity, profile.accuracy
    if not (0 < spe < 1 and 0 < acc < 1):
        raise StatsError(f"reader {profile.name}: accuracy and specificity must lie in (0, 1)")
    sen = (acc - (1 - prevalence) * spe) / prevalence
    sen = float(np.clip(sen, 0.01, 0.99))
    t = float(sps.norm.ppf(spe))
    return t, t - float(sps.norm.ppf(1 - sen)), sen


def _expected_kappa(rho: float, points: Sequence[tuple[float, float]], prevalence: float) -> float:
    """Mean pairwise expected Cohen's kappa of binormal readers whose latents correlate ``rho`` given y."""
    values = []
    cov = np.array([[1.0, rho], [rho, 1.0]])
    for (t1, m1), (t2, m2) in itertools.combinations(points, 2):
        both = 0.0
        p1 = p2 = 0.0
        for y, w in ((1, prevalence), (0, 1 - prevalence)):
            a, b = t1 - m1 * y, t2 - m2 * y
            both += w * float(sps.multivariate_normal.cdf([-a, -b], mean=[0, 0], cov=cov))
            p1 += w * float(sps.norm.sf(a))
            p2 += w * float(sps.norm.sf(b))
        po = both + (1 - p1 - p2 + both)
        pc = p1 * p2 + (1 - p1) * (1 - p2)
        values.append((po - pc) / (1 - pc))
    return float(np.mean(values))


def _shared_correlation(points: Sequence[tuple[float, float]], prevalence: float, kappa: float) -> float:
    """The within-class correlation of readers' latents giving expected inter-reader ``kappa``."""
    if len(points) < 2:
        return 0.0
    lo, hi = 0.0, 0.98
    f_lo = _expected_kappa(lo, points, prevalence) - kappa
    if f_lo >= 0:
        return 0.0
    if _expected_kappa(hi, points, prevalence) - kappa <= 0:
        return hi
    return float(optimize.brentq(lambda r: _expected_kappa(r, points, prevalence) - kappa, lo, hi, xtol=1e-6))


def simulate_reads(
    predictions: pd.DataFrame,
    split: str = "prospective",
    seed: int = 0,
    readers: Sequence[ReaderProfile] = STUDY_READERS,
    *,
    model_column: str = "prob_clinical_radiomics",
    cutoff: float | None = None,
    kappa: float = STUDY_KAPPA["unaided"],
    confidence: bool = False,
) -> pd.DataFrame:
    """SIMULATED unaided and aided reads of ``split`` by ``readers`` (default: the study's junior and senior).

    Only cases with status ok and a known label are read. The unaided reads follow each reader's
    accuracy and specificity (sensitivity derived from them and the split's prevalence) in a binormal
    latent model whose shared case component makes the expected inter-reader kappa equal ``kappa``;
    aided reads follow :data:`AIDED_RULE` with the model's probability ``model_column`` and its
    ``cutoff`` (default: inferred from the predictions' ``risk_group`` column, else 0.5). Realised
    rates vary around the targets by sampling. With ``confidence=True`` a ``confidence`` column holds
    each reader's probability Φ(evidence); otherwise reader AUCs are those of the calls, as the study's.
    Reader names end in "(simulated)"; ``attrs["simulated"]`` is True. Deterministic for a ``seed``.
    """
    pred = predictions.copy()
    if "case_id" in pred.columns:
        pred = pred.set_index("case_id")
    pred.index = pred.index.astype(str)
    for col in ("split", "label", model_column):
        if col not in pred.columns:
            raise InputError("predictions have no such column; cannot simulate reads", column=col)
    ok = (
        pred["status"].astype(str).eq("ok") if "status" in pred.columns else pd.Series(True, index=pred.index)
    )
    label = pd.to_numeric(pred["label"].astype(object), errors="coerce")
    cases = pred[(pred["split"].astype(str) == split) & ok & label.notna()]
    if cases.empty:
        raise InputError(
            f"split '{split}' has no case with status ok and a known label to simulate reads on",
            column="split",
        )
    y = label.loc[cases.index].to_numpy(dtype=float) == 1.0
    if y.all() or not y.any():
        raise InputError(
            f"split '{split}' has only one outcome class; cannot simulate a reader study", column="label"
        )
    prob = pd.to_numeric(cases[model_column].astype(object), errors="coerce").to_numpy(dtype=float)
    if np.isnan(prob).any():
        raise InputError(
            "missing model probability", case=str(cases.index[np.isnan(prob)][0]), column=model_column
        )
    if cutoff is None:
        cutoff = _infer_cutoff(pred, model_column)
    if not 0 < cutoff < 1:
        raise InputError(f"cut-off must lie in (0, 1), got {cutoff}", column=model_column)
    if not readers:
        raise InputError("no readers to simulate")
    for r in readers:
        if not 0 <= r.trust <= 1:
            raise InputError(f"reader {r.name}: trust must lie in [0, 1], got {r.trust}")

    prevalence = float(y.mean())
    ops = [_operating_point(r, prevalence) for r in readers]
    rho = _shared_correlation([(t, mu) for t, mu, _ in ops], prevalence, kappa)
    eps = 1e-12
    evidence = logit(np.clip(prob, eps, 1 - eps)) - logit(cutoff)
    sd = float(np.std(evidence, ddof=1)) if evidence.size > 1 else 1.0
    model_m = evidence / (sd if sd > 0 else 1.0)

    rng = np.random.default_rng(seed)
    n = y.size
    shared = rng.standard_normal(n)
    rows = []
    for profile, (t, mu, _) in zip(readers, ops, strict=True):
        own = rng.standard_normal(n)
        latent = mu * y + math.sqrt(rho) * shared + math.sqrt(1 - rho) * own
        unaided = latent - t
        aided = (1 - profile.trust) * unaided + profile.trust * model_m
        for session, ev in (("unaided", unaided), ("aided", aided)):
            part = pd.DataFrame(
                {
                    "case_id": cases.index,
                    "reader": profile.name,
                    "session": session,
                    "call": (ev >= 0).astype(int),
                }
            )
            if confidence:
                part["confidence"] = np.round(sps.norm.cdf(ev), 4)
            rows.append(part)
    out = pd.concat(rows, ignore_index=True)
    out.attrs["simulated"] = True
    out.attrs["rule"] = AIDED_RULE
    out.attrs["shared_correlation"] = rho
    return out


def _infer_cutoff(pred: pd.DataFrame, model_column: str) -> float:
    """The combined model's cut-off from the risk groups (midway between the highest low and lowest high)."""
    if "risk_group" not in pred.columns:
        return 0.5
    prob = pd.to_numeric(pred[model_column].astype(object), errors="coerce")
    group = pred["risk_group"].astype(str)
    high, low = prob[group == "high"].dropna(), prob[group == "low"].dropna()
    if high.empty or low.empty:
        return float(high.min()) if not high.empty else 0.5
    return float((low.max() + high.min()) / 2.0)


# --------------------------------------------------------------------------------------------------
# Recording reads (the Slicer panel)


def _reads_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        return pd.DataFrame(columns=list(READS_COLUMNS))
    return load_reads(path)


def read_status(path: str | PathLike[str], case_id: str, reader: str) -> dict[str, int]:
    """The calls a reader already recorded for a case: ``{session: call}``."""
    table = _reads_table(Path(path))
    part = table[
        (table["case_id"].astype(str) == str(case_id)) & (table["reader"].astype(str) == str(reader))
    ]
    return {str(s): int(c) for s, c in zip(part["session"], part["call"], strict=True)}


def record_read(
    path: str | PathLike[str],
    case_id: str,
    reader: str,
    session: str,
    call: int,
    confidence: float | None = None,
) -> pd.DataFrame:
    """Append one read to a reads CSV (written atomically) and return the whole table.

    The protocol of the study's reader study is enforced: a reader records the ``unaided`` call of a
    case before seeing the model's output and the ``aided`` call after; each once.
    """
    from ALNMPredictorLib.fileio import write_table

    path = Path(path)
    case_id, reader, session = str(case_id).strip(), str(reader).strip(), str(session).strip().lower()
    if not reader:
        raise InputError("enter the reader's name or code", case=case_id, column="reader")
    if session not in SESSIONS:
        raise InputError(
            f"session must be 'unaided' or 'aided', got {session!r}", case=case_id, column="session"
        )
    done = read_status(path, case_id, reader)
    if session in done:
        raise InputError(
            f"reader {reader} already recorded the {session} call of this case",
            case=case_id,
            column="session",
            path=path,
        )
    if session == "aided" and "unaided" not in done:
        raise InputError(
            f"reader {reader}: record the unaided call before the aided one",
            case=case_id,
            column="session",
            path=path,
        )
    table = _reads_table(path)
    row = {
        "case_id": case_id,
        "reader": reader,
        "session": session,
        "call": call,
        "confidence": math.nan if confidence is None else confidence,
    }
    frame = pd.DataFrame([row], columns=list(READS_COLUMNS))
    combined = frame if table.empty else pd.concat([table, frame], ignore_index=True)
    checked = validate_reads(combined, path=None)
    if checked["confidence"].isna().all():
        checked = checked.drop(columns=["confidence"])
    write_table(path, checked)
    return checked
