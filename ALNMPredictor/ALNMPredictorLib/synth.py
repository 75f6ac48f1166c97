"""SYNTHETIC multicentre ultrasound cohort modelled on Zhang et al. (866 patients, 6 hospitals).

Everything this module writes is synthetic (:data:`ALNMPredictorLib.SYNTHETIC_LABEL`): no patient data,
not for clinical use. It is the embedded default cohort of ``alnm demo`` and of the tests.

Generative model (what depends on the label ``y`` and how strongly)
-------------------------------------------------------------------
Sets and labels.  ``train`` and ``internal`` (hospital ``H1``, 8:2), ``external`` (``H2``-``H6``) and
``prospective`` (``H1``, later) have the study's sizes 421/106/222/107 (``--paper-scale``: 856 patients;
the paper's text says 866 but its sets sum to 856), scaled to ``n_patients`` (largest remainder, at
least 2 per set). Each set holds exactly ``round(n * prevalence)`` metastatic cases, prevalence
64.6/67.9/55.4/46.2 %; labels are shuffled within the set.

Clinical columns (naive-Bayes structure: given ``y`` the columns are independent of each other, so the
univariate odds ratio of a factor is also its multivariable odds ratio, and the true model is additive
on the logit scale).  For every set the class-conditional distributions are solved so that the
marginal matches that set's Table 1 and the odds ratio matches Table 2 (the same ORs in all sets):

=======================  ===================================================  ====================
column                   distribution                                         OR (ALNM vs none)
=======================  ===================================================  ====================
``tumor_size_cm``        normal truncated to [0.5, 8] cm, common SD, mean       1.75 per cm
                         shift ``log(1.75) * SD**2``; mixture mean/SD = Table 1
``age``                  normal truncated to [25, 90], years, as above          0.99 per year
``margin``               non-circumscribed vs circumscribed                     2.90
``microcalcification``   present vs absent                                      1.62
``us_reported_alnm``     present vs absent; a noisy reading of the LN (below)   5.91
``shape``                irregular vs oval_round                                2.24
``echotexture``          heterogeneous vs hypoechoic                            1.29
``orientation``          nonparallel vs parallel                                0.65
``location``             right vs left                                          0.99
``posterior_features``   shadowing / enhancement vs none                        1.28 / 0.58
``adler_grade``          1 / 2 / 3 vs 0                                         0.88 / 1.36 / 1.21
``molecular_type``,      Table 1 marginals, independent of ``y``                1
``er pr her2 ki67``      (receptors follow the molecular type: luminal A is
``histology``            HR+ HER2- Ki-67 <20 %, triple negative ER- PR- HER2-)
=======================  ===================================================  ====================

Lymph node (the strong signal).  A latent LN severity ``s ~ N(2.0 * y, 1)`` drives the five US criteria
of the study through criterion latents ``u_k = 0.7 s + sqrt(1 - 0.49) e_k`` (k = round, cortex, hilum,
mass, flow; each alone separates the classes with d' = 1.4, AUC ~0.84, with realistic overlap):

* roundness: long/short axis ratio ``2.6 * exp(-0.28 u_round)`` (ratio < 2 is suspicious);
* cortex thickness ``1.7 mm * exp(0.5 u_cortex)`` (> 3.5 mm suspicious), at most 90 % of the short
  half-axis;
* fatty hilum: visible fraction ``sigmoid(1.6 - 1.4 u_hilum)``, below 0.15 = complete loss;
* mass / replacement: eccentric cortical bulge ``0.7 * sigmoid(2 (u_mass - 1.2))`` and intranodal
  microcalcifications when ``u_mass > 2``;
* non-hilar cortical flow (Doppler): not visible in the grey-scale image, only in the reading below.

The long axis is lognormal around 15 mm (``exp(0.06 s)``, nearly independent of ``y``). The node is drawn
with a hypoechoic cortex and an echogenic hilum in speckle; its mask is the outer boundary. The image
criteria together separate the classes with d' ~ 1.8 (ideal LN score AUC ~0.9).

``us_reported_alnm`` is a radiologist's reading of the same node and of the other axillary nodes seen
while scanning (not in the saved image): present when ``0.5 mean(u_round, u_cortex, u_hilum, u_mass,
u_flow) + 0.5 o + reader noise > threshold``, with ``o`` (other nodes) distributed like that mean but
independent of it; per set the reader noise SD and threshold are solved so that its prevalence matches
Table 1 and its OR is 5.91. So the report carries information beyond the LN image, as in the study,
where US-reported ALNM stayed in the clinical-radiomics model beside the LN score.

Tumour (the modest signal).  A hypoechoic mass in breast-tissue speckle whose largest diameter is
``tumor_size_cm`` (a tumour larger than the field of view, about 10 %, is shrunk to fit; the drawn size
is in ``synthetic_truth.csv``), taller-than-wide when ``orientation`` is nonparallel, lobulated when
``shape`` is irregular, angular and spiculated with a blurred edge when ``margin`` is non-circumscribed,
bright 1-2 px specks when
``microcalcification`` is present, posterior shadowing / enhancement per ``posterior_features``, more
internal heterogeneity when ``echotexture`` is heterogeneous. A tumour texture latent
``t ~ N(0.7 * y, 1)`` adds metastasis-related heterogeneity and darkening (d' 0.7 alone, AUC ~0.69).
Together with size, margin and microcalcification, an ideal tumour score reaches AUC ~0.75-0.8.
``adler_grade`` (Doppler) is not drawn.

Expected performance (ideal latent variables, large cohort): clinical model (size, margin, US-reported
ALNM) AUC ~0.81, LN image criteria ~0.90, tumour ~0.79, everything together ~0.93. Simple mask and
intensity features recover LN ~0.87 and tumour ~0.71; radiomics pipelines land in between.

Scanners.  Every centre has its own look (:data:`CENTERS`): gain, dynamic range of the log compression,
depth-gain slope, speckle size (axial and lateral, mm) and pixel spacing (tumour and LN images), so a
model trained on ``H1`` meets a domain shift on ``H2``-``H6``. ``prospective`` is ``H1`` again.

Re-segmentations.  For 50 training cases (scaled, at least 10) ``<region>_mask_reader2`` (another
radiologist: outline smoothed over spicules, +-1-3 px erosion/dilation, +-1.5 px boundary jitter) and
``<region>_mask_repeat`` (same radiologist two weeks later: +-1-2 px, +-0.8 px jitter) are written.

Determinism.  One :class:`numpy.random.SeedSequence` per cohort: one child draws the clinical table, the
other spawns one child per patient for its images, so a seed gives byte-identical files whatever the
number of worker processes.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage, optimize, special

from ALNMPredictorLib import SYNTHETIC_LABEL, __version__, fileio
from ALNMPredictorLib.errors import ALNMError

log = logging.getLogger(__name__)

#: bump when the generator changes, so cached cohorts are regenerated
GENERATOR_VERSION = 1

SETS: tuple[str, ...] = ("train", "internal", "external", "prospective")
#: full-scale set sizes and metastatic cases (Table 1)
FULL_SIZES: dict[str, int] = {"train": 421, "internal": 106, "external": 222, "prospective": 107}
FULL_POSITIVES: dict[str, int] = {"train": 272, "internal": 72, "external": 123, "prospective": 54}
PAPER_SCALE = sum(FULL_SIZES.values())  # 856: the study's sets (its text says 866 patients)
ICC_CASES = 50
MIN_PATIENTS = 20


@dataclass(frozen=True)
class ScannerLook:
    """One centre's ultrasound scanner: how its images look."""

    center: str
    gain_db: float
    dynamic_range_db: float
    tgc_db: float  # depth-gain slope over the image height
    speckle_axial_mm: float
    speckle_lateral_mm: float
    tumor_spacing: float  # mm per pixel
    ln_spacing: float
    external_share: float  # share of the external set (0 for H1)


