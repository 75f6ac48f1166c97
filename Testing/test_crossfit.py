"""Cross-fitted region scores for the second stage (ALNMModel score_fit="crossfit", the default).

Each training case's score that the univariate screen, the stepwise model and the nomogram see must come
from a selection chain fitted without that case (and without any copy of it in a bootstrap resample);
test cases get the score fitted on all training cases. ``score_fit="insample"`` is the reference
study's way and must stay exactly what it was.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ALNMPredictorLib.errors import ALNMError
from ALNMPredictorLib.modeling import ALNMModel, stratified_group_folds

pytestmark = pytest.mark.filterwarnings("ignore:.*the ICC reproducibility filter was skipped:UserWarning")


def _table(seed: int, n: int, n_noise: int = 20, signal: float = 1.2) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    cols = {}
    for region in ("tumor", "ln"):
        for j in range(2):
            cols[f"{region}_original_signal{j}"] = rng.normal(0, 1, n) + signal * y
        for j in range(n_noise):
            cols[f"{region}_original_noise{j:02d}"] = rng.normal(0, 1, n)
    table = pd.DataFrame(cols, index=pd.Index([f"C{i:03d}" for i in range(n)], name="case_id"))
    table["age"] = rng.normal(54, 10, n) + 4 * y
    return table, pd.Series(y, index=table.index)


def _model(**kw) -> ALNMModel:
    return ALNMModel(clinical=["age"], score_params={"lasso_folds": 5}, random_state=0, **kw)


class _Recorder:
    """Wraps ALNMModel._fit_score to record the training rows of every region-score fit."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, pd.Index]] = []
        original = ALNMModel._fit_score

        def recording(model, region, x, *args, **kwargs):
            self.calls.append((region, x.index))
            return original(model, region, x, *args, **kwargs)

        monkeypatch.setattr(ALNMModel, "_fit_score", recording)


def test_training_scores_are_out_of_fold(monkeypatch):
    table, y = _table(1, 160)
    recorder = _Recorder(monkeypatch)
    model = _model().fit(table, y)
    assert [r for r, _ in recorder.calls[:2]] == ["tumor", "ln"]  # first the final scores, on every case
    assert all(len(ix) == len(table) for _, ix in recorder.calls[:2])
    folds = recorder.calls[2:]
    assert len(folds) == 2 * 5
    held_out_somewhere: dict[str, set[str]] = {"tumor": set(), "ln": set()}
    for region, fitted_on in folds:
        held = table.index.difference(fitted_on)
        held_out_somewhere[region] |= set(held)
    assert all(s == set(table.index) for s in held_out_somewhere.values())  # every case held out once
    scores = model.training_predictors_[["tumor_score", "ln_score"]]
    in_sample = model.predictor_table(table)[["tumor_score", "ln_score"]]
    assert not np.allclose(scores.to_numpy(), in_sample.to_numpy())
    # stratified: every fold's held-out cases hold both outcomes in about the cohort's share
    for _, fitted_on in folds[:5]:
        held = table.index.difference(fitted_on)
        assert abs(y.loc[held].mean() - y.mean()) < 0.1
    info = model.crossfit_
    assert info["folds"] == 5 and info["seed"] == 0
    assert set(info["final"]["tumor"]) == set(model.region_scores_["tumor"].selected_)
    assert all(1 <= k <= 5 for k in info["selected"]["tumor"].values())


def test_out_of_fold_score_is_the_fold_models_score(monkeypatch):
    """Refit one fold by hand: its held-out cases' training scores equal that refit's scores."""
    table, y = _table(2, 150)
    fitted: list = []
    original = ALNMModel._fit_score

    def keep(model, region, x, *args, **kwargs):
        scorer = original(model, region, x, *args, **kwargs)
        fitted.append((region, x.index, scorer))
        return scorer

    monkeypatch.setattr(ALNMModel, "_fit_score", keep)
    model = _model().fit(table, y)
    for region, fitted_on, scorer in fitted[2:]:
        held = table.index.difference(fitted_on)
        np.testing.assert_allclose(
            model.training_predictors_.loc[held, f"{region}_score"],
            scorer.decision_function(table.loc[held]),
            rtol=1e-12,
        )


