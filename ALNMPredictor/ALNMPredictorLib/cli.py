"""The `alnm` command line: one sub-command per pipeline step, each implemented in its own module.

A command module ``M`` named in :data:`COMMANDS` provides ``configure_<name>(parser)`` to add its
arguments and ``run_<name>(args) -> int`` to run it. Only the module of the command being run is
imported, so ``alnm validate`` does not pay for importing PyTorch.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import sys
import traceback
import warnings
from collections.abc import Sequence

from ALNMPredictorLib import __version__
from ALNMPredictorLib.errors import ALNMError

#: command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("ALNMPredictorLib.demo", "synthetic multicentre cohort -> full run (the embedded default)"),
    "synth": ("ALNMPredictorLib.synth", "write a synthetic multicentre cohort (images, masks, manifest)"),
    "validate": ("ALNMPredictorLib.cohort", "check a manifest and every file it names"),
    "extract": ("ALNMPredictorLib.extraction", "extract handcrafted and deep features for a cohort"),
    "train": ("ALNMPredictorLib.pipeline", "fit scores and nomogram on the training split, save a model"),
    "predict": ("ALNMPredictorLib.pipeline", "apply a saved model to new cases"),
    "evaluate": ("ALNMPredictorLib.pipeline", "validate a saved model on every split and write the report"),
    "run": ("ALNMPredictorLib.pipeline", "extract -> train -> evaluate in one go"),
}


def _command_module(name: str):
    module_name, _ = COMMANDS[name]
    module = importlib.import_module(module_name)
    if not hasattr(module, f"configure_{name}") or not hasattr(module, f"run_{name}"):
        raise ALNMError(f"command '{name}' is not available in this version")
    return module


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Return the top-level parser; with ``command``, that sub-command's arguments are added."""
    parser = argparse.ArgumentParser(
        prog="alnm",
        description="ALNM Predictor: ultrasound deep-learning radiomics for axillary lymph node metastasis.",
    )
    parser.add_argument("--version", action="version", version=f"alnm {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            getattr(_command_module(name), f"configure_{name}")(sub_parser)
    return parser


def _os_error_message(exc: OSError) -> str:
    """An OSError as one line naming the file, with what to do for a full disk."""
    where = f"{exc.filename}: " if exc.filename else ""
    text = f"{where}{exc.strerror or exc}"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        text += (
            "; free some space and rerun: finished outputs were written whole (atomic renames) and "
            "the feature cache is kept, so the rerun resumes"
        )
    return text


#: libraries whose INFO messages the CLI does not show (``--verbose`` does)
QUIET_LOGGERS = ("pykwalify", "PIL", "matplotlib", "urllib3", "filelock")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status (0 ok, 1 some cases failed, 2 error, 130 interrupted).

    A fatal error is one ``alnm: error: ...`` line and status 2, never a traceback (``--verbose`` adds it
    for an unexpected error, which is a bug to report).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in COMMANDS:
        command = None
    verbose = "-v" in argv or "--verbose" in argv
    try:
        parser = build_parser(command)
        args = parser.parse_args(argv)
        logging.basicConfig(
            level=logging.DEBUG if args.verbose else logging.INFO,
            format="%(levelname)s %(name)s: %(message)s",
        )
        # the library logs its warnings (e.g. a random VGG19 backbone) for the command line: a Python warning
        # of the same text would print it a second time, with a source line
        warnings.filterwarnings("ignore", message="VGG19 backbone has RANDOM weights")
        for (
            chatty
        ) in QUIET_LOGGERS:  # libraries' INFO lines (e.g. "pykwalify.core: validation.valid") are not ours
            logging.getLogger(chatty).setLevel(logging.DEBUG if args.verbose else logging.WARNING)
        if args.command is None:
            parser.print_help()
            return 2
        return int(getattr(_command_module(args.command), f"run_{args.command}")(args) or 0)
    except ALNMError as exc:
        print(f"alnm: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("alnm: interrupted; finished work is cached and a rerun resumes it", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"alnm: error: {_os_error_message(exc)}", file=sys.stderr)
        return 2
    except MemoryError:
        print(
            "alnm: error: out of memory; rerun with fewer --workers (finished work is cached)",
            file=sys.stderr,
        )
        return 2
    except Exception as exc:  # a bug: say so in one line, the traceback only when asked for
        if verbose:
            traceback.print_exc()
        print(
            f"alnm: error: unexpected {type(exc).__name__}: {exc} (this is a bug: please report it with the "
            "output of the same command run with --verbose)",
            file=sys.stderr,
        )
        return 2