CENTERS: dict[str, ScannerLook] = {
    look.center: look
    for look in (
        ScannerLook("H1", 0.0, 60.0, 0.0, 0.15, 0.27, 0.210, 0.090, 0.0),
        ScannerLook("H2", 4.0, 50.0, 3.0, 0.19, 0.33, 0.238, 0.100, 0.24),
        ScannerLook("H3", -3.0, 70.0, -2.0, 0.12, 0.22, 0.182, 0.080, 0.22),
        ScannerLook("H4", 2.0, 55.0, 4.0, 0.17, 0.38, 0.252, 0.105, 0.20),
        ScannerLook("H5", -5.0, 66.0, -3.0, 0.22, 0.25, 0.196, 0.075, 0.18),
        ScannerLook("H6", 6.0, 46.0, 1.0, 0.14, 0.30, 0.224, 0.095, 0.16),
    )
}

# Tumour images: 0.18-0.25 mm pixels, a field of view of about 5 x 6 cm. pyradiomics' 3D shape class
# costs about the 4th power of an ROI's linear size in pixels and tumour ROIs are the large ones, so
# this resolution (1.4x coarser than a first version) keeps `alnm demo` within its time budget.
TUMOR_SHAPE = (206, 252)  # rows, columns
LN_SHAPE = (224, 288)

# ---- Table 1 (per set, in SETS order) and Table 2 (univariate ORs, training set) ---------------------
_AGE = {"train": (54.0, 10.6), "internal": (52.5, 8.8), "external": (54.4, 11.6), "prospective": (53.8, 10.0)}
_SIZE = {"train": (2.9, 1.5), "internal": (2.7, 1.1), "external": (2.9, 1.5), "prospective": (2.4, 1.0)}
OR_TUMOR_SIZE_PER_CM = 1.75
OR_AGE_PER_YEAR = 0.99
OR_US_REPORTED_ALNM = 5.91


@dataclass(frozen=True)
class _Categorical:
    name: str
    levels: tuple[str, ...]  # reference level first
    percent: tuple[tuple[float, ...], ...]  # per set, one % per level
    odds_ratios: tuple[float, ...]  # per level vs the reference


def _binary(name: str, levels: tuple[str, str], pct: Sequence[float], odds_ratio: float) -> _Categorical:
    return _Categorical(name, levels, tuple((100.0 - p, p) for p in pct), (1.0, odds_ratio))


CATEGORICALS: tuple[_Categorical, ...] = (
    _binary("location", ("left", "right"), (46.1, 50.9, 45.9, 49.6), 0.99),
    _binary("orientation", ("parallel", "nonparallel"), (14.5, 5.7, 14.4, 9.4), 0.65),
    _binary("margin", ("circumscribed", "non-circumscribed"), (85.5, 78.3, 75.7, 77.8), 2.90),
    _binary("shape", ("oval_round", "irregular"), (97.4, 96.2, 96.4, 96.6), 2.24),
    _binary("echotexture", ("hypoechoic", "heterogeneous"), (17.1, 10.4, 15.3, 27.4), 1.29),
    _binary("microcalcification", ("absent", "present"), (60.6, 67.9, 50.5, 59.8), 1.62),
    _Categorical(
        "posterior_features",
        ("none", "shadowing", "enhancement"),
        ((53.0, 35.9, 11.1), (43.4, 38.7, 17.9), (40.5, 46.4, 13.1), (40.2, 42.7, 17.1)),
        (1.0, 1.28, 0.58),
    ),
    _Categorical(
        "adler_grade",
        ("0", "1", "2", "3"),
        ((13.1, 47.0, 28.0, 11.9), (13.2, 53.8, 27.4, 5.7), (12.2, 54.5, 22.5, 10.8), (8.5, 59.0, 23.1, 9.4)),
        (1.0, 0.88, 1.36, 1.21),
    ),
    _Categorical(
        "molecular_type",
        ("luminal_a", "luminal_b", "her2_positive", "triple_negative"),
        (
            (21.6, 49.9, 15.0, 13.5),
            (19.8, 54.7, 15.1, 10.4),
            (27.9, 39.2, 16.2, 16.7),
            (23.1, 54.7, 11.1, 11.1),
        ),
        (1.0, 1.0, 1.0, 1.0),
    ),
    _binary("histology", ("nst", "other"), (3.1, 3.8, 5.0, 4.7), 1.0),
)
_US_REPORTED_PCT = (63.2, 77.4, 41.9, 48.7)
_RECEPTOR_PCT = {  # er+, pr+, her2+, ki67>=20 per set
    "er": (65.1, 69.8, 64.9, 72.6),
    "pr": (65.1, 64.2, 51.8, 71.8),
    "her2": (36.6, 35.8, 27.5, 24.8),
    "ki67": (69.8, 72.6, 61.3, 75.2),
}

#: reference level of every categorical column (the study's reference category)
REFERENCE_LEVELS: dict[str, str] = {c.name: c.levels[0] for c in CATEGORICALS} | {
    "us_reported_alnm": "absent",
    "er": "negative",
    "pr": "negative",
    "her2": "negative",
    "ki67": "lt20",
}
CLINICAL_COLUMNS: tuple[str, ...] = (
    "age",
    "tumor_size_cm",
    "location",
    "orientation",
    "margin",
    "shape",
    "echotexture",
    "microcalcification",
    "posterior_features",
    "adler_grade",
    "us_reported_alnm",
    "er",
    "pr",
    "her2",
    "ki67",
    "molecular_type",
    "histology",
)
REGIONS: tuple[str, ...] = ("tumor", "ln")