def test_copies_of_a_case_stay_in_one_fold(monkeypatch):
    table, y = _table(3, 120)
    rows = np.random.default_rng(0).integers(0, len(table), len(table))
    source = table.index[rows]
    resample = table.iloc[rows].copy()
    resample.index = pd.Index([f"{c}#{k}" for k, c in enumerate(source)], name="case_id")
    groups = pd.Series(list(source), index=resample.index)
    recorder = _Recorder(monkeypatch)
    _model().fit(resample, y.iloc[rows].set_axis(resample.index), groups=groups)
    for _, fitted_on in recorder.calls[2:]:
        held = resample.index.difference(fitted_on)
        assert not set(groups.loc[held]) & set(groups.loc[fitted_on])
    # without groups, copies are split across folds (which would let a case score itself)
    recorder.calls.clear()
    _model().fit(resample, y.iloc[rows].set_axis(resample.index))
    shared = [
        bool(set(groups.loc[resample.index.difference(f)]) & set(groups.loc[f]))
        for _, f in recorder.calls[2:]
    ]
    assert any(shared)


# 30 draws of 30 cases (copies share a case's class) in 3 folds, seed 5, as scikit-learn 1.9.1's
# StratifiedGroupKFold(3, shuffle=True, random_state=5) assigns them (scikit-learn 1.3-1.7 do not)
_SOURCE = np.array(
    "28 18 20 26 17 23 25 6 1 9 8 26 27 0 14 24 3 23 3 14 24 9 10 8 21 7 29 13 14 15".split(), dtype=int
)
_LABELS = np.array("0 1 1 0 1 0 1 1 0 1 1 0 0 0 0 1 0 0 0 0 1 1 0 1 1 0 0 0 0 0".split(), dtype=int)
_FOLDS = np.array("0 1 0 1 0 1 2 2 1 0 1 1 2 2 0 2 2 1 2 0 2 0 1 1 1 2 2 0 0 0".split(), dtype=int)


def test_grouped_folds_are_the_same_with_every_scikit_learn_version():
    folds = stratified_group_folds(_LABELS, _SOURCE, 3, 5)
    fold_of = np.empty(len(_LABELS), dtype=int)
    for k, (fit, held) in enumerate(folds):
        assert np.array_equal(np.sort(np.concatenate([fit, held])), np.arange(len(_LABELS)))
        fold_of[held] = k
    assert fold_of.tolist() == _FOLDS.tolist()
    # stratified: 12 of the 30 rows are positive, 4 in each fold
    assert [int(_LABELS[held].sum()) for _, held in folds] == [4, 4, 4]
    with pytest.raises(ALNMError, match="5 folds need at least 5 groups of cases; there are 3"):
        stratified_group_folds(np.array([0, 1, 0, 1, 0, 1]), np.array([1, 1, 2, 2, 3, 3]), 5, 0)


