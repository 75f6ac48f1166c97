"""``alnm demo``: the whole method on the embedded SYNTHETIC multicentre cohort, stage by stage.

Stages run in order on a shared :class:`DemoRun`; each one prints what it did: ``cohort`` (generate
the synthetic cohort, or reuse one generated with the same parameters), ``validate`` (check the
manifest and every file it names), ``train`` (extract features, fit the region scores and the
nomogram on the training split, save the model), ``readers`` (SIMULATED junior and senior
radiologists read the prospective set without and with the model) and ``evaluate`` (every table
and figure of the study per split, and the HTML report, with the study's AUCs beside the demo's).
The VGG19 backbone uses ImageNet weights when they are on disk, else a random backbone, said loudly.
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
    deep: str = "auto"
    preset: str = "paper"  # the demo replicates the study (extract/train/run default to us2d)
    optimism_boot: int = 200
    normalize: bool = True
    trained: Any = None  # pipeline.TrainResult
    reads: Any = None  # simulated reads (DataFrame)
    report: Path | None = None
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
        run.echo(
            f"reusing the synthetic cohort in {run.cohort_dir} ({run.n_patients} patients, seed {run.seed})"
        )
        import pandas as pd

        summary = synth.cohort_summary(pd.read_csv(existing, dtype={"label": "Int64"}, keep_default_na=False))
    else:
        run.echo(
            f"generating a synthetic cohort of {run.n_patients} patients (seed {run.seed}) in {run.cohort_dir}"
        )
        result = synth.synth_cohort(
            run.cohort_dir, run.n_patients, run.seed, workers=run.workers, progress=True
        )
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
    for problem in [*errors, *warnings]:
        run.echo(str(problem))
    run.echo(f"validated {run.manifest_path}: {len(errors)} error(s), {len(warnings)} warning(s)")
    if errors:
        run.failed = True


def stage_train(run: DemoRun) -> None:
    """Extract features and fit everything on the training split; the model goes to ``out/model``."""
    from ALNMPredictorLib.pipeline import PipelineSettings, train

    settings = PipelineSettings(
        handcrafted=run.preset,
        deep=run.deep,
        normalize=run.normalize,
        seed=run.seed,
        workers=run.workers,
        optimism_boot=run.optimism_boot,
    )
    run.trained = train(run.cohort or run.manifest_path, run.out_dir, settings)
    for scorer in run.trained.model.region_scores_.values():
        run.echo(scorer.formula())
    run.echo(run.trained.model.combined_model_.formula())
    run.echo(f"model saved to {run.trained.model_dir}")


def stage_readers(run: DemoRun) -> None:
    """SIMULATED reads of the prospective set by a junior and a senior radiologist, unaided and aided."""
    from ALNMPredictorLib.reader_study import simulate_reads

    predictions = run.trained.predictions
    if "prospective" not in set(predictions["split"].astype(str)):
        run.echo("no prospective set: reader study skipped")
        return
    cutoff = run.trained.model.combined_model_.cutoff
    run.reads = simulate_reads(predictions.reset_index(), split="prospective", seed=run.seed, cutoff=cutoff)
    run.echo(f"simulated {len(run.reads)} reads (SIMULATED readers) of the prospective set")


def stage_evaluate(run: DemoRun) -> None:
    """Every table and figure per split and the HTML report in ``out/report``."""
    from ALNMPredictorLib.pipeline import REPORT_DIR, evaluate_and_report

    info = dict(run.trained.bundle_info)
    info["warnings"] = run.trained.warnings
    result = evaluate_and_report(
        run.trained.predictions,
        run.trained.model,
        info,
        run.cohort,
        run.out_dir / REPORT_DIR,
        reads=run.reads,
        reads_simulated=True,
        reader_split="prospective",
        study_comparison=True,
        command="alnm demo",
        deep_models=run.trained.features.deep_models,
    )
    run.report = result.report
    for split, values in (result.evaluation.summary.get("splits") or {}).items():
        aucs = values.get("auc") or {}
        shown = ", ".join(f"{m} {v:.3f}" for m, v in aucs.items() if isinstance(v, float))
        run.echo(f"{split}: n={values.get('n')} AUC {shown}")
    run.echo(f"report: {result.report}")


#: (name, stage) in the order they run; a stage sets ``run.failed`` to stop the demo
STAGES: list[tuple[str, Callable[[DemoRun], None]]] = [
    ("cohort", stage_cohort),
    ("validate", stage_validate),
    ("train", stage_train),
    ("readers", stage_readers),
    ("evaluate", stage_evaluate),
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
    from ALNMPredictorLib.preflight import non_negative_int

    parser.add_argument(
        "--out",
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"folder for the demo's cohort and results (default ./{DEFAULT_OUT})",
    )
    synth.add_cohort_arguments(parser)
    parser.add_argument(
        "--deep",
        default="auto",
        help="VGG19 weights: auto (ImageNet if on disk, else random), imagenet, none, off, or a file",
    )
    parser.add_argument(
        "--preset",
        default="paper",
        help="pyradiomics preset: paper (default here: the demo replicates the study, with its 851 "
        "features, 479 computed on 2D images) or us2d (true 2D, the default of extract/train/run)",
    )
    parser.add_argument(
        "--normalize",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="standardise each image's intensities before extraction (default: on)",
    )
    parser.add_argument(
        "--optimism-boot",
        type=non_negative_int,
        default=DemoRun.optimism_boot,
        metavar="B",
        help="bootstrap resamples of the internal validation corrected for optimism "
        f"(default {DemoRun.optimism_boot}; 0 skips it)",
    )
    parser.add_argument(
        "--stages",
        default=None,
        help=f"comma-separated stages to run (default all: {', '.join(n for n, _ in STAGES)})",
    )


def run_demo(args: argparse.Namespace) -> int:
    """``alnm demo``: 0 when every stage succeeded, 1 when one failed."""
    if args.workers < 1:
        raise ALNMError(f"--workers must be at least 1, got {args.workers}")
    from ALNMPredictorLib.preflight import output_folder

    n_patients = synth.patients_from_args(args)
    out_dir = output_folder(Path(os.path.expanduser(args.out)))
    print(f"ALNM Predictor demo: {SYNTHETIC_LABEL}")
    stages = STAGES
    if args.stages:
        wanted = [s.strip() for s in args.stages.split(",") if s.strip()]
        unknown = [s for s in wanted if s not in dict(STAGES)]
        if unknown:
            raise ALNMError(
                f"unknown stage(s) {', '.join(unknown)}; stages: {', '.join(n for n, _ in STAGES)}"
            )
        stages = [(n, f) for n, f in STAGES if n in wanted]
    run = DemoRun(
        out_dir=out_dir,
        n_patients=n_patients,
        seed=args.seed,
        workers=args.workers,
        deep=args.deep,
        preset=args.preset,
        normalize=args.normalize,
        optimism_boot=args.optimism_boot,
    )
    run = run_stages(run, stages)
    timings = ", ".join(f"{name} {sec:.1f} s" for name, sec in run.timings.items())
    print(f"stage times: {timings}")
    if run.failed:
        return 1
    print(f"demo finished in {sum(run.timings.values()):.1f} s; results in {out_dir}")
    if run.report is not None:
        print(f"open the report: {run.report}")
    failed = 0 if run.trained is None else int((run.trained.predictions["status"] != "ok").sum())
    return 1 if failed else 0
