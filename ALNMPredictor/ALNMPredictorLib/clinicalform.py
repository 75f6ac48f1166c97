"""The clinical form of a saved model: which factors it needs, and typed values for a prediction.

:func:`clinical_fields` lists the clinical-ultrasonic factors a model's logistic models use (kind,
levels, reference level, whether the combined model requires it); :func:`parse_clinical` turns what a
user typed into the values :func:`~ALNMPredictorLib.casepredict.predict_case` needs, raising
:class:`~ALNMPredictorLib.errors.InputError` naming the case and the factor for a bad value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ALNMPredictorLib.errors import InputError

__all__ = ["ClinicalField", "clinical_fields", "is_missing", "level_text", "parse_clinical"]


@dataclass(frozen=True)
class ClinicalField:
    """A clinical factor of a model: ``required`` when the combined (clinical-radiomics) model uses it."""

    name: str
    kind: str  # "continuous" | "categorical"
    levels: tuple[str, ...]
    reference: str | None
    required: bool
    models: tuple[str, ...]


def is_missing(value: Any, levels: tuple[str, ...] = ()) -> bool:
    """A missing value as the manifest reader reads one (cohort.NA_TOKENS), unless it is one of ``levels``."""
    from ALNMPredictorLib.cohort import NA_TOKENS

    if value is None:
        return True
    if isinstance(value, float | np.floating) and math.isnan(float(value)):
        return True
    return isinstance(value, str) and value.strip().lower() in NA_TOKENS and value.strip() not in levels


def level_text(value: Any) -> str:
    """A level as the manifest reader writes it (``2.0`` → ``"2"``)."""
    if isinstance(value, bool | np.bool_):
        return str(int(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def clinical_fields(loaded: Any) -> list[ClinicalField]:
    """Clinical factors used by any of the model's logistic models, in the model's order."""
    model = loaded.model
    declared = loaded.info.get("clinical_variables") or {}
    used: dict[str, list[str]] = {}
    for name, lm in model.models().items():
        for var in lm.variables:
            if var in model.clinical:
                used.setdefault(var, []).append(name)
    required = set(model.required_columns().get("clinical", []))
    out = []
    for var in model.clinical:
        if var not in used:
            continue
        spec = dict(declared.get(var) or {})
        kind = spec.get("kind") or ("categorical" if var in model.categorical else "continuous")
        levels = tuple(str(v) for v in spec.get("levels") or ())
        if kind == "categorical" and not levels:
            for lm in model.models().values():
                enc = lm.encoding.get(var)
                if enc and enc.get("levels"):
                    levels = tuple(str(v) for v in enc["levels"])
                    break
        reference = spec.get("reference")
        out.append(
            ClinicalField(
                var,
                kind,
                levels,
                None if reference is None else str(reference),
                var in required,
                tuple(used[var]),
            )
        )
    return out


def parse_clinical(loaded: Any, values: Mapping[str, Any], case_id: str = "case") -> dict[str, Any]:
    """Typed clinical values for the model (categorical as level text, continuous as float).

    A factor the combined model needs that is missing, a level the model does not know, or a value
    that is not a finite number raises :class:`InputError` naming the case and the factor. Factors
    only the clinical model uses may be missing (its probability is then not computed).
    """
    out: dict[str, Any] = {}
    for spec in clinical_fields(loaded):
        value = values.get(spec.name)
        if is_missing(value, spec.levels):
            if spec.required:
                raise InputError(
                    "clinical factor required by the model is missing", case=case_id, column=spec.name
                )
            continue
        if spec.kind == "categorical":
            text = level_text(value)
            if spec.levels and text not in spec.levels:
                raise InputError(
                    f"unknown level {text!r}; the model knows {', '.join(spec.levels)}",
                    case=case_id,
                    column=spec.name,
                )
            out[spec.name] = text
        else:
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise InputError(f"not a number: {value!r}", case=case_id, column=spec.name) from None
            if not math.isfinite(number):
                raise InputError(f"not a finite number: {value!r}", case=case_id, column=spec.name)
            out[spec.name] = number
    return out