def test_grouped_folds_equal_scikit_learn_18_and_later():
    import sklearn
    from sklearn.model_selection import StratifiedGroupKFold

    if tuple(int(v) for v in sklearn.__version__.split(".")[:2]) < (1, 8):
        pytest.skip(f"scikit-learn {sklearn.__version__} shuffles the class counts without their groups")
    for trial in range(40):
        rng = np.random.default_rng(trial)
        n, k = int(rng.integers(20, 150)), int(rng.integers(2, 7))
        if trial % 2:  # a bootstrap resample: copies of a case share its class
            groups = rng.integers(0, n, n)
            y = (rng.random(n) < rng.uniform(0.2, 0.6)).astype(int)[groups]
        else:  # groups of mixed classes
            groups = rng.integers(0, n // 2 + 2, n)
            y = (rng.random(n) < 0.4).astype(int)
        expected = StratifiedGroupKFold(k, shuffle=True, random_state=trial).split(np.zeros(n), y, groups)
        own = stratified_group_folds(y, groups, k, trial)
        for (fit, held), (fit_ref, held_ref) in zip(own, expected, strict=True):
            assert np.array_equal(fit, fit_ref) and np.array_equal(held, held_ref), trial


def test_insample_is_the_reference_studys_way():
    table, y = _table(4, 160)
    model = _model(score_fit="insample").fit(table, y)
    pd.testing.assert_frame_equal(model.training_predictors_, model.predictor_table(table))
    assert model.crossfit_ is None
    again = ALNMModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert again.score_fit == "insample"


def test_crossfit_round_trips_and_old_models_read_as_insample():
    table, y = _table(5, 160)
    model = _model().fit(table, y)
    body = json.loads(json.dumps(model.to_dict()))
    again = ALNMModel.from_dict(body)
    assert again.score_fit == "crossfit" and again.crossfit_ == model.crossfit_
    np.testing.assert_allclose(again.predict_proba(table), model.predict_proba(table), rtol=1e-12)
    body.pop("crossfit")  # as written before cross-fitting existed
    for key in ("score_fit", "crossfit_folds"):
        body["params"].pop(key)
    old = ALNMModel.from_dict(body)
    assert old.score_fit == "insample"


def test_too_few_cases_for_the_folds_is_a_clear_error():
    table, y = _table(6, 60)
    y.iloc[:] = 0
    y.iloc[:4] = 1
    with pytest.raises(ALNMError, match="cross-fitting needs at least 5 training cases of each outcome"):
        _model().fit(table, y)
    with pytest.raises(ALNMError, match="score_fit must be one of"):
        _model(score_fit="oof").fit(table, y)


# --------------------------------------------------------------------------------------------------
# The failing-today case (issue 14): a region score of noise beside a clinical factor with the signal

NOISE_SEEDS = (0, 1, 2, 3)
#: how far the combined model's test AUC may fall below the clinical model's with cross-fitting: about
#: 0.4 standard errors of an AUC near 0.8 on 300 test cases (SE ~0.025), room for a weak score that
#: stepwise keeps by chance, far below the 0.02-0.10 losses of the in-sample way on these seeds
NOISE_MARGIN = 0.01


def _noise_cohort(seed: int, n_train: int = 150, n_test: int = 300, p: int = 300):
    """One clinical factor (age, log-OR 1.6 per SD) carries the signal; 300 tumour features are noise, 3
    of them with a faint shift (0.15 SD)."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    age = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(1.6 * age - 0.3)))).astype(int)
    feats = pd.DataFrame(rng.normal(size=(n, p)), columns=[f"tumor_f{i:03d}" for i in range(p)])
    feats.iloc[:, :3] += 0.15 * (2 * y[:, None] - 1)
    table = feats.assign(age=age).set_index(pd.Index([f"c{i}" for i in range(n)], name="case_id"))
    return table.iloc[:n_train], y[:n_train], table.iloc[n_train:], y[n_train:]


@pytest.fixture(scope="module")
def noise_results() -> dict[str, list[tuple[float, float, list[str]]]]:
    from ALNMPredictorLib.stats import auc_ci

    out: dict[str, list[tuple[float, float, list[str]]]] = {"insample": [], "crossfit": []}
    for seed in NOISE_SEEDS:
        train, y_train, test, y_test = _noise_cohort(seed)
        for mode in out:
            model = ALNMModel(regions=("tumor",), clinical=["age"], score_fit=mode, random_state=seed).fit(
                train, y_train
            )
            inputs = model.predictor_table(test)
            models = model.models()
            clinical = auc_ci(y_test, models["clinical"].predict_proba(inputs).to_numpy()).auc
            combined = auc_ci(y_test, models["clinical_radiomics"].predict_proba(inputs).to_numpy()).auc
            out[mode].append((clinical, combined, list(model.combined_model_.variables)))
    return out


def test_crossfit_keeps_a_noise_score_from_pulling_the_combined_model_down(noise_results):
    for seed, (clinical, combined, _) in zip(NOISE_SEEDS, noise_results["crossfit"], strict=True):
        assert combined >= clinical - NOISE_MARGIN, (
            f"seed {seed}: combined {combined:.3f} < clinical {clinical:.3f}"
        )


def test_insample_reproduces_the_reference_studys_failure(noise_results):
    """The study's way keeps the in-sample score every time and, on average, loses to the clinical model."""
    assert all("tumor_score" in variables for _, _, variables in noise_results["insample"])
    clinical = np.mean([c for c, _, _ in noise_results["insample"]])
    combined = np.mean([m for _, m, _ in noise_results["insample"]])
    assert combined < clinical - NOISE_MARGIN