# ---- latent model -------------------------------------------------------------------------------------
LN_SEVERITY_SHIFT = 2.0  # s ~ N(LN_SEVERITY_SHIFT * y, 1)
LN_CRITERION_LOADING = 0.7  # u_k = c s + sqrt(1 - c^2) e_k
LN_CRITERIA = ("round", "cortex", "hilum", "mass", "flow")
#: share of the radiologist's US-reported ALNM reading that comes from what the saved LN image does not
#: show (the other axillary nodes seen while scanning in real time): as in the study, the report then
#: keeps information beyond the LN score (the study's clinical-radiomics model retained it, OR 2.24)
US_OTHER_NODES_SHARE = 0.5
TUMOR_TEXTURE_SHIFT = 0.7  # t ~ N(TUMOR_TEXTURE_SHIFT * y, 1)


# ======================================================================================================
# clinical table
# ======================================================================================================
def split_sizes(n_patients: int) -> dict[str, int]:
    """Patients per set for a cohort of ``n_patients``: the study's 421/106/222/107, scaled."""
    n_patients = int(n_patients)
    if n_patients < MIN_PATIENTS:
        raise ALNMError(f"a synthetic cohort needs at least {MIN_PATIENTS} patients, got {n_patients}")
    sizes = _largest_remainder(n_patients, [FULL_SIZES[s] for s in SETS])
    while min(sizes) < 2:  # keep both classes possible in every set
        sizes[int(np.argmin(sizes))] += 1
        sizes[int(np.argmax(sizes))] -= 1
    return dict(zip(SETS, sizes, strict=True))


def prevalence(split: str) -> float:
    """The study's ALNM prevalence in a set."""
    return FULL_POSITIVES[split] / FULL_SIZES[split]


def _largest_remainder(total: int, weights: Sequence[float]) -> list[int]:
    w = np.asarray(weights, dtype=float)
    exact = total * w / w.sum()
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return [int(c) for c in counts]


def conditional_probabilities(
    marginal: Sequence[float], odds_ratios: Sequence[float], prev: float
) -> tuple[np.ndarray, np.ndarray]:
    """Class-conditional level probabilities ``(P(level | y=0), P(level | y=1))``.

    Chosen so that ``prev * p1 + (1 - prev) * p0 == marginal`` and the odds ratio of every level against
    the first (reference) level equals ``odds_ratios``.
    """
    m = np.asarray(marginal, dtype=float)
    m = m / m.sum()
    odds = np.asarray(odds_ratios, dtype=float)
    if np.allclose(odds, odds[0]):
        return m.copy(), m.copy()

    def p0_of(z: float) -> np.ndarray:  # z = sum_j p0_j * OR_j
        return m / (prev * odds / z + 1.0 - prev)

    z = optimize.brentq(lambda z: p0_of(z).sum() - 1.0, odds.min(), odds.max(), xtol=1e-14)
    p0 = p0_of(z)
    p0 = p0 / p0.sum()
    p1 = p0 * odds / np.dot(p0, odds)
    return p0, p1


def _truncated_normal_moments(mu: float, sigma: float, lo: float, hi: float) -> tuple[float, float]:
    a, b = (lo - mu) / sigma, (hi - mu) / sigma
    mass = special.ndtr(b) - special.ndtr(a)
    pa, pb = np.exp(-0.5 * a * a) / np.sqrt(2 * np.pi), np.exp(-0.5 * b * b) / np.sqrt(2 * np.pi)
    mean = mu + sigma * (pa - pb) / mass
    var = sigma**2 * (1 + (a * pa - b * pb) / mass - ((pa - pb) / mass) ** 2)
    return float(mean), float(var)


def _shifted_normal_params(
    mean: float, sd: float, odds_ratio: float, prev: float, lo: float, hi: float
) -> tuple[float, float, float]:
    """``(mu0, mu1, sigma)`` of truncated normals with a common SD whose log-likelihood ratio is
    ``log(odds_ratio) * x`` and whose mixture has the given mean and SD."""
    beta = np.log(odds_ratio)

    def mixture(params: np.ndarray) -> np.ndarray:
        mu0, log_sigma = params
        sigma = np.exp(log_sigma)
        mu1 = mu0 + beta * sigma**2
        m0, v0 = _truncated_normal_moments(mu0, sigma, lo, hi)
        m1, v1 = _truncated_normal_moments(mu1, sigma, lo, hi)
        mix_mean = prev * m1 + (1 - prev) * m0
        mix_var = prev * (v1 + m1**2) + (1 - prev) * (v0 + m0**2) - mix_mean**2
        return np.array([mix_mean - mean, np.sqrt(max(mix_var, 1e-12)) - sd])

    # untruncated closed form as the starting point
    q = prev * (1 - prev) * beta**2
    sigma2 = sd**2 if q == 0 else (-1 + np.sqrt(1 + 4 * q * sd**2)) / (2 * q)
    start = np.array([mean - prev * beta * sigma2, 0.5 * np.log(sigma2)])
    solution = optimize.root(mixture, start, method="hybr")
    mu0, log_sigma = solution.x if solution.success else start
    sigma = float(np.exp(log_sigma))
    return float(mu0), float(mu0 + beta * sigma**2), sigma


def _draw_truncated_normal(
    rng: np.random.Generator, mu: np.ndarray, sigma: float, lo: float, hi: float
) -> np.ndarray:
    a, b = special.ndtr((lo - mu) / sigma), special.ndtr((hi - mu) / sigma)
    u = rng.uniform(size=np.shape(mu))
    return mu + sigma * special.ndtri(a + u * (b - a))


