"""``alnm demo``: the whole method on the embedded SYNTHETIC multicentre cohort, stage by stage.

Stages run in order on a shared :class:`DemoRun`; each one prints what it did. For now: ``cohort``
(generate the synthetic cohort, or reuse one generated with the same parameters) and ``validate``
(check the manifest and every file it names). Later stages (extract, train, evaluate) append to
:data:`STAGES`.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ALNMPredictorLib import SYNTHETIC_LABEL, synth
from ALNMPredictorLib.errors import ALNMError

DEFAULT_OUT = "alnm-demo"
COHORT_DIR = "cohort"


@dataclass
class DemoRun:
    """State shared by the demo stages."""

    out_dir: Path
    n_patients: int
    seed: int
    workers: int = 1
    echo: Callable[[str], None] = print
    manifest_path: Path | None = None
    reused_cohort: bool = False
    cohort: Any = None  # ALNMPredictorLib.cohort.Cohort
    problems: list[Any] = field(default_factory=list)
    failed: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def cohort_dir(self) -> Path:
        """Where the synthetic cohort lives inside the demo folder."""
        return self.out_dir / COHORT_DIR


def stage_cohort(run: DemoRun) -> None:
    """Generate the SYNTHETIC cohort, or reuse the one already there with the same parameters."""
    existing = synth.existing_cohort(run.cohort_dir, run.n_patients, run.seed)
    if existing is not None:
        run.manifest_path, run.reused_cohort = existing, True
        run.echo(f"reusing the synthetic cohort in {run.cohort_dir} ({run.n_patients} patients, seed {run.seed})")
        import pandas as pd

        summary = synth.cohort_summary(pd.read_csv(existing, dtype={"label": "Int64"}, keep_default_na=False))
    else:
        run.echo(f"generating a synthetic cohort of {run.n_patients} patients (seed {run.seed}) in {run.cohort_dir}")
        result = synth.synth_cohort(run.cohort_dir, run.n_patients, run.seed, workers=run.workers, progress=True)
        run.manifest_path, summary = result.manifest_path, result.summary
    run.echo(synth.format_summary(summary))


def stage_validate(run: DemoRun) -> None:
    """Load the manifest and check every row and file; errors stop the demo."""
    from ALNMPredictorLib.cohort import load_manifest

    if run.manifest_path is None:
        raise ALNMError("no cohort to validate: the cohort stage did not run")
    run.cohort = load_manifest(run.manifest_path)
    run.problems = list(run.cohort.validate(progress=True))
    errors = [p for p in run.problems if p.severity == "error"]
    warnings = [p for p in run.problems if p.severity != "error"]
    for problem in errors:
        run.echo(str(problem))
    run.echo(f"validated {run.manifest_path}: {len(errors)} error(s), {len(warnings)} warning(s)")
    if errors:
        run.failed = True


#: (name, stage) in the order they run; a stage sets ``run.failed`` to stop the demo
STAGES: list[tuple[str, Callable[[DemoRun], None]]] = [
    ("cohort", stage_cohort),
    ("validate", stage_validate),
]


def run_stages(run: DemoRun, stages: list[tuple[str, Callable[[DemoRun], None]]] | None = None) -> DemoRun:
    """Run the demo stages in order until one fails; returns ``run`` with its results."""
    for name, stage in STAGES if stages is None else stages:
        run.echo(f"== {name}")
        start = time.perf_counter()
        stage(run)
        run.timings[name] = time.perf_counter() - start
        if run.failed:
            run.echo(f"demo stopped: stage '{name}' failed")
            break
    return run


def configure_demo(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``alnm demo``."""
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                        help=f"folder for the demo's cohort and results (default ./{DEFAULT_OUT})")  # fmt: skip
    synth.add_cohort_arguments(parser)


def run_demo(args: argparse.Namespace) -> int:
    """``alnm demo``: 0 when every stage succeeded, 1 when one failed."""
    if args.workers < 1:
        raise ALNMError(f"--workers must be at least 1, got {args.workers}")
    n_patients = synth.patients_from_args(args)
    out_dir = Path(os.path.expanduser(args.out))
    print(f"ALNM Predictor demo: {SYNTHETIC_LABEL}")
    run = run_stages(DemoRun(out_dir=out_dir, n_patients=n_patients, seed=args.seed, workers=args.workers))
    if run.failed:
        return 1
    print(f"demo finished in {sum(run.timings.values()):.1f} s; results in {out_dir}")
    return 0
