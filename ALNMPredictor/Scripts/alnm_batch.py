"""Headless cohort runs with the module's batch logic.

    Slicer --no-main-window --python-script ALNMPredictor/Scripts/alnm_batch.py -- \\
        TASK MANIFEST --out DIR [--model MODEL] [--readers READS.csv] [-- extra alnm options]

TASK is ``train``, ``evaluate`` or ``predict``. The work runs in a ``PythonSlicer -m ALNMPredictorLib``
subprocess (the ``alnm`` CLI); its progress and messages are printed here. Exit status: 0 done,
1 done but some cases failed, 2 error (bad arguments, bad manifest, ...), 130 cancelled.

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
        argv, extra = argv[:cut], argv[cut + 1:]
    parser = argparse.ArgumentParser(prog="alnm_batch.py", description="ALNM Predictor cohort run (headless)")
    parser.add_argument("task", choices=["train", "evaluate", "predict"])
    parser.add_argument("manifest", help="cohort manifest (CSV)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--model", default=None, help="saved model folder or .zip (evaluate, predict)")
    parser.add_argument("--readers", default=None, help="reads CSV of a reader study (evaluate)")
    args = parser.parse_args(argv)
    args.extra = extra
    return args


def batch_logic_class():
    """ALNMPredictorBatchLogic from the module file (importable inside Slicer, or with stand-ins in tests)."""
    if str(MODULE_DIR) not in sys.path:
        sys.path.insert(0, str(MODULE_DIR))
    from ALNMPredictor import ALNMPredictorBatchLogic

    return ALNMPredictorBatchLogic


def main(argv: list) -> int:
    """Run one task to the end, printing its output; returns the exit status."""
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # --help (0) or bad arguments (2): argparse has printed why
        return int(exc.code or 0)
    logic = None
    try:
        logic = batch_logic_class()()

        def report(lines, progress, stage):
            for line in lines:
                print(line, flush=True)

        result = logic.run(args.task, args.manifest, args.out, args.model, args.readers, args.extra, callback=report)
    except ValueError as exc:
        print(f"alnm_batch: error: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        if logic is not None:
            logic.cancel()
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