def _draw_levels(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One level index per row of ``probs`` (n x K)."""
    u = rng.uniform(size=len(probs))
    return np.minimum((np.cumsum(probs, axis=1) < u[:, None]).sum(axis=1), probs.shape[1] - 1)


def _us_reading_params(prev: float, pct_present: float) -> tuple[float, float]:
    """``(threshold, reader_noise_sd)`` of the US-reported ALNM reading in one set."""
    p0, p1 = conditional_probabilities([100 - pct_present, pct_present], [1.0, OR_US_REPORTED_ALNM], prev)
    z0, z1 = special.ndtri(p0[1]), special.ndtri(p1[1])
    c, k = LN_CRITERION_LOADING, len(LN_CRITERIA)
    shift = c * LN_SEVERITY_SHIFT  # mean of the appearance score A = mean(u_k) given y=1 (0 given y=0)
    w = US_OTHER_NODES_SHARE  # reading = (1 - w) A + w O, O: other nodes, distributed as A but independent
    var_a = ((1 - w) ** 2 + w**2) * (c**2 + (1 - c**2) / k)
    tau = shift / (z1 - z0)
    noise_var = tau**2 - var_a
    if noise_var < 0:  # the LN appearance is not separating enough for this OR: read it without noise
        log.warning(
            "US-reported ALNM: LN appearance too weak for OR %.2f; reading without noise", OR_US_REPORTED_ALNM
        )
        noise_var, tau = 0.0, np.sqrt(var_a)
    return float(-z0 * tau), float(np.sqrt(noise_var))


def synth_clinical(n_patients: int = 200, seed: int = 0, *, include_latent: bool = False) -> pd.DataFrame:
    """The SYNTHETIC cohort's table without images: ``case_id, label, split, center`` and clinical columns.

    Same ``n_patients`` and ``seed`` give the same table as :func:`synth_cohort`. With ``include_latent``
    the hidden generative variables are added as ``latent_*`` columns (never written to a manifest).
    """
    clinical_seq, _ = np.random.SeedSequence(int(seed)).spawn(2)
    rng = np.random.default_rng(clinical_seq)
    sizes = split_sizes(n_patients)
    parts = []
    for set_index, split in enumerate(SETS):
        parts.append(_draw_set(rng, split, set_index, sizes[split]))
    table = pd.concat(parts, ignore_index=True)
    table.insert(0, "case_id", [f"P{i + 1:04d}" for i in range(len(table))])
    # ICC re-segmentation cases: a random subset of the training split
    train_idx = np.flatnonzero(table["split"].to_numpy() == "train")
    n_icc = min(len(train_idx), max(10, round(ICC_CASES * len(table) / PAPER_SCALE)))
    icc = np.zeros(len(table), dtype=bool)
    icc[np.sort(rng.choice(train_idx, size=n_icc, replace=False))] = True
    table["latent_icc_case"] = icc
    if not include_latent:
        table = table.drop(columns=[c for c in table.columns if c.startswith("latent_")])
    return table


def _draw_set(rng: np.random.Generator, split: str, set_index: int, n: int) -> pd.DataFrame:
    prev = prevalence(split)
    n_pos = int(np.clip(round(n * prev), 1, n - 1))
    y = np.zeros(n, dtype=int)
    y[:n_pos] = 1
    y = rng.permutation(y)
    if split == "external":
        centers = [c for c in CENTERS if CENTERS[c].external_share > 0]
        counts = _largest_remainder(n, [CENTERS[c].external_share for c in centers])
        center = rng.permutation(np.repeat(centers, counts))
    else:
        center = np.full(n, "H1")
    out: dict[str, Any] = {"label": y, "split": np.full(n, split), "center": center}

    age_mean, age_sd = _AGE[split]
    mu0, mu1, sigma = _shifted_normal_params(age_mean, age_sd, OR_AGE_PER_YEAR, prev, 25.0, 90.0)
    out["age"] = np.round(_draw_truncated_normal(rng, np.where(y == 1, mu1, mu0), sigma, 25.0, 90.0)).astype(
        int
    )
    size_mean, size_sd = _SIZE[split]
    mu0, mu1, sigma = _shifted_normal_params(size_mean, size_sd, OR_TUMOR_SIZE_PER_CM, prev, 0.5, 8.0)
    out["tumor_size_cm"] = np.round(
        _draw_truncated_normal(rng, np.where(y == 1, mu1, mu0), sigma, 0.5, 8.0), 1
    )

    for spec in CATEGORICALS:
        p0, p1 = conditional_probabilities(spec.percent[set_index], spec.odds_ratios, prev)
        idx = _draw_levels(rng, np.where(y[:, None] == 1, p1[None, :], p0[None, :]))
        out[spec.name] = np.asarray(spec.levels, dtype=object)[idx]
    out["adler_grade"] = out["adler_grade"].astype(int)

    # receptors consistent with the molecular type (independent of the label)
    mol = out["molecular_type"]
    pct = {k: v[set_index] / 100 for k, v in _RECEPTOR_PCT.items()}
    mol_spec = next(s for s in CATEGORICALS if s.name == "molecular_type")
    mol_pct = dict(zip(mol_spec.levels, np.array(mol_spec.percent[set_index]) / 100, strict=True))
    hr_pos = np.isin(mol, ["luminal_a", "luminal_b"])
    hr_share = mol_pct["luminal_a"] + mol_pct["luminal_b"]
    er = hr_pos & (rng.uniform(size=n) < min(1.0, pct["er"] / hr_share))
    pr = hr_pos & (rng.uniform(size=n) < min(1.0, pct["pr"] / hr_share))
    er |= hr_pos & ~er & ~pr  # hormone-receptor positive needs ER or PR
    p_her2_lumb = np.clip((pct["her2"] - mol_pct["her2_positive"]) / mol_pct["luminal_b"], 0.0, 1.0)
    her2 = (mol == "her2_positive") | ((mol == "luminal_b") & (rng.uniform(size=n) < p_her2_lumb))
    lumb_her2_neg = mol_pct["luminal_b"] * (1 - p_her2_lumb)
    rest = 1.0 - mol_pct["luminal_a"] - lumb_her2_neg
    p_ki67 = float(np.clip((pct["ki67"] - lumb_her2_neg) / rest, 0.0, 1.0)) if rest > 0 else 1.0
    ki67_high = np.where(
        mol == "luminal_a", False, ((mol == "luminal_b") & ~her2) | (rng.uniform(size=n) < p_ki67)
    )
    out["er"] = np.where(er, "positive", "negative").astype(object)
    out["pr"] = np.where(pr, "positive", "negative").astype(object)
    out["her2"] = np.where(her2, "positive", "negative").astype(object)
    out["ki67"] = np.where(ki67_high, "ge20", "lt20").astype(object)

    # lymph node: severity, criterion latents, the radiologist's reading
    c = LN_CRITERION_LOADING
    severity = rng.normal(LN_SEVERITY_SHIFT * y, 1.0)
    crit = c * severity[:, None] + np.sqrt(1 - c**2) * rng.standard_normal((n, len(LN_CRITERIA)))
    threshold, noise_sd = _us_reading_params(prev, _US_REPORTED_PCT[set_index])
    var_appearance = c**2 + (1 - c**2) / len(LN_CRITERIA)
    other_nodes = c * LN_SEVERITY_SHIFT * y + np.sqrt(var_appearance) * rng.standard_normal(n)
    w = US_OTHER_NODES_SHARE
    reading = (1 - w) * crit.mean(axis=1) + w * other_nodes + noise_sd * rng.standard_normal(n)
    out["us_reported_alnm"] = np.where(reading > threshold, "present", "absent").astype(object)
    out["latent_ln_severity"] = severity
    for k, name in enumerate(LN_CRITERIA):
        out[f"latent_ln_{name}"] = crit[:, k]
    out["latent_us_reading"] = reading
    out["latent_tumor_texture"] = rng.normal(TUMOR_TEXTURE_SHIFT * y, 1.0)
    columns = ["label", "split", "center", *CLINICAL_COLUMNS] + [k for k in out if k.startswith("latent_")]
    return pd.DataFrame({k: out[k] for k in columns})


# ======================================================================================================
# images
# ======================================================================================================
_N_THETA = 720
_THETA = np.linspace(-np.pi, np.pi, _N_THETA, endpoint=False)
# 5x7 bitmap glyphs of the burnt-in marker (kept in the top-left corner, outside every ROI)
_GLYPHS = {
    "S": ("01111", "10000", "10000", "01110", "00001", "00001", "11110"),
    "Y": ("10001", "10001", "01010", "00100", "00100", "00100", "00100"),
    "N": ("10001", "11001", "10101", "10011", "10001", "10001", "10001"),
    "T": ("11111", "00100", "00100", "00100", "00100", "00100", "00100"),
    "H": ("10001", "10001", "10001", "11111", "10001", "10001", "10001"),
    "E": ("11111", "10000", "10000", "11110", "10000", "10000", "11111"),
    "I": ("01110", "00100", "00100", "00100", "00100", "00100", "01110"),
    "C": ("01111", "10000", "10000", "10000", "10000", "10000", "01111"),
}
MARKER_BOX = (12, 60)  # rows, columns of the top-left corner holding the marker
ROI_TOP = 24.0  # every ROI starts below this row, clear of the marker and its bounding-box margin


def _marker() -> np.ndarray:
    glyphs = [np.array([[c == "1" for c in row] for row in _GLYPHS[ch]]) for ch in "SYNTHETIC"]
    gap = np.zeros((7, 1), dtype=bool)
    return np.hstack([np.hstack([g, gap]) for g in glyphs])


_MARKER = _marker()


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Zero-mean, unit-SD smooth random field."""
    step = max(1, int(sigma // 3))  # smooth on a coarse grid, then interpolate: same look, less work
    coarse = shape if step == 1 else (-(-shape[0] // step) + 1, -(-shape[1] // step) + 1)
    field = ndimage.gaussian_filter(rng.standard_normal(coarse), sigma / step, mode="wrap")
    if step > 1:
        field = ndimage.zoom(field, step, order=1, grid_mode=False)[: shape[0], : shape[1]]
    return (field - field.mean()) / (field.std() + 1e-12)


def _speckle(
    rng: np.random.Generator, shape: tuple[int, int], axial_px: float, lateral_px: float
) -> np.ndarray:
    """Fully developed speckle: envelope of Gaussian-filtered complex noise, unit mean square."""
    sig = (max(axial_px, 0.3), max(lateral_px, 0.3))
    re = ndimage.gaussian_filter(rng.standard_normal(shape), sig, mode="wrap")
    im = ndimage.gaussian_filter(rng.standard_normal(shape), sig, mode="wrap")
    env2 = re * re + im * im
    return np.sqrt(env2 / env2.mean())


def _to_display(echo: np.ndarray, rng: np.random.Generator, look: ScannerLook, spacing: float) -> np.ndarray:
    """Speckle, depth gain and log compression to an 8-bit image; marks it SYNTHETIC."""
    shape = echo.shape
    env = echo * _speckle(rng, shape, look.speckle_axial_mm / spacing, look.speckle_lateral_mm / spacing)
    env = env + 0.01 * np.abs(rng.standard_normal(shape))  # electronic noise floor
    depth = np.linspace(-0.5, 0.5, shape[0])[:, None]
    db = 20.0 * np.log10(env) + look.gain_db + look.tgc_db * depth
    grey = np.clip(1.0 + (db - 25.0) / look.dynamic_range_db, 0.0, 1.0)
    image = np.round(grey * 255.0).astype(np.uint8)
    mark = _MARKER
    image[3 : 3 + mark.shape[0], 3 : 3 + mark.shape[1]][mark] = 235
    return image


def _ellipse_radius(a: float, b: float, angle: float) -> np.ndarray:
    t = _THETA - angle
    return a * b / np.sqrt((b * np.cos(t)) ** 2 + (a * np.sin(t)) ** 2)


def _harmonics(rng: np.random.Generator, orders: Sequence[int], amplitude: float) -> np.ndarray:
    out = np.zeros(_N_THETA)
    for k in orders:
        out += (
            rng.uniform(0.3, 1.0)
            * amplitude
            / np.sqrt(k / orders[0])
            * np.cos(k * _THETA + rng.uniform(0, 2 * np.pi))
        )
    return out


def _circular_smooth(r: np.ndarray, sigma_samples: float) -> np.ndarray:
    return ndimage.gaussian_filter1d(r, sigma_samples, mode="wrap") if sigma_samples > 0 else r


def _polar_grid(shape: tuple[int, int], center: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]].astype(float)
    dy, dx = rows - center[0], cols - center[1]
    rho = np.hypot(dy, dx)
    idx = ((np.arctan2(dy, dx) + np.pi) / (2 * np.pi) * _N_THETA) % _N_THETA
    return rho, idx


def _lookup(profile: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Linear interpolation of a circular radial profile at fractional angle indices."""
    i0 = np.floor(idx).astype(int) % _N_THETA
    frac = idx - np.floor(idx)
    return profile[i0] * (1 - frac) + profile[(i0 + 1) % _N_THETA] * frac


def _fit_profile(
    r: np.ndarray, center: tuple[float, float], shape: tuple[int, int], top: float, margin: float
) -> np.ndarray:
    """Shrink a radial profile so the outline stays inside ``[top, rows - margin] x [margin, cols - margin]``."""
    dy, dx = r * np.sin(_THETA), r * np.cos(_THETA)
    extents = (-dy.min(), dy.max(), -dx.min(), dx.max())
    allowed = (
        center[0] - top,
        shape[0] - margin - center[0],
        center[1] - margin,
        shape[1] - margin - center[1],
    )
    scale = min([1.0] + [room / ext for ext, room in zip(extents, allowed, strict=True) if ext > room])
    return r * scale


def _reader_profiles(rng: np.random.Generator, r: np.ndarray) -> dict[str, np.ndarray]:
    """Outlines of a second reader and of the same reader again (ICC re-segmentations)."""
    out = {}
    for name, offsets, jitter, smooth in (("reader2", (1, 3), 1.5, 6.0), ("repeat", (1, 2), 0.8, 2.0)):
        offset = rng.integers(offsets[0], offsets[1] + 1) * rng.choice([-1.0, 1.0])
        wobble = _harmonics(rng, range(2, 9), 1.0)
        wobble = jitter * wobble / (np.abs(wobble).max() + 1e-12)
        out[name] = np.maximum(_circular_smooth(r, smooth) + offset + wobble, 2.0)
    return out


@dataclass(frozen=True)
class RenderedRegion:
    """One synthetic image with its masks (``mask``, and ``reader2``/``repeat`` when requested)."""

    image: np.ndarray
    masks: dict[str, np.ndarray]
    truth: dict[str, float]


def render_tumor(
    row: pd.Series, look: ScannerLook, rng: np.random.Generator, *, resegment: bool = False
) -> RenderedRegion:
    """A SYNTHETIC B-mode image of the primary tumour of one patient (row of :func:`synth_clinical`)."""
    shape, spacing = TUMOR_SHAPE, look.tumor_spacing
    texture = float(np.clip(row["latent_tumor_texture"], -2.5, 3.5))
    # breast background: skin, subcutaneous fat, glandular tissue, pectoral muscle
    depth = np.arange(shape[0])[:, None] / shape[0]
    fat_end = rng.uniform(0.14, 0.24)
    muscle_start = rng.uniform(0.84, 0.92)
    echo = np.where(depth < 0.03, 2.2, np.where(depth < fat_end, 0.45, 1.0)) * np.ones(shape)
    echo = echo * np.exp(0.3 * _smooth_field(rng, shape, 10.0))
    stripes = 0.6 + 0.25 * np.sin(np.arange(shape[0])[:, None] * rng.uniform(0.5, 0.8))
    echo = np.where(depth > muscle_start, stripes * np.ones(shape), echo)

    diameter = float(row["tumor_size_cm"]) * 10.0 / spacing
    aspect = rng.uniform(0.5, 0.75)
    if row["orientation"] == "nonparallel":
        a, b = diameter / 2 * rng.uniform(0.75, 0.95), diameter / 2
    else:
        a, b = diameter / 2, diameter / 2 * aspect
    angle = rng.normal(0.0, 0.12)
    r = _ellipse_radius(a, b, angle)
    irregular, spiculated = row["shape"] == "irregular", row["margin"] == "non-circumscribed"
    r = r * (1.0 + _harmonics(rng, range(2, 6), 0.09 if irregular else 0.02))
    if spiculated:
        r = r * (1.0 + _harmonics(rng, range(8, 25), 0.035))
        for _ in range(rng.integers(3, 9)):
            centre, width = rng.uniform(-np.pi, np.pi), rng.uniform(0.03, 0.08)
            d = np.angle(np.exp(1j * (_THETA - centre)))
            r = r * (1.0 + rng.uniform(0.12, 0.3) * np.exp(-0.5 * (d / width) ** 2))
    r = np.maximum(r * diameter / _feret(r), 1.5)  # the largest diameter is tumor_size_cm
    center = (rng.uniform(0.5, 0.56) * shape[0], rng.uniform(0.45, 0.55) * shape[1])
    r = _fit_profile(r, center, shape, top=ROI_TOP, margin=10.0)
    rho, idx = _polar_grid(shape, center)
    boundary = _lookup(r, idx)
    edge = 2.2 if spiculated else 0.8
    inside = np.clip((boundary - rho) / edge + 0.5, 0.0, 1.0)

    heterogeneity = 0.18 + 0.22 * (row["echotexture"] == "heterogeneous") + 0.07 * texture
    internal = (
        0.2 * np.exp(-0.12 * texture) * np.exp(max(heterogeneity, 0.05) * _smooth_field(rng, shape, 3.0))
    )
    lesion = inside * internal + (1 - inside) * echo
    if row["microcalcification"] == "present":
        core = boundary - rho > 3.0
        cand = np.flatnonzero(core)
        if cand.size:
            spots = rng.choice(cand, size=min(cand.size, int(rng.integers(3, 13))), replace=False)
            specks = np.zeros(shape)
            specks.flat[spots] = 1.0
            specks = ndimage.gaussian_filter(specks, 0.7) * 2 * np.pi * 0.49
            lesion = lesion + 6.0 * np.clip(specks, 0, 1)
    # posterior acoustic features below the lesion
    cols = np.arange(shape[1])[None, :]
    xs = center[1] + r * np.cos(_THETA)
    half_width = 0.5 * (xs.max() - xs.min())
    lateral = 1.0 / (1.0 + np.exp((np.abs(cols - center[1]) - 0.8 * half_width) / 3.0))
    bottom = center[0] + (r * np.sin(_THETA)).max()
    below = 1.0 / (1.0 + np.exp(-(np.arange(shape[0])[:, None] - bottom) / 3.0))
    factor = {"shadowing": rng.uniform(0.3, 0.5), "enhancement": rng.uniform(1.5, 1.9)}.get(
        row["posterior_features"], 1.0
    )
    lesion = lesion * (1.0 + (factor - 1.0) * lateral * below)

    image = _to_display(lesion, rng, look, spacing)
    masks = {"mask": rho <= boundary}
    if resegment:
        for name, profile in _reader_profiles(rng, r).items():
            masks[name] = rho <= _lookup(profile, idx)
    truth = {"drawn_tumor_size_cm": _feret(r) * spacing / 10.0}
    return RenderedRegion(image, {k: _as_mask(v) for k, v in masks.items()}, truth)


def render_ln(
    row: pd.Series, look: ScannerLook, rng: np.random.Generator, *, resegment: bool = False
) -> RenderedRegion:
    """A SYNTHETIC B-mode image of the most suspicious axillary lymph node of one patient."""
    shape, spacing = LN_SHAPE, look.ln_spacing
    u = {k: float(row[f"latent_ln_{k}"]) for k in LN_CRITERIA}
    severity = float(row["latent_ln_severity"])
    ratio = float(np.clip(2.6 * np.exp(-0.28 * u["round"]), 1.05, 5.0))
    long_mm = float(np.clip(15.0 * np.exp(0.25 * rng.standard_normal() + 0.06 * severity), 6.0, 30.0))
    short_mm = long_mm / ratio
    cortex_mm = float(np.clip(1.7 * np.exp(0.5 * u["cortex"]), 0.4, 0.9 * short_mm / 2))
    hilum = float(special.expit(1.6 - 1.4 * u["hilum"]))
    hilum = 0.0 if hilum < 0.15 else hilum
    eccentric = float(0.7 * special.expit(2.0 * (u["mass"] - 1.2)))

    depth = np.arange(shape[0])[:, None] / shape[0]
    echo = np.where(depth < 0.03, 2.0, 0.75) * np.exp(0.35 * _smooth_field(rng, shape, 8.0))
    a, b = long_mm / spacing / 2, short_mm / spacing / 2
    angle = rng.normal(0.0, 0.15)
    r = _ellipse_radius(a, b, angle) * (1.0 + _harmonics(rng, range(3, 8), 0.01 + 0.03 * eccentric))
    center = (rng.uniform(0.47, 0.57) * shape[0], rng.uniform(0.44, 0.56) * shape[1])
    fitted = _fit_profile(r, center, shape, top=ROI_TOP, margin=10.0)
    scale = float(fitted.mean() / r.mean())
    r = fitted
    cortex = cortex_mm / spacing * scale * (1.0 + eccentric * np.cos(_THETA - rng.uniform(-np.pi, np.pi)))
    inner = np.maximum(r - cortex, 0.0)
    hilum_r = hilum * inner
    rho, idx = _polar_grid(shape, center)
    outer_b, hilum_b = _lookup(r, idx), _lookup(hilum_r, idx)
    inside = np.clip((outer_b - rho) / 0.8 + 0.5, 0.0, 1.0)
    in_hilum = np.clip((hilum_b - rho) / 1.5 + 0.5, 0.0, 1.0) * (hilum_b > 0.5)
    cortex_echo = 0.17 * np.exp((0.12 + 0.12 * special.expit(u["mass"])) * _smooth_field(rng, shape, 2.5))
    node = in_hilum * 1.3 + (1 - in_hilum) * cortex_echo
    echo = inside * node + (1 - inside) * echo
    if u["mass"] > 2.0:  # intranodal microcalcifications
        cand = np.flatnonzero((outer_b - rho > 2.0) & (rho > hilum_b))
        if cand.size:
            specks = np.zeros(shape)
            specks.flat[rng.choice(cand, size=min(cand.size, int(rng.integers(2, 7))), replace=False)] = 1.0
            echo = echo + 6.0 * np.clip(ndimage.gaussian_filter(specks, 0.7) * 3.0, 0, 1)
    image = _to_display(echo, rng, look, spacing)
    masks = {"mask": rho <= outer_b}
    if resegment:
        for name, profile in _reader_profiles(rng, r).items():
            masks[name] = rho <= _lookup(profile, idx)
    truth = {
        "ln_long_axis_mm": _feret(r) * spacing,
        "ln_axis_ratio": ratio,
        "ln_cortex_mm": float(cortex_mm * scale),
        "ln_hilum_visible": hilum,
        "ln_eccentric_cortex": eccentric,
    }
    return RenderedRegion(image, {k: _as_mask(v) for k, v in masks.items()}, truth)


def _feret(r: np.ndarray) -> float:
    """Largest diameter through the centre of a radial profile, in pixels."""
    return float(np.max(r + np.roll(r, _N_THETA // 2)))


def _as_mask(mask: np.ndarray) -> np.ndarray:
    return np.where(mask, 255, 0).astype(np.uint8)


# ======================================================================================================
# cohort on disk
# ======================================================================================================
MANIFEST_NAME = "manifest.csv"
PARAMS_NAME = "synth.json"
TRUTH_NAME = "synthetic_truth.csv"
_RESEG = ("reader2", "repeat")


@dataclass(frozen=True)
class SynthResult:
    """Where a SYNTHETIC cohort was written and what it holds."""

    out_dir: Path
    manifest_path: Path
    manifest: pd.DataFrame
    summary: pd.DataFrame


def synth_params(n_patients: int, seed: int) -> dict[str, Any]:
    """The parameters identifying a generated cohort (stored as ``synth.json``; no paths, no times)."""
    return {
        "description": SYNTHETIC_LABEL,
        "generator": "ALNMPredictorLib.synth",
        "generator_version": GENERATOR_VERSION,
        "n_patients": int(n_patients),
        "seed": int(seed),
    }


def existing_cohort(out_dir: str | os.PathLike[str], n_patients: int, seed: int) -> Path | None:
    """The manifest of a complete cohort already in ``out_dir`` with these parameters, else None."""
    out_dir = Path(out_dir)
    try:
        stored = json.loads((out_dir / PARAMS_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    manifest = out_dir / MANIFEST_NAME
    return manifest if stored == synth_params(n_patients, seed) and manifest.is_file() else None


def _png_bytes(array: np.ndarray) -> bytes:
    """8-bit grey PNG; the pixel spacing goes in the manifest (readers ignore a PNG's DPI)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _render_patient(task: tuple[dict[str, Any], tuple[int, tuple[int, ...]], str]) -> dict[str, Any]:
    """Render and write one patient's images and masks; returns its manifest paths and image truth."""
    row_dict, (entropy, spawn_key), out_dir = task
    row = pd.Series(row_dict)
    rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=spawn_key))
    look = CENTERS[row["center"]]
    resegment = bool(row["latent_icc_case"])
    case = row["case_id"]
    record: dict[str, Any] = {"case_id": case}
    for region, render, spacing in (
        ("tumor", render_tumor, look.tumor_spacing),
        ("ln", render_ln, look.ln_spacing),
    ):
        rendered = render(row, look, rng, resegment=resegment)
        image_rel = f"images/{case}_{region}.png"
        fileio.write_bytes(Path(out_dir) / image_rel, _png_bytes(rendered.image))
        record[f"{region}_image"] = image_rel
        record[f"{region}_spacing"] = spacing
        for kind, mask in rendered.masks.items():
            suffix = "" if kind == "mask" else f"_{kind}"
            mask_rel = f"masks/{case}_{region}{suffix}.png"
            fileio.write_bytes(Path(out_dir) / mask_rel, _png_bytes(mask))
            record[f"{region}_mask{suffix}"] = mask_rel
        record.update(rendered.truth)
    return record


def synth_cohort(
    out_dir: str | os.PathLike[str],
    n_patients: int = 200,
    seed: int = 0,
    *,
    workers: int = 1,
    progress: bool = False,
) -> SynthResult:
    """Write a SYNTHETIC multicentre cohort to ``out_dir``: manifest, study.yaml, images, masks.

    Refuses a non-empty folder that is not a synthetic cohort; in a synthetic cohort folder it replaces
    the previous cohort (its stale images and masks are removed).
    """
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)
    table = synth_clinical(n_patients, seed, include_latent=True)
    _, image_seq = np.random.SeedSequence(int(seed)).spawn(2)
    children = image_seq.spawn(len(table))
    rows = table.to_dict(orient="records")
    tasks = [
        (row, (int(child.entropy), tuple(int(k) for k in child.spawn_key)), str(out_dir))
        for row, child in zip(rows, children, strict=True)
    ]
    from tqdm import tqdm

    bar = tqdm(total=len(tasks), desc="synthetic cohort", unit="patient", disable=not progress)
    records: list[dict[str, Any]] = []
    try:
        if workers > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for record in pool.map(_render_patient, tasks, chunksize=max(1, len(tasks) // (4 * workers))):
                    records.append(record)
                    bar.update()
        else:
            for task in tasks:
                records.append(_render_patient(task))
                bar.update()
    finally:
        bar.close()
    rendered = pd.DataFrame(records)
    manifest = _manifest(table, rendered)
    _remove_stale(out_dir, manifest)
    latent_cols = [c for c in table.columns if c.startswith("latent_")]
    truth = table[["case_id", "label", "split", "center", *latent_cols]].merge(
        rendered.drop(
            columns=[c for c in rendered.columns if c.endswith(("_image", "_spacing")) or "_mask" in c]
        ),
        on="case_id",
    )
    fileio.write_text(out_dir / "SYNTHETIC.txt", _readme_text(n_patients, seed))
    fileio.write_text(out_dir / "study.yaml", study_yaml())
    fileio.write_table(out_dir / TRUTH_NAME, truth.round(6))
    manifest_path = fileio.write_table(out_dir / MANIFEST_NAME, manifest)
    fileio.write_json(out_dir / PARAMS_NAME, synth_params(n_patients, seed))
    return SynthResult(out_dir, manifest_path, manifest, cohort_summary(manifest))


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ALNMError(f"{out_dir}: exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / PARAMS_NAME).is_file():
        raise ALNMError(
            f"{out_dir}: folder is not empty and holds no synthetic cohort ({PARAMS_NAME}); "
            "choose an empty or new folder"
        )


def _remove_stale(out_dir: Path, manifest: pd.DataFrame) -> None:
    keep = {v for c in manifest.columns if c.endswith("_image") or "_mask" in c for v in manifest[c] if v}
    for sub in ("images", "masks"):
        for path in sorted((out_dir / sub).glob("P*.png")):
            if f"{sub}/{path.name}" not in keep:
                path.unlink()


def _manifest(table: pd.DataFrame, rendered: pd.DataFrame) -> pd.DataFrame:
    merged = table.merge(rendered, on="case_id", how="left")
    columns = ["case_id", "label", "split", "center"]
    for region in REGIONS:
        columns += [f"{region}_image", f"{region}_mask", f"{region}_spacing"]
        columns += [f"{region}_mask_{kind}" for kind in _RESEG]
    for col in columns:
        if col not in merged:
            merged[col] = ""
    manifest = merged[columns + list(CLINICAL_COLUMNS)].copy()
    for region in REGIONS:
        for kind in _RESEG:
            manifest[f"{region}_mask_{kind}"] = manifest[f"{region}_mask_{kind}"].fillna("")
    return manifest


def cohort_summary(manifest: pd.DataFrame) -> pd.DataFrame:
    """Patients, metastatic cases, prevalence and centres per split (in the study's set order)."""
    order = [s for s in SETS if s in set(manifest["split"])] + sorted(set(manifest["split"]) - set(SETS))
    rows = []
    for split in order:
        part = manifest[manifest["split"] == split]
        labels = pd.to_numeric(part["label"], errors="coerce")
        rows.append(
            {
                "split": split,
                "patients": len(part),
                "alnm_positive": int((labels == 1).sum()),
                "prevalence_pct": round(100.0 * float((labels == 1).mean()), 1),
                "centers": ",".join(sorted(part["center"].astype(str).unique())),
            }
        )
    return pd.DataFrame(rows)


def study_yaml() -> str:
    """``study.yaml`` of the synthetic cohort: variable types, reference levels, splits; marked SYNTHETIC."""
    import yaml

    variables: dict[str, Any] = {"age": {"type": "continuous"}, "tumor_size_cm": {"type": "continuous"}}
    levels = {c.name: list(c.levels) for c in CATEGORICALS}
    levels |= {
        "us_reported_alnm": ["absent", "present"],
        "er": ["negative", "positive"],
        "pr": ["negative", "positive"],
        "her2": ["negative", "positive"],
        "ki67": ["lt20", "ge20"],
    }
    for name in CLINICAL_COLUMNS:
        if name in levels:
            lv = [int(v) for v in levels[name]] if name == "adler_grade" else levels[name]
            variables[name] = {"type": "categorical", "reference": lv[0], "levels": lv}
    study = {
        "case_id": "case_id",
        "label": "label",
        "split": "split",
        "center": "center",
        "train_split": "train",
        "test_splits": ["internal", "external", "prospective"],
        "variables": variables,
        "settings": {
            "synthetic": True,
            "description": f"{SYNTHETIC_LABEL}. Synthetic multicentre cohort generated by "
            "ALNMPredictorLib.synth, modelled on Zhang et al. (866 patients, 6 hospitals); "
            "its generative model is in SYNTHETIC.txt.",
            "regions": list(REGIONS),
        },
    }
    header = f"# {SYNTHETIC_LABEL}\n# Written by ALNMPredictorLib.synth {__version__}; not patient data.\n"
    return header + yaml.safe_dump(study, sort_keys=False, allow_unicode=True)


def _readme_text(n_patients: int, seed: int) -> str:
    doc = (__doc__ or "").strip()
    return (
        f"{SYNTHETIC_LABEL}\n{'=' * len(SYNTHETIC_LABEL)}\n\n"
        f"Every image, mask and value in this folder is SYNTHETIC, generated by ALNMPredictorLib.synth\n"
        f"(generator version {GENERATOR_VERSION}, {n_patients} patients, seed {seed}). It imitates the design\n"
        "of Zhang et al.'s multicentre study; it describes no real patient.\n\n"
        "Files: manifest.csv (one row per patient), study.yaml (variable types, reference levels),\n"
        "images/ and masks/ (8-bit PNG; masks 0/255; pixel spacing in mm in the manifest),\n"
        f"{TRUTH_NAME} (the hidden generative variables, for interpreting results; not model input).\n\n"
        f"{doc}\n"
    )


# ======================================================================================================
# command line
# ======================================================================================================
DEFAULT_PATIENTS = 200


def add_cohort_arguments(parser: argparse.ArgumentParser) -> None:
    """``--patients``, ``--seed``, ``--paper-scale`` and ``--workers`` (shared with ``alnm demo``)."""
    parser.add_argument(
        "--patients",
        type=int,
        default=DEFAULT_PATIENTS,
        metavar="N",
        help=f"patients in all sets together (default {DEFAULT_PATIENTS}; minimum {MIN_PATIENTS})",
    )
    parser.add_argument(
        "--paper-scale",
        action="store_true",
        help=f"the study's full size ({PAPER_SCALE} patients: 421/106/222/107); overrides --patients",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same files")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        metavar="K",
        help="worker processes (default: all cores); the output does not depend on it",
    )


def patients_from_args(args: argparse.Namespace) -> int:
    """The number of patients asked for on the command line."""
    return PAPER_SCALE if getattr(args, "paper_scale", False) else int(args.patients)


def configure_synth(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``alnm synth``."""
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write the cohort into")
    add_cohort_arguments(parser)


def format_summary(summary: pd.DataFrame) -> str:
    """The per-split summary as aligned text."""
    return summary.to_string(index=False)


def run_synth(args: argparse.Namespace) -> int:
    """``alnm synth``: write a SYNTHETIC cohort and print where, with a summary per split."""
    from ALNMPredictorLib.preflight import output_folder

    n_patients = patients_from_args(args)
    if args.workers < 1:
        raise ALNMError(f"--workers must be at least 1, got {args.workers}")
    output_folder(args.out)
    result = synth_cohort(args.out, n_patients, args.seed, workers=args.workers, progress=True)
    print(f"{SYNTHETIC_LABEL}")
    print(f"wrote a synthetic cohort of {n_patients} patients (seed {args.seed}) to {result.manifest_path}")
    print(format_summary(result.summary))
    return 0
