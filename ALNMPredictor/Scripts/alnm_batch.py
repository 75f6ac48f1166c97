"""Headless cohort runs with the module's batch logic.

    Slicer --no-main-window --python-script ALNMPredictor/Scripts/alnm_batch.py -- \\
        TASK MANIFEST --out DIR [--model MODEL] [--readers READS.csv] [--install-dependencies] \\
        [-- extra alnm options]

TASK is ``train``, ``evaluate`` or ``predict``. Before any work the script checks that Slicer's Python
has the packages the task needs (PyTorch only for deep features: a model with deep heads, or ``train``
without ``--deep off``). If some are missing it stops with their list and the command to install them,
or installs them first when given ``--install-dependencies`` (pip, and PyTorch through the PyTorch
extension; no dialog). The work runs in a ``PythonSlicer -m ALNMPredictorLib`` subprocess (the ``alnm``
CLI); its progress and messages are printed here. Exit status: 0 done, 1 done but some cases failed,
2 error (bad arguments, missing packages, bad manifest, ...), 130 cancelled.

Exiting Slicer with a status: ``sys.exit()`` does not stop Slicer (the status is lost and the
application keeps running), and ``slicer.util.exit(status)`` only schedules the exit while the
script goes on (a second call, or the automatic exit of ``--testing``, overwrites the status). So
every path, errors and ``--help`` included, computes one status and calls ``slicer.util.exit`` once,
as the script's last statement.
"""

import argparse
import sys
import traceback
from pathlib import Path

MODULE_DIR = Path(__file__).resolve().parents[1]


def parse_args(argv: list) -> argparse.Namespace:
    """Arguments after Slicer's ``--``; anything after a further ``--`` goes to the ``alnm`` command."""
    argv = list(argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    extra = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(prog="alnm_batch.py", description="ALNM Predictor cohort run (headless)")
    parser.add_argument("task", choices=["train", "evaluate", "predict"])
    parser.add_argument("manifest", help="cohort manifest (CSV)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--model", default=None, help="saved model folder, its model.json, or .zip (evaluate, predict)"
    )
    parser.add_argument("--readers", default=None, help="reads CSV of a reader study (evaluate)")
    parser.add_argument(
        "--install-dependencies",
        action="store_true",
        help="install missing Python packages (pip; PyTorch via the PyTorch extension) before the run",
    )
    args = parser.parse_args(argv)
    args.extra = extra
    return args


def module_classes():
    """(ALNMPredictorLogic, ALNMPredictorBatchLogic) from the module file (inside Slicer, or the test harness)."""
    if str(MODULE_DIR) not in sys.path:
        sys.path.insert(0, str(MODULE_DIR))
    from ALNMPredictor import ALNMPredictorBatchLogic, ALNMPredictorLogic

    return ALNMPredictorLogic, ALNMPredictorBatchLogic


def needs_pytorch(logic, args: argparse.Namespace) -> bool:
    """Whether the run computes deep features: the model's deep heads, or ``train`` with ``--deep`` not ``off``."""
    if args.task == "train":
        extra = list(args.extra)
        deep = (
            extra[extra.index("--deep") + 1] if "--deep" in extra[:-1] else "imagenet"
        )  # alnm train's default
        return deep != "off"
    return logic.modelNeedsPyTorch(args.model)


def check_dependencies(logic, args: argparse.Namespace) -> int:
    """0 when the packages are there (after installing them with consent), else 2 with what to do."""
    deep = needs_pytorch(logic, args)
    missing = logic.missingDependencies(deep)
    if not missing:
        return 0
    if args.install_dependencies:
        print(f"alnm_batch: installing {', '.join(missing)}", flush=True)
        logic.installDependencies(deep, showProgress=False)
        return 0
    pip = [m for m in missing if not m.startswith(("torch>", "torchvision>"))]
    lines = [
        f"alnm_batch: error: Slicer's Python lacks packages this run needs: {', '.join(missing)}.",
        "Rerun with --install-dependencies to install them first, or install them yourself:",
    ]
    if pip:
        lines.append(
            f'  Slicer --no-main-window --python-code "slicer.util.pip_install({pip!r}); slicer.util.exit(0)"'
        )
    if len(pip) < len(missing):
        lines.append(
            "  PyTorch: install the PyTorch extension (Extensions Manager), then in Slicer's Python console: "
            "import PyTorchUtils; PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True)"
        )
    print("\n".join(lines), file=sys.stderr, flush=True)
    return 2


def main(argv: list, python=None) -> int:
    """Run one task to the end, printing its output; returns the exit status.

    ``python`` runs the ``alnm`` command (default: PythonSlicer, else this Python).
    """
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # --help (0) or bad arguments (2): argparse has printed why
        return int(exc.code or 0)
    batch = None
    try:
        logic_class, batch_class = module_classes()
        status = check_dependencies(logic_class(), args)
        if status:
            return status
        batch = batch_class(python)

        def report(lines, progress, stage):
            for line in lines:
                print(line, flush=True)

        result = batch.run(
            args.task, args.manifest, args.out, args.model, args.readers, args.extra, callback=report
        )
    except ValueError as exc:
        print(f"alnm_batch: error: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        if batch is not None:
            batch.cancel()
        print("alnm_batch: cancelled", file=sys.stderr, flush=True)
        return 130
    print(result.summary(), flush=True)
    return int(result.returnCode if result.returnCode is not None else 2)


def finish(status: int) -> None:
    """Exit with ``status``: through ``slicer.util.exit`` inside Slicer (called once), else ``sys.exit``."""
    try:
        import slicer

        app = getattr(slicer, "app", None)
    except ImportError:
        app = None
    if app is not None:
        slicer.util.exit(status)
    else:
        sys.exit(status)


if __name__ == "__main__":
    try:
        exit_status = main(sys.argv[1:])
    except BaseException:  # anything unexpected still ends Slicer with a failure status
        traceback.print_exc()
        exit_status = 2
    finish(exit_status)
