"""Cohort feature extraction: one feature table (handcrafted + deep) per run, cached per ROI and resumable.

The table has one row per (case, mask variant) — ``main`` for every case, ``reader2`` / ``repeat``
where a re-segmentation exists — with columns ``case_id``, ``variant`` and region-prefixed features
(``tumor_original_firstorder_Entropy``, ..., ``tumor_deep_000`` ... ``tumor_deep_127``, ``ln_...``).
A re-segmentation row has values only for the regions that have that variant (NaN elsewhere).

Work is split into items, one per (case, region, variant):

1. Handcrafted features, in parallel over items (``workers`` processes, one thread each). Each item is
   cached in ``DIR/cache/handcrafted/<key>.json``, the key being the SHA-256 of the image and mask file
   contents, mask label, spacing and the extractor's ``settings_hash`` (not the variant: two variants
   with the same mask file share one entry).
2. Deep features (when ``deep`` is given): ROI crops (computed in the worker processes) go through
   the VGG19 trunk in the main process in fixed-size batches (so a feature does not depend on which
   other crops shared its batch), and the pooled trunk output of each item is cached in
   ``DIR/cache/deep/trunk/<key>.npy``. Then one head per region is trained on the training split's
   ``main`` items and ALNM labels (cached in ``DIR/cache/deep/heads/<key>/``, keyed by the training
   items, labels and settings), or taken from ``fitted_deep`` when applying a saved model. Its
   128 bottleneck activations are the deep features.

A rerun, or a run resumed after an interruption, loads every cached item and computes only the rest.
An item that fails (missing or corrupt file, empty mask, ...) is recorded with its error in the status
table and the run goes on. Outputs (``features.parquet``, ``features.csv``, ``status.csv``,
``failures.csv``, then ``extraction.json`` last) are each written atomically.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import math
import os
import platform
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ALNMPredictorLib import __version__
from ALNMPredictorLib.cohort import VARIANTS, Cohort, RegionInput, load_manifest
from ALNMPredictorLib.errors import ALNMError, InputError, format_location
from ALNMPredictorLib.fileio import (
    content_sha256,
    remove_temporaries,
    sha256_file,
    write_json,
    write_table,
    write_text,
)

if TYPE_CHECKING:
    from ALNMPredictorLib.deep import DeepFeatureExtractor
    from ALNMPredictorLib.handcrafted import HandcraftedExtractor

__all__ = [
    "CACHE_VERSION",
    "TRUNK_BATCH",
    "ExtractionResult",
    "WorkItem",
    "add_scheduler_option",
    "configure_extract",
    "extract_cohort",
    "file_sha256",
    "plan_items",
    "run_extract",
]

logger = logging.getLogger(__name__)

#: bump when the cached values of an item would change for the same inputs and settings
CACHE_VERSION = 1
#: crops cropped, run through the trunk and cached together (a unit of work, not a batch: each crop
#: goes through the trunk on its own)
TRUNK_BATCH = 8
_HC_FORMAT = "alnm-handcrafted-cache"
_TABLE_FORMAT = "alnm-feature-table"

#: callback(stage, done, total) after each item of a stage; raising from it stops the run
Callback = Callable[[str, int, int], None]


# ---------------------------------------------------------------------------------------------------
# Items and keys


@dataclass(frozen=True)
class WorkItem(RegionInput):
    """One (case, region, variant) ROI to extract: the cohort's inputs, its place in the run, its content key."""

    index: int
    input_key: str

    @property
    def mask_column(self) -> str:
        """The manifest column of this item's mask (``tumor_mask``, ``tumor_mask_reader2``, ...)."""
        return f"{self.region}_mask" if self.variant == "main" else f"{self.region}_mask_{self.variant}"


@dataclass(frozen=True)
class _Failure:
    item: WorkItem | None
    case_id: str
    region: str
    variant: str
    stage: str
    error: str


_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes (memoised by path, size and modification time)."""
    stat = os.stat(path)
    memo = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    digest = _DIGESTS.get(memo)
    if digest is None:
        digest = _DIGESTS[memo] = sha256_file(path)
    return digest


@dataclass
class Features:
    """Per-variant feature tables indexed by case_id, with where they came from."""

    main: pd.DataFrame
    reader2: pd.DataFrame | None
    repeat: pd.DataFrame | None
    failed: dict[str, str]  # case_id -> error (a region could not be extracted)
    degenerate: list[str]
    info: dict[str, Any]
    deep_models: dict[str, Any] = field(default_factory=dict)


def split_variants(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Rows of a (case_id, variant) feature table per variant, indexed by case_id."""
    out = {}
    for variant, part in table.groupby("variant", sort=False):
        frame = part.drop(columns=["variant"]).set_index("case_id")
        frame.index = frame.index.astype(str)
        out[str(variant)] = frame
    return out


def plan_items(
    cohort: Cohort, variants: Sequence[str] | None = None
) -> tuple[list[WorkItem], list[tuple[str, str, str, str]]]:
    """Every (case, region, variant) ROI of ``cohort`` with its content key, and the ones that cannot run.

    ``variants``: only these mask variants (e.g. ``["main"]`` to apply a model); default all.
    A missing main image/mask, or a file that cannot be read, is returned as a failure
    ``(case_id, region, variant, error)``; an absent re-segmentation is simply not an item.
    """
    items: list[WorkItem] = []
    failures: list[tuple[str, str, str, str]] = []
    for case_id in cohort.case_ids():
        for region in cohort.regions:
            for variant in cohort.variants(region):
                if variants is not None and variant not in variants:
                    continue
                column = f"{region}_mask" if variant == "main" else f"{region}_mask_{variant}"
                try:
                    inputs = cohort.region_inputs(case_id, region, variant)
                except ALNMError as exc:
                    failures.append((case_id, region, variant, str(exc)))
                    continue
                if inputs is None:
                    if variant == "main":
                        failures.append(
                            (
                                case_id,
                                region,
                                variant,
                                format_location(
                                    "no image or mask path in the manifest", case=case_id, column=column
                                ),
                            )
                        )
                    continue
                try:
                    image_hash = _input_hash(inputs.image_path, case_id, f"{region}_image")
                    mask_hash = _input_hash(inputs.mask_path, case_id, column)
                except InputError as exc:
                    failures.append((case_id, region, variant, str(exc)))
                    continue
                key = content_sha256(
                    {
                        "image": image_hash,
                        "mask": mask_hash,
                        "label": inputs.mask_label,
                        "spacing": None if inputs.spacing is None else [float(v) for v in inputs.spacing],
                    }
                )
                fields = {**vars(inputs), "case_id": str(case_id)}
                items.append(WorkItem(**fields, index=len(items), input_key=key))
    return items, failures


def _input_hash(path: str, case_id: str, column: str) -> str:
    try:
        return file_sha256(path)
    except FileNotFoundError:
        raise InputError("file not found", case=case_id, column=column, path=path) from None
    except OSError as exc:
        raise InputError(
            f"cannot read file: {exc.strerror or exc}", case=case_id, column=column, path=path
        ) from None


# ---------------------------------------------------------------------------------------------------
# Worker side (runs in the pool processes, or in-process when workers == 1)

_WORKER_EXTRACTORS: dict[str, HandcraftedExtractor] = {}
_WORKER_LIMITS: Any = None
#: seconds between two checks of a worker's parent watchdog
_PARENT_POLL_SECONDS = 1.0
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _set_parent_death_signal(sig: int) -> bool:
    """Linux: have the kernel send ``sig`` to this process when its parent dies (``prctl(PR_SET_PDEATHSIG)``).

    The "parent" is the thread that started this process: the pool's workers are started by the thread
    that submits the tasks, which runs until the pool is shut down. False where unavailable.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return False
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def _pid_exists(pid: int) -> bool:
    """POSIX: whether a process ``pid`` exists (a zombie counts). Never called on Windows, where
    ``os.kill(pid, 0)`` would terminate that process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True


def _watch_parent(parent_pid: int, sentinel: Any) -> None:
    """Block until the parent process is gone, then end this process at once (a watchdog thread's body).

    ``sentinel``: multiprocessing's parent sentinel (POSIX: the read end of a pipe whose only write end the
    parent holds, so it reads EOF when the parent dies, however it died; Windows: the parent's process
    handle), or None. Each second, also: POSIX re-parents an orphan (``os.getppid()`` changes), and
    ``parent_pid`` must still exist (POSIX; it need not be the direct parent, e.g. under a launcher).
    """
    from multiprocessing.connection import wait

    first_ppid = os.getppid()
    while True:
        if sentinel is not None:
            try:
                if wait([sentinel], timeout=_PARENT_POLL_SECONDS):
                    break
            except (OSError, ValueError):  # a closed or invalid sentinel: poll only
                sentinel = None
        else:
            time.sleep(_PARENT_POLL_SECONDS)
        if os.getppid() != first_ppid or (os.name == "posix" and not _pid_exists(parent_pid)):
            break
    os._exit(1)  # the parent is gone: nobody will read a result; atomic writers leave no partial file


def _die_with_parent(parent_pid: int) -> None:
    """Make this worker exit when the process that started the pool (``parent_pid``) dies, even by SIGKILL.

    Linux: ``PR_SET_PDEATHSIG`` with SIGKILL, immediate even while the worker is inside C code; if the parent
    died before that call, the worker exits now. Everywhere (the fallback on macOS and Windows, and a second
    line on Linux): a daemon thread waiting for the parent's end (:func:`_watch_parent`); it needs the
    interpreter lock, so a worker deep in a long C call exits when that call returns.
    """
    _set_parent_death_signal(getattr(signal, "SIGKILL", signal.SIGTERM))
    if os.name == "posix" and os.getppid() != parent_pid and not _pid_exists(parent_pid):
        os._exit(1)
    import multiprocessing

    parent = multiprocessing.parent_process()
    sentinel = parent.sentinel if parent is not None and parent.pid == parent_pid else None
    threading.Thread(
        target=_watch_parent, args=(parent_pid, sentinel), name="alnm-parent-watchdog", daemon=True
    ).start()


def init_worker(parent_pid: int | None = None) -> None:
    """One thread per worker process: the pool is the parallelism. With ``parent_pid``, die with the parent."""
    global _WORKER_LIMITS
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_limits

        _WORKER_LIMITS = threadpool_limits(1)
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    if "torch" in sys.modules:  # otherwise OMP_NUM_THREADS above applies when it is imported
        sys.modules["torch"].set_num_threads(1)
    # Each worker would repeat the extractor's one-time notes; the main process logs them once.
    logging.getLogger("ALNMPredictorLib.handcrafted").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """In-process equivalent of :func:`init_worker`, restored on exit."""
    import SimpleITK as sitk

    previous = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            yield
        else:
            with threadpool_limits(1):
                yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(previous)


def _load_roi(task: dict[str, Any]) -> tuple[Any, np.ndarray]:
    from ALNMPredictorLib.imaging import load_image, load_mask

    case, column = task["case_id"], task["mask_column"]
    try:
        image = load_image(task["image_path"], spacing=task["spacing"])
    except InputError as exc:
        raise InputError(exc.reason, case=case, column=f"{task['region']}_image", path=exc.path) from None
    try:
        mask = load_mask(task["mask_path"], label=task["mask_label"])
    except InputError as exc:
        raise InputError(exc.reason, case=case, column=column, path=exc.path) from None
    if mask.shape != image.shape:
        raise InputError(
            f"mask size {mask.shape} differs from image size {image.shape}",
            case=case,
            column=column,
            path=task["mask_path"],
        )
    return image, mask


def _error_text(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, ALNMError) else f"{type(exc).__name__}: {exc}"


def _handcrafted_task(task: dict[str, Any]) -> dict[str, Any]:
    """Extract one ROI's handcrafted features and cache them; errors are returned, not raised."""
    started = time.perf_counter()
    out: dict[str, Any] = {
        "index": task["index"],
        "names": None,
        "values": None,
        "error": None,
        "no_spacing": False,
    }
    try:
        from ALNMPredictorLib.handcrafted import HandcraftedExtractor

        extractor = _WORKER_EXTRACTORS.get(task["settings_hash"])
        if extractor is None:
            extractor = HandcraftedExtractor(task["params"], full_table=task["full_table"])
            _WORKER_EXTRACTORS[task["settings_hash"]] = extractor
        image, mask = _load_roi(task)
        out["no_spacing"] = image.spacing is None
        features = extractor.extract(
            image.array, mask, image.spacing, case=task["case_id"], column=task["mask_column"]
        )
        out["names"] = list(features)
        out["values"] = [None if not math.isfinite(v) else float(v) for v in features.values()]
        out["seconds"] = time.perf_counter() - started
        if (
            task["cache_path"] is not None
        ):  # else the caller writes it (Dask: the cache is where the client runs)
            _write_handcrafted_cache(task, out)
    except Exception as exc:  # one bad ROI must not stop the cohort
        out["error"] = _error_text(exc)
    out["seconds"] = time.perf_counter() - started
    return out


def _write_handcrafted_cache(
    task: Mapping[str, Any], out: Mapping[str, Any], path: str | None = None
) -> None:
    """Write one ROI's cache entry (atomically) from its task and its successful result."""
    record = {
        "format": _HC_FORMAT,
        "version": CACHE_VERSION,
        "key": task["key"],
        "settings_hash": task["settings_hash"],
        "case_id": task["case_id"],
        "image": task["image_path"],
        "mask": task["mask_path"],
        "seconds": out["seconds"],
        "names": out["names"],
        "values": out["values"],
    }
    write_text(path or task["cache_path"], json.dumps(record, separators=(",", ":")) + "\n")


def _deep_input(task: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The image array a deep crop is cut from, and the ROI mask, of one task (errors name case and column)."""
    image, mask = _load_roi(task)
    array = image.array
    if image.original_dtype == "uint8":
        # 8-bit files keep deep.crop_roi's fixed /255 scale (colour ones are luma, rounded back)
        array = np.clip(np.rint(array), 0, 255).astype(np.uint8)
    return array, mask


def deep_input(region_input: RegionInput) -> tuple[np.ndarray, np.ndarray]:
    """The image array and ROI mask of a cohort's region, as the deep stage reads them for its crop.

    Grad-CAM (:mod:`ALNMPredictorLib.gradcam`) cuts its crops from these, so a heatmap is computed on
    exactly the crop whose features the model scored.
    """
    task = {
        "case_id": region_input.case_id,
        "region": region_input.region,
        "image_path": region_input.image_path,
        "mask_path": region_input.mask_path,
        "mask_label": region_input.mask_label,
        "mask_column": f"{region_input.region}_mask"
        if region_input.variant == "main"
        else f"{region_input.region}_mask_{region_input.variant}",
        "spacing": region_input.spacing,
    }
    return _deep_input(task)


def _crop_task(task: dict[str, Any]) -> dict[str, Any]:
    """The deep-input crop (3, size, size) of one ROI; errors are returned, not raised."""
    started = time.perf_counter()
    out: dict[str, Any] = {"index": task["index"], "crop": None, "error": None}
    try:
        from ALNMPredictorLib.deep import crop_roi

        array, mask = _deep_input(task)
        out["crop"] = crop_roi(
            array,
            mask,
            task["margin"],
            task["size"],
            intensity=task.get("intensity", "auto"),
            case=task["case_id"],
            column=task["mask_column"],
        )
    except Exception as exc:  # one bad ROI must not stop the cohort
        out["error"] = _error_text(exc)
    out["seconds"] = time.perf_counter() - started
    return out


def _task_base(item: WorkItem) -> dict[str, Any]:
    return {
        "index": item.index,
        "case_id": item.case_id,
        "region": item.region,
        "variant": item.variant,
        "image_path": item.image_path,
        "mask_path": item.mask_path,
        "mask_label": item.mask_label,
        "mask_column": item.mask_column,
        "spacing": item.spacing,
    }


class _Runner:
    """Runs task functions over items: in-process (1 worker) or in a spawned process pool."""

    writes_cache = False  # the workers write the handcrafted cache entries

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> _Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the pool; queued tasks are cancelled, running ones finish (and write their cache)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def run(
        self,
        fn: Callable[[dict[str, Any]], dict[str, Any]],
        tasks: Sequence[dict[str, Any]],
        meanwhile: Callable[[], object] | None = None,
    ) -> Iterator[dict]:
        """Yield ``fn(task)`` for every task, in completion order.

        ``meanwhile`` is called once, after the first tasks are submitted (it overlaps the workers' start-up).
        """
        if not tasks:
            return
        if self.workers <= 1:
            if meanwhile is not None:
                meanwhile()
            with single_threaded():
                for task in tasks:
                    yield fn(task)
            return
        if self._pool is None:
            import multiprocessing

            # spawn: fork after torch/OpenMP initialisation in the parent can deadlock the children.
            # The workers exit when this process dies, even by SIGKILL (see _die_with_parent).
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=init_worker,
                initargs=(os.getpid(),),
            )
        pending: set[Future] = set()
        queue = list(reversed(tasks))
        try:
            while queue or pending:
                while queue and len(pending) < 4 * self.workers:  # bounded: results are not kept waiting
                    pending.add(self._pool.submit(fn, queue.pop()))
                if meanwhile is not None:
                    meanwhile()
                    meanwhile = None
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    try:
                        out = future.result()
                    except BrokenProcessPool as exc:
                        raise ALNMError(
                            "a worker process stopped abruptly (out of memory, killed, or started from a script "
                            "without an `if __name__ == '__main__':` guard); rerun with fewer workers, or "
                            "workers=1 / --workers 1; finished items are cached"
                        ) from exc
                    yield out
        finally:
            # Queued tasks are cancelled; running ones are waited for (they finish and cache their result, or
            # fail with the pool when Ctrl+C in a terminal also interrupted the workers). A cancelled future
            # is not "done" for wait() until the pool's manager thread notifies it, which a broken pool never
            # does: waiting for it too hung Ctrl+C with several workers.
            running = [future for future in pending if not future.cancel()]
            wait(running)


_DASK_READY = False
#: how long to try to reach a Dask scheduler before giving up
DASK_CONNECT_SECONDS = 30


def _dask_call(fn: Callable[[dict[str, Any]], dict[str, Any]], task: dict[str, Any]) -> dict[str, Any]:
    """Run a task function in a Dask worker, set up once per worker process as the pool's workers are."""
    global _DASK_READY
    if not _DASK_READY:
        init_worker()
        _DASK_READY = True
    return fn(task)


class _DaskRunner:
    """Runs task functions on a Dask distributed cluster: the same tasks and results as :class:`_Runner`.

    ``scheduler``: ``tcp://HOST:PORT`` of a running scheduler, or ``local`` for a ``LocalCluster`` of
    ``workers`` processes (one thread each) on this machine, started here and closed with the runner.
    A task whose worker died (killed, out of memory) is run again on another worker by Dask; one that
    kills ``distributed.scheduler.allowed-failures`` + 1 workers (default 4) is returned as failed.
    Cache entries are written here, by the client, so the workers need not share its filesystem (they
    need to read the images and masks at the paths in the manifest).
    """

    writes_cache = True

    def __init__(self, scheduler: str, workers: int) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ALNMError(
                "Dask distributed is not installed: pip install 'alnm-predictor[dask]' (or dask[distributed]) "
                "to use --scheduler"
            ) from None
        self.scheduler = scheduler
        self._cluster = None
        try:
            if scheduler == "local":
                self._cluster = LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=":0",  # any free port: never the fixed 8787 another cluster may hold
                )
                self._client = Client(self._cluster, set_as_default=False)
            else:
                self._client = Client(scheduler, timeout=DASK_CONNECT_SECONDS, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            self.close()
            raise ALNMError(
                f"cannot connect to the Dask scheduler at {scheduler}: {exc} (start one with `dask scheduler` and "
                "workers with `dask worker ADDRESS`, or use --scheduler local)"
            ) from None
        threads = sum(self._client.nthreads().values()) or workers
        self.workers = max(1, threads)

    def __enter__(self) -> _DaskRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the client, and the local cluster if this runner started it."""
        for thing in (getattr(self, "_client", None), self._cluster):
            if thing is not None:
                with contextlib.suppress(Exception):
                    thing.close()
        self._cluster = None

    def run(
        self,
        fn: Callable[[dict[str, Any]], dict[str, Any]],
        tasks: Sequence[dict[str, Any]],
        meanwhile: Callable[[], object] | None = None,
    ) -> Iterator[dict]:
        """Yield ``fn(task)`` for every task, in completion order; at most 4 tasks per worker thread in flight."""
        if not tasks:
            return
        from distributed import as_completed

        queue = list(reversed(tasks))
        task_of: dict[Any, dict[str, Any]] = {}
        stage = getattr(fn, "__name__", "task").strip("_")

        def submit() -> Any:
            task = queue.pop()
            future = self._client.submit(
                _dask_call, fn, task, key=f"alnm-{stage}-{task['index']}-{time.time_ns()}", pure=False
            )
            task_of[future] = task
            return future

        pending = as_completed(
            [submit() for _ in range(min(len(queue), 4 * self.workers))], loop=self._client.loop
        )
        if meanwhile is not None:
            meanwhile()
        try:
            for future in pending:
                task = task_of.pop(future)
                try:
                    out = future.result()
                except Exception as exc:  # KilledWorker, a lost connection: this task fails, the run goes on
                    out = {
                        "index": task["index"],
                        "error": f"Dask: {type(exc).__name__}: {exc}",
                        "seconds": 0.0,
                        "names": None,
                        "values": None,
                        "no_spacing": False,
                        "crop": None,
                    }
                if queue:
                    pending.add(submit())
                yield out
        finally:
            left = list(task_of)
            if left:
                self._client.cancel(left)


# ---------------------------------------------------------------------------------------------------
# Result


@dataclass
class ExtractionResult:
    """What :func:`extract_cohort` produced (``table`` and ``status`` are also written to ``out_dir``)."""

    table: pd.DataFrame
    status: pd.DataFrame
    failed: list[tuple[str, str, str, str]]
    deep_models: dict[str, DeepFeatureExtractor]
    degenerate: list[str]
    info: dict[str, Any]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    out_dir: Path | None = None

    @property
    def computed(self) -> int:
        """Items (handcrafted ROIs, trunk outputs, deep heads) computed in this run."""
        return sum(stage.get("computed", 0) for stage in self.counts.values())

    @property
    def cached(self) -> int:
        """Items loaded from the cache in this run."""
        return sum(stage.get("cached", 0) for stage in self.counts.values())

    def feature_columns(self) -> list[str]:
        """The feature columns of the table (all but ``case_id`` and ``variant``)."""
        return [c for c in self.table.columns if c not in ("case_id", "variant")]


# ---------------------------------------------------------------------------------------------------
# Handcrafted stage


def _load_handcrafted_cache(path: Path, key: str) -> dict[str, float] | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.warning("%s: unreadable cache entry (%s); recomputing it", path, exc)
        return None
    if (
        not isinstance(record, dict)
        or record.get("format") != _HC_FORMAT
        or record.get("version") != CACHE_VERSION
        or record.get("key") != key
        or len(record.get("names") or []) != len(record.get("values") or [])
    ):
        logger.warning("%s: stale or foreign cache entry; recomputing it", path)
        return None
    return {
        n: (math.nan if v is None else float(v))
        for n, v in zip(record["names"], record["values"], strict=True)
    }


def _progress_bar(total: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total, desc=desc, unit="roi", file=sys.stderr, disable=not enabled or total == 0, leave=True
    )


def _run_handcrafted(
    items: list[WorkItem],
    extractor: HandcraftedExtractor,
    cache_dir: Path,
    runner: _Runner | _DaskRunner,
    counts: dict[str, int],
    failures: list[_Failure],
    seconds: dict[tuple[str, int], float],
    progress: bool,
    callback: Callback | None,
) -> tuple[dict[int, dict[str, float]], int]:
    """Handcrafted features of every item (cache hits loaded, misses computed in parallel)."""
    settings_hash = extractor.settings_hash
    _WORKER_EXTRACTORS.setdefault(settings_hash, extractor)  # in-process runs (1 worker) reuse it
    cache = cache_dir / "handcrafted"
    results: dict[int, dict[str, float]] = {}
    tasks = []
    paths: dict[int, tuple[dict[str, Any], Path]] = {}
    bar = _progress_bar(len(items), "handcrafted", progress)
    done = 0
    try:
        for item in items:
            key = content_sha256({"v": CACHE_VERSION, "input": item.input_key, "settings": settings_hash})
            path = cache / f"{key}.json"
            hit = _load_handcrafted_cache(path, key)
            if hit is not None:
                results[item.index] = hit
                counts["cached"] += 1
                done += 1
                bar.update()
                if callback:
                    callback("handcrafted", done, len(items))
                continue
            task = _task_base(item)
            task.update(
                key=key,
                cache_path=None if runner.writes_cache else str(path),
                params=extractor.params,
                full_table=extractor.full_table,
                settings_hash=settings_hash,
            )
            tasks.append(task)
            paths[item.index] = (task, path)
        by_index = {item.index: item for item in items}
        no_spacing = 0
        # the column names (one synthetic extraction) are needed later: get them while the workers start
        for out in runner.run(_handcrafted_task, tasks, meanwhile=extractor.feature_names):
            item = by_index[out["index"]]
            seconds[("handcrafted", item.index)] = out["seconds"]
            if out["error"] is not None:
                failures.append(
                    _Failure(item, item.case_id, item.region, item.variant, "handcrafted", out["error"])
                )
                counts["failed"] += 1
            else:
                if runner.writes_cache:
                    task, path = paths[item.index]
                    _write_handcrafted_cache(task, out, str(path))
                results[item.index] = {
                    n: (math.nan if v is None else v)
                    for n, v in zip(out["names"], out["values"], strict=True)
                }
                counts["computed"] += 1
                no_spacing += bool(out["no_spacing"])
            done += 1
            bar.update()
            if callback:
                callback("handcrafted", done, len(items))
    finally:
        bar.close()
    return results, no_spacing


# ---------------------------------------------------------------------------------------------------
# Deep stage


def _compute_crops(
    items: Sequence[WorkItem],
    model: DeepFeatureExtractor,
    runner: _Runner | _DaskRunner,
    failures: list[_Failure],
    seconds: dict[tuple[str, int], float],
) -> dict[int, np.ndarray]:
    """Crops of ``items`` (failures recorded), computed by the runner."""
    tasks = []
    for item in items:
        task = _task_base(item)
        task.update(margin=model.margin, size=model.input_size, intensity=model.intensity)
        tasks.append(task)
    by_index = {item.index: item for item in items}
    crops: dict[int, np.ndarray] = {}
    for out in runner.run(_crop_task, tasks):
        item = by_index[out["index"]]
        seconds[("deep", item.index)] = seconds.get(("deep", item.index), 0.0) + out["seconds"]
        if out["error"] is not None:
            failures.append(_Failure(item, item.case_id, item.region, item.variant, "deep", out["error"]))
        else:
            crops[item.index] = out["crop"]
    return crops


def _trunk_of(model: DeepFeatureExtractor, crops: list[np.ndarray]) -> np.ndarray:
    """Trunk outputs of crops (each crop on its own, so no case depends on the others in its chunk)."""
    return model.trunk_features(np.stack(crops)).astype(np.float32, copy=False)


def _ensure_trunk(
    items: Sequence[WorkItem],
    model: DeepFeatureExtractor,
    cache_dir: Path,
    runner: _Runner | _DaskRunner,
    counts: dict[str, int],
    failures: list[_Failure],
    seconds: dict[tuple[str, int], float],
    progress: bool,
    callback: Callback | None,
    desc: str,
    memo: dict[Path, np.ndarray],
    keep_crops: set[int] | frozenset[int] = frozenset(),
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Trunk outputs of ``items`` from the cache, computing the missing ones; also crops of ``keep_crops``.

    ``memo`` holds the entries already loaded or computed in this run (not counted again).
    """
    from ALNMPredictorLib.deep import DeepCache

    store = DeepCache(cache_dir, CACHE_VERSION)
    identity = model.trunk_identity()
    dim = model.trunk_dim
    trunks: dict[int, np.ndarray] = {}
    kept: dict[int, np.ndarray] = {}
    missing: list[tuple[WorkItem, Path]] = []
    done = 0
    for item in items:
        path = store.trunk_path(item.input_key, identity)
        vector = memo.get(path)
        if vector is None:
            vector = store.load_trunk(path, dim)
            if vector is None:
                missing.append((item, path))
                continue
            memo[path] = vector
            counts["cached"] += 1
        trunks[item.index] = vector
        done += 1
        if callback:
            callback(desc, done, len(items))
    bar = _progress_bar(len(missing), desc, progress)  # the work left: cache hits are instant
    try:
        chunk = TRUNK_BATCH * 4
        for start in range(0, len(missing), chunk):
            part = missing[start : start + chunk]
            crops = _compute_crops([item for item, _ in part], model, runner, failures, seconds)
            ready = [(item, path) for item, path in part if item.index in crops]
            counts["failed"] += len(part) - len(ready)
            started = time.perf_counter()
            vectors = _trunk_of(model, [crops[item.index] for item, _ in ready]) if ready else []
            per_item = (time.perf_counter() - started) / max(1, len(ready))
            for (item, path), vector in zip(ready, vectors, strict=True):
                store.save_trunk(path, vector)
                trunks[item.index] = memo[path] = vector
                seconds[("deep", item.index)] = seconds.get(("deep", item.index), 0.0) + per_item
                if item.index in keep_crops:
                    kept[item.index] = crops[item.index]
                counts["computed"] += 1
            bar.update(len(part))
            for _ in part:
                done += 1
                if callback:
                    callback(desc, done, len(items))
    finally:
        bar.close()
    return trunks, kept


def _train_heads(
    cohort: Cohort,
    items: list[WorkItem],
    *,
    deep: str,
    deep_options: Mapping[str, Any],
    base: DeepFeatureExtractor,
    cache_dir: Path,
    runner: _Runner | _DaskRunner,
    counts: dict[str, dict[str, int]],
    failures: list[_Failure],
    seconds: dict[tuple[str, int], float],
    progress: bool,
    callback: Callback | None,
    memo: dict[Path, np.ndarray],
) -> tuple[dict[str, DeepFeatureExtractor], dict[str, str]]:
    """Each region's deep head from the cache, or trained on the training split's main masks (and cached)."""
    from ALNMPredictorLib.deep import DeepCache, DeepFeatureExtractor

    store = DeepCache(cache_dir, CACHE_VERSION)
    trunk_counts, head_counts = counts["deep_trunk"], counts["deep_heads"]
    models: dict[str, DeepFeatureExtractor] = {}
    origin: dict[str, str] = {}
    options = dict(deep_options)
    train_split = cohort.train_split
    if train_split not in cohort.splits():
        raise ALNMError(
            f"deep features need a head trained on the '{train_split}' split, which has no case; "
            "apply saved deep models (fitted_deep) or extract without deep features"
        )
    labels = cohort.labels(train_split)
    train_ids = set(cohort.case_ids(train_split))
    train_by_region = {
        region: [
            it
            for it in items
            if it.region == region
            and it.variant == "main"
            and it.case_id in train_ids
            and not pd.isna(labels.get(it.case_id))
        ]
        for region in cohort.regions
    }
    frozen = base.finetune == "frozen"
    base_trunks: dict[int, np.ndarray] = {}
    kept: dict[int, np.ndarray] = {}
    pending_heads: dict[str, tuple[Path, list[WorkItem], list[int]]] = {}
    for region in cohort.regions:
        train = train_by_region[region]
        y = [int(labels[it.case_id]) for it in train]
        head_dir = store.head_dir(base, deep, [(it.input_key, lab) for it, lab in zip(train, y, strict=True)])
        loaded = store.load_head(head_dir, region, options)
        if loaded is not None:
            models[region] = loaded
            origin[region] = "cached"
            head_counts["cached"] += 1
        else:
            pending_heads[region] = (head_dir, train, y)
    if frozen:
        # every item's trunk output now (the heads' training items' crops kept for augmentation)
        keep = {it.index for _, train, _ in pending_heads.values() for it in train}
        base_trunks, kept = _ensure_trunk(
            items,
            base,
            cache_dir,
            runner,
            trunk_counts,
            failures,
            seconds,
            progress,
            callback,
            "deep trunk",
            memo,
            keep_crops=keep,
        )
    for region, (head_dir, train, y) in pending_heads.items():
        usable = [
            (it, lab) for it, lab in zip(train, y, strict=True) if not frozen or it.index in base_trunks
        ]
        need = [it for it, _ in usable if it.index not in kept]
        kept.update(_compute_crops(need, base, runner, failures, seconds))
        usable = [(it, lab) for it, lab in usable if it.index in kept]
        if len({lab for _, lab in usable}) < 2:
            raise ALNMError(
                f"region {region}: the deep head needs training cases of both classes with a readable "
                f"image and mask; {len(usable)} usable training case(s) of split '{cohort.train_split}'"
            )
        model = DeepFeatureExtractor(weights=deep, **options)
        crops = np.stack([kept[it.index] for it, _ in usable])
        trunk = np.stack([base_trunks[it.index] for it, _ in usable]) if frozen else None
        logger.info("training the %s deep head on %d cases", region, len(usable))
        started = time.perf_counter()
        head_bar = _progress_bar(1, f"{region} deep head", progress)  # total set by the first callback

        def head_progress(done: int, total: int, bar: Any = head_bar) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            model.fit(crops, np.array([lab for _, lab in usable]), trunk=trunk, progress=head_progress)
        finally:
            head_bar.close()
        model.save(head_dir, region)
        models[region] = model
        origin[region] = "trained"
        head_counts["computed"] += 1
        seconds[("head", region)] = time.perf_counter() - started
        if callback:
            callback("deep head", head_counts["computed"], len(pending_heads))
    kept.clear()
    return models, origin


def _deep_stage(
    cohort: Cohort,
    items: list[WorkItem],
    *,
    deep: str,
    deep_options: Mapping[str, Any],
    base: DeepFeatureExtractor | None,
    fitted_deep: Mapping[str, DeepFeatureExtractor] | None,
    cache_dir: Path,
    runner: _Runner | _DaskRunner,
    counts: dict[str, dict[str, int]],
    failures: list[_Failure],
    seconds: dict[tuple[str, int], float],
    progress: bool,
    callback: Callback | None,
) -> tuple[dict[int, np.ndarray], dict[str, DeepFeatureExtractor], dict[str, str]]:
    """Deep features of every item: per-region heads (trained, cached or given) over cached trunk outputs."""
    trunk_counts = counts.setdefault("deep_trunk", {"computed": 0, "cached": 0, "failed": 0})
    counts.setdefault("deep_heads", {"computed": 0, "cached": 0})
    models: dict[str, DeepFeatureExtractor]
    memo: dict[Path, np.ndarray] = {}
    if fitted_deep is not None:
        absent = [r for r in cohort.regions if r not in fitted_deep]
        if absent:
            raise ALNMError(
                f"no fitted deep feature model for region(s) {', '.join(absent)} (models for: "
                f"{', '.join(fitted_deep) or 'none'})"
            )
        models = {region: fitted_deep[region] for region in cohort.regions}
        origin = dict.fromkeys(cohort.regions, "given")
    else:
        assert base is not None
        models, origin = _train_heads(
            cohort,
            items,
            deep=deep,
            deep_options=deep_options,
            base=base,
            cache_dir=cache_dir,
            runner=runner,
            counts=counts,
            failures=failures,
            seconds=seconds,
            progress=progress,
            callback=callback,
            memo=memo,
        )

    features: dict[int, np.ndarray] = {}
    for region in cohort.regions:
        model = models[region]
        failed = {f.item.index for f in failures if f.item is not None}
        region_items = [it for it in items if it.region == region and it.index not in failed]
        trunks, _ = _ensure_trunk(
            region_items,
            model,
            cache_dir,
            runner,
            trunk_counts,
            failures,
            seconds,
            progress,
            callback,
            f"deep {region}",
            memo,
        )
        done = [it for it in region_items if it.index in trunks]
        if done:
            values = model.transform_trunk(np.stack([trunks[it.index] for it in done]))
            for it, row in zip(done, values, strict=True):
                features[it.index] = row
    return features, models, origin


# ---------------------------------------------------------------------------------------------------
# Cohort extraction


def _check_request(cohort: Cohort, anything: bool, workers: int | None) -> int:
    """The number of workers for an extraction of ``cohort``, after checking the request can run."""
    if not anything:
        raise ALNMError("nothing to extract: give handcrafted parameters, deep weights, or both")
    if cohort.table.index.duplicated().any():
        dups = sorted({str(c) for c in cohort.table.index[cohort.table.index.duplicated()]})
        raise InputError(
            f"duplicate case_id(s) {', '.join(dups[:5])}: fix the manifest first", path=cohort.path
        )
    if not cohort.regions:
        raise InputError("no <region>_image column: nothing to extract", path=cohort.path)
    n_workers = int(workers) if workers else (os.cpu_count() or 1)
    if n_workers < 1:
        raise ALNMError(f"workers must be at least 1, got {workers}")
    return n_workers


def _handcrafted_stage(
    items: Sequence[WorkItem],
    extractor: HandcraftedExtractor,
    cache_dir: Path,
    runner: _Runner | _DaskRunner,
    counts: dict[str, int],
    failures: list[_Failure],
    seconds: dict[tuple[str, Any], float],
    progress: bool,
    callback: Callback | None,
) -> dict[int, dict[str, float]]:
    """Handcrafted features of every item (cached or computed), with the run's warnings about them."""
    values, no_spacing = _run_handcrafted(
        items, extractor, cache_dir, runner, counts, failures, seconds, progress, callback
    )
    if no_spacing:
        logger.warning(
            "%d ROI(s) have no pixel spacing in the file or the manifest: 1.0 mm was used, so shape and "
            "texture features are in pixel units (add <region>_spacing columns in mm)",
            no_spacing,
        )
    note = extractor.degenerate_reason()
    if note:
        logger.info(note)
    return values


def extract_cohort(
    cohort: Cohort,
    out_dir: str | os.PathLike[str],
    *,
    handcrafted: str | os.PathLike[str] | Mapping[str, Any] | None = "us2d",
    deep: str | os.PathLike[str] | None = "imagenet",
    deep_options: Mapping[str, Any] | None = None,
    workers: int | None = None,
    progress: bool = True,
    fitted_deep: Mapping[str, DeepFeatureExtractor] | None = None,
    callback: Callback | None = None,
    normalize: bool = False,
    settings: Mapping[str, Any] | None = None,
    variants: Sequence[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    full_table: bool = False,
    scheduler: str | None = None,
) -> ExtractionResult:
    """Extract the feature table of ``cohort`` into ``out_dir`` (cache in ``out_dir/cache``).

    ``handcrafted``: a pyradiomics preset (``us2d``, the default, or ``paper``), parameter file or dict; None
    for none.
    ``deep``: VGG19 backbone weights (``imagenet``, ``none`` = random, or a state-dict path); None for
    no deep features. ``deep_options``: further :class:`~ALNMPredictorLib.deep.DeepFeatureExtractor`
    arguments (``seed``, ``epochs``, ``input_size``, ``finetune``, ``weights_path``, ...).
    ``fitted_deep``: region → fitted extractor to apply (prediction); no head is trained then.
    ``workers``: processes (default: all cores). ``callback(stage, done, total)`` is called after each
    item; an exception it raises stops the run (finished items stay cached).
    ``normalize``: standardise each whole image's intensities before both extractors (pyradiomics
    ``normalize``; deep crops ``intensity="zscore"``), so that scanner gain and dynamic range do not move
    the features; a fitted deep model keeps its own setting.
    ``settings``: the run's resolved settings, recorded in ``extraction.json`` as they are.
    ``variants``: only these mask variants (``["main"]`` when applying a model: no re-segmentations).
    ``cache_dir``: the feature cache (default ``out_dir/cache``), e.g. a training run's, shared by key.
    ``full_table``: also compute the handcrafted features that are rounding noise on a 2D image (the
    ``paper`` preset's 372 z-high-pass wavelet features, for the study's whole 851-column table); by
    default they are left out and listed in ``info["handcrafted"]["not_computed"]``.
    ``scheduler``: run the per-ROI tasks on a Dask distributed cluster instead of a process pool:
    ``tcp://HOST:PORT`` of its scheduler, or ``local`` for a local cluster of ``workers`` processes
    (the same cache, failure records and resume; see :class:`_DaskRunner`).
    A failing item is recorded in ``status`` / ``failed`` and the run goes on.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    n_workers = _check_request(
        cohort, handcrafted is not None or deep is not None or fitted_deep is not None, workers
    )
    if deep is not None and not isinstance(deep, str):
        deep = os.fspath(deep)
    cache_dir = out_dir / "cache" if cache_dir is None else Path(cache_dir)

    from ALNMPredictorLib.handcrafted import HandcraftedExtractor

    hc_extractor = (
        None
        if handcrafted is None
        else HandcraftedExtractor(handcrafted, normalize=normalize, full_table=full_table)
    )
    base = None
    if normalize:
        deep_options = {"intensity": "zscore", **dict(deep_options or {})}
    if deep is not None and fitted_deep is None:
        from ALNMPredictorLib.deep import DeepFeatureExtractor

        base = DeepFeatureExtractor(weights=deep, **dict(deep_options or {}))
        base.backbone_info  # noqa: B018 - load the backbone first: a missing weights file stops the run now
    items, plan_failures = plan_items(cohort, variants)
    failures = [_Failure(None, c, r, v, "input", e) for c, r, v, e in plan_failures]
    counts: dict[str, dict[str, int]] = {}
    seconds: dict[tuple[str, Any], float] = {}
    hc_values: dict[int, dict[str, float]] = {}
    deep_values: dict[int, np.ndarray] = {}
    models: dict[str, DeepFeatureExtractor] = {}
    origin: dict[str, str] = {}
    n_workers = max(1, min(n_workers, len(items)))

    runner: _Runner | _DaskRunner = _DaskRunner(scheduler, n_workers) if scheduler else _Runner(n_workers)
    if scheduler:
        logger.info("extracting on the Dask cluster %s (%d worker threads)", scheduler, runner.workers)
    wall_started = time.time()
    try:
        with runner:
            if hc_extractor is not None:
                counts["handcrafted"] = {"computed": 0, "cached": 0, "failed": 0}
                hc_values = _handcrafted_stage(
                    items,
                    hc_extractor,
                    cache_dir,
                    runner,
                    counts["handcrafted"],
                    failures,
                    seconds,
                    progress,
                    callback,
                )
            if deep is not None or fitted_deep is not None:
                failed_items = {f.item.index for f in failures if f.item is not None}
                deep_items = [it for it in items if it.index not in failed_items]
                deep_values, models, origin = _deep_stage(
                    cohort,
                    deep_items,
                    deep=str(deep) if deep is not None else "given",
                    deep_options=deep_options or {},
                    base=base,
                    fitted_deep=fitted_deep,
                    cache_dir=cache_dir,
                    runner=runner,
                    counts=counts,
                    failures=failures,
                    seconds=seconds,
                    progress=progress,
                    callback=callback,
                )
    except KeyboardInterrupt:
        # a worker ended in an atomic write (by Ctrl+C, or by the pool stopping it) leaves its temporary file
        for folder in {cache_dir, out_dir}:
            remove_temporaries(folder, since=wall_started)
        raise

    failures = _dedupe(failures)
    failed_index = {f.item.index for f in failures if f.item is not None}
    table, columns_by_region = _assemble(
        cohort, items, hc_extractor, models, hc_values, deep_values, failed_index
    )
    status = _status_table(items, failures, hc_values, deep_values, seconds, counts)
    degenerate_groups = _degenerate(cohort, table, hc_extractor)
    degenerate = [name for group in degenerate_groups for name in group["features"]]
    failed = [(f.case_id, f.region, f.variant, f.error) for f in failures]
    info = _info(
        cohort,
        table,
        items,
        failures,
        counts,
        hc_extractor,
        deep,
        deep_options,
        models,
        origin,
        degenerate_groups,
        columns_by_region,
        runner.workers,
        time.perf_counter() - started,
    )
    if settings is not None:
        info["settings"] = dict(settings)
    info["scheduler"] = scheduler
    _write_outputs(out_dir, table, status, info)
    return ExtractionResult(
        table=table,
        status=status,
        failed=failed,
        deep_models=models,
        degenerate=degenerate,
        info=info,
        counts=counts,
        out_dir=out_dir,
    )


def _dedupe(failures: list[_Failure]) -> list[_Failure]:
    seen: set[tuple[str, str, str]] = set()
    kept = []
    for failure in failures:
        key = (failure.case_id, failure.region, failure.variant)
        if key not in seen:
            seen.add(key)
            kept.append(failure)
    return kept


def _assemble(
    cohort: Cohort,
    items: list[WorkItem],
    hc_extractor: HandcraftedExtractor | None,
    models: Mapping[str, DeepFeatureExtractor],
    hc_values: Mapping[int, dict[str, float]],
    deep_values: Mapping[int, np.ndarray],
    failed_index: set[int],
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """The feature table: one row per (case, variant present), region-prefixed columns in a fixed order."""
    columns_by_region: dict[str, list[str]] = {}
    for region in cohort.regions:
        names: list[str] = []
        if hc_extractor is not None:
            names += hc_extractor.feature_names(prefix=f"{region}_")
            extra = {
                f"{region}_{n}" for it in items if it.region == region for n in hc_values.get(it.index, {})
            }
            names += sorted(extra - set(names))
        if region in models:
            names += models[region].feature_names(prefix=region)
        columns_by_region[region] = names
    columns = [c for names in columns_by_region.values() for c in names]
    position = {c: i for i, c in enumerate(columns)}

    variants_of: dict[str, set[str]] = {}
    for it in items:
        variants_of.setdefault(it.case_id, set()).add(it.variant)
    rows: list[tuple[str, str]] = []
    for case_id in cohort.case_ids():
        present = variants_of.get(case_id, set()) | {"main"}
        rows += [(case_id, v) for v in VARIANTS if v in present]
    row_of = {key: i for i, key in enumerate(rows)}
    values = np.full((len(rows), len(columns)), np.nan)
    for it in items:
        if it.index in failed_index:
            continue
        r = row_of[(it.case_id, it.variant)]
        for name, value in hc_values.get(it.index, {}).items():
            values[r, position[f"{it.region}_{name}"]] = value
        if it.index in deep_values and it.region in models:
            names = models[it.region].feature_names(prefix=it.region)
            values[r, [position[n] for n in names]] = deep_values[it.index]
    table = pd.DataFrame(values, columns=columns)
    table.insert(0, "variant", [v for _, v in rows])
    table.insert(0, "case_id", [c for c, _ in rows])
    return table, columns_by_region


def _status_table(
    items: list[WorkItem],
    failures: list[_Failure],
    hc_values: Mapping[int, Any],
    deep_values: Mapping[int, Any],
    seconds: Mapping[tuple[str, Any], float],
    counts: Mapping[str, Any],
) -> pd.DataFrame:
    by_item = {f.item.index: f for f in failures if f.item is not None}
    records = []
    for it in items:
        failure = by_item.get(it.index)
        computed = ("handcrafted", it.index) in seconds or ("deep", it.index) in seconds
        records.append(
            {
                "case_id": it.case_id,
                "region": it.region,
                "variant": it.variant,
                "status": "failed" if failure else "ok",
                "stage": failure.stage if failure else "",
                "error": failure.error if failure else "",
                "seconds": round(
                    seconds.get(("handcrafted", it.index), 0.0) + seconds.get(("deep", it.index), 0.0), 4
                ),
                "cached": not computed,
                "image": it.image_path,
                "mask": it.mask_path,
            }
        )
    for f in failures:
        if f.item is None:
            records.append(
                {
                    "case_id": f.case_id,
                    "region": f.region,
                    "variant": f.variant,
                    "status": "failed",
                    "stage": f.stage,
                    "error": f.error,
                    "seconds": 0.0,
                    "cached": False,
                    "image": "",
                    "mask": "",
                }
            )
    columns = [
        "case_id",
        "region",
        "variant",
        "status",
        "stage",
        "error",
        "seconds",
        "cached",
        "image",
        "mask",
    ]
    return pd.DataFrame.from_records(records, columns=columns)


def _degenerate(
    cohort: Cohort, table: pd.DataFrame, hc_extractor: HandcraftedExtractor | None
) -> list[dict[str, Any]]:
    """Features flagged for selection to drop, grouped by reason."""
    groups: list[dict[str, Any]] = []
    flagged: set[str] = set()
    if hc_extractor is not None:
        reason = hc_extractor.degenerate_reason()
        names = [
            n for region in cohort.regions for n in hc_extractor.degenerate_features(prefix=f"{region}_")
        ]
        if reason and names:
            groups.append({"reason": reason, "features": names})
            flagged.update(names)
    if cohort.train_split in cohort.splits():
        train_ids = set(cohort.case_ids(cohort.train_split))
        rows = table[(table["variant"] == "main") & table["case_id"].isin(train_ids)]
        features = rows.drop(columns=["case_id", "variant"])
        if len(features) >= 2:
            known = features.notna().sum() >= 2
            constant = known & (features.max() == features.min())
            names = [c for c in features.columns[constant.to_numpy()] if c not in flagged]
            if names:
                groups.append(
                    {
                        "reason": "constant on the training split (main masks): carries no information",
                        "features": names,
                    }
                )
    return groups


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    versions = {"alnm-predictor": __version__, "python": platform.python_version()}
    for name in (
        "numpy",
        "pandas",
        "pyradiomics-bhklab",
        "SimpleITK",
        "torch",
        "torchvision",
        "pydicom",
        "pillow",
    ):
        with contextlib.suppress(md.PackageNotFoundError):
            versions[name] = md.version(name)
    return versions


def _info(
    cohort: Cohort,
    table: pd.DataFrame,
    items: list[WorkItem],
    failures: list[_Failure],
    counts: dict[str, dict[str, int]],
    hc_extractor: HandcraftedExtractor | None,
    deep: str | None,
    deep_options: Mapping[str, Any] | None,
    models: Mapping[str, DeepFeatureExtractor],
    origin: Mapping[str, str],
    degenerate: list[dict[str, Any]],
    columns_by_region: Mapping[str, list[str]],
    workers: int,
    seconds: float,
) -> dict[str, Any]:
    deep_info: dict[str, Any] | None = None
    if models:
        deep_info = {
            "weights": deep,
            "options": {
                k: (os.fspath(v) if isinstance(v, os.PathLike) else v)
                for k, v in (deep_options or {}).items()
            },
            "regions": {
                region: {
                    "head": origin.get(region),
                    "settings": model.settings(),
                    "backbone": model.backbone_info,
                    "training": model.training_summary_,
                }
                for region, model in models.items()
            },
        }
    return {
        "format": _TABLE_FORMAT,
        "version": CACHE_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "manifest": str(cohort.path),
        "manifest_sha256": file_sha256(cohort.path),
        "regions": list(cohort.regions),
        "variants": {region: cohort.variants(region) for region in cohort.regions},
        "handcrafted": None
        if hc_extractor is None
        else {
            "preset": hc_extractor.preset,
            "params": hc_extractor.params,
            "settings_hash": hc_extractor.settings_hash,
            "features_per_region": len(hc_extractor.feature_names()),
            "full_table": hc_extractor.full_table,
            "not_computed": hc_extractor.not_computed_features(),
        },
        "deep": deep_info,
        "versions": _versions(),
        "counts": {
            "cases": len(cohort.case_ids()),
            "rows": len(table),
            "features": table.shape[1] - 2,
            "features_per_region": {region: len(names) for region, names in columns_by_region.items()},
            "items": len(items),
            "failed": len(failures),
            **{stage: dict(c) for stage, c in counts.items()},
        },
        "degenerate": degenerate,
        "failures": [
            {
                "case_id": f.case_id,
                "region": f.region,
                "variant": f.variant,
                "stage": f.stage,
                "error": f.error,
            }
            for f in failures
        ],
        "workers": workers,
        "seconds": round(seconds, 3),
    }


def _write_outputs(out_dir: Path, table: pd.DataFrame, status: pd.DataFrame, info: dict[str, Any]) -> None:
    """Each file atomic; ``extraction.json`` last, so its presence means the set is complete."""
    out_dir.mkdir(parents=True, exist_ok=True)
    marker = out_dir / "extraction.json"
    with contextlib.suppress(FileNotFoundError):
        marker.unlink()  # a crash below leaves no marker next to a mix of old and new tables
    write_table(out_dir / "features.parquet", table)
    write_table(out_dir / "features.csv", table)
    write_table(out_dir / "status.csv", status)
    write_table(out_dir / "failures.csv", status[status["status"] == "failed"])
    write_json(marker, info)


# ---------------------------------------------------------------------------------------------------
# CLI


def configure_extract(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``alnm extract``."""
    parser.add_argument("manifest", help="manifest CSV (paths relative to it)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (features, status, cache)")
    parser.add_argument(
        "--study",
        help="study.yaml (default: study.yaml beside the manifest, if any); its settings: section applies as in "
        "alnm train, and the options below override it",
    )
    parser.add_argument(
        "--preset", dest="handcrafted", default=None, metavar="us2d|paper|FILE.yaml", help=PRESET_HELP
    )
    parser.add_argument(
        "--deep",
        default=None,
        metavar="imagenet|none|auto|PATH|off",
        help="VGG19 backbone weights: imagenet (torchvision's file; downloaded only with --download), none "
        "(random: tests only), auto (imagenet if on disk, else random), a state-dict file, or off for no deep "
        "features (default: imagenet)",
    )
    parser.add_argument(
        "--download",
        action="store_true",
        default=None,
        help="download torchvision's ImageNet VGG19 weights (548 MB) into torch hub's cache if they are not on "
        "this machine (once; checksum verified); also ALNM_ALLOW_DOWNLOAD=1",
    )
    parser.add_argument(
        "--finetune",
        dest="deep_finetune",
        choices=("frozen", "full"),
        default=None,
        help="deep head training mode (default: frozen)",
    )
    parser.add_argument(
        "--full-table",
        action="store_true",
        default=None,
        help="also compute the features that are rounding noise on a 2D image (the paper preset's 372 z-high-pass "
        "wavelet features), for the study's whole 851-column table (default: left out, listed in extraction.json)",
    )
    parser.add_argument(
        "--normalize",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="standardise each image's intensities first (pyradiomics normalize; deep crops zscore) (default: on)",
    )
    from ALNMPredictorLib.preflight import positive_int

    parser.add_argument(
        "--workers", type=positive_int, default=None, help="worker processes (default: all cores)"
    )
    add_scheduler_option(parser)
    parser.add_argument("--seed", type=int, default=None, help="seed of the deep head training (default: 0)")
    parser.add_argument(
        "--epochs", dest="deep_epochs", type=int, default=None, help="deep head training epochs (default: 50)"
    )
    parser.add_argument(
        "--input-size",
        dest="deep_input_size",
        type=int,
        default=None,
        help="deep input crop size (default: 224)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


#: ``--preset`` of ``alnm extract``, ``train`` and ``run``
PRESET_HELP = (
    "handcrafted pyradiomics parameters: a preset or a parameter file. Default: us2d (true 2D: shape2D, in-plane "
    "texture and wavelets, bin width 5); on real ultrasound tested on other scanners it predicted better than "
    "paper (BUS-BRA test AUC 0.93 vs 0.86: paper's 3D shape of a one-slice image loses the margin's shape; "
    "BENCHMARKS.md). paper: the reference study's 851 features (the image as a one-slice volume), for "
    "replication; its 372 z-high-pass wavelet features are rounding noise and are computed only with --full-table"
)


def add_scheduler_option(parser: argparse.ArgumentParser) -> None:
    """``--scheduler`` / ``--dask``: extract on a Dask distributed cluster (``alnm extract``, ``train``, ``run``)."""
    parser.add_argument(
        "--scheduler",
        "--dask",
        dest="scheduler",
        default=None,
        metavar="tcp://HOST:PORT|local",
        help="send the per-ROI extraction tasks to a Dask distributed cluster: the address of its scheduler, or "
        "local for a local cluster of --workers processes (default: a process pool on this machine); needs "
        "pip install 'alnm-predictor[dask]'",
    )


def run_extract(args: argparse.Namespace) -> int:
    """Run the extraction with the settings ``alnm train`` would use (defaults, study.yaml, options), print
    a summary; 1 if any ROI failed, 0 otherwise."""
    started = time.perf_counter()
    logging.getLogger("pykwalify").setLevel(logging.WARNING)  # pyradiomics' schema check logs at INFO
    from ALNMPredictorLib.pipeline import handcrafted_params, resolve_deep, settings_from_args
    from ALNMPredictorLib.preflight import output_folder

    output_folder(args.out)
    cohort = load_manifest(args.manifest, study=args.study)
    settings = settings_from_args(args, cohort.settings)
    deep = resolve_deep(settings.deep, args.download, not args.no_progress)  # weights found or fetched first
    result = extract_cohort(
        cohort,
        args.out,
        handcrafted=handcrafted_params(settings.handcrafted, settings.normalize),
        deep=deep,
        deep_options=settings.deep_options(),
        workers=settings.workers,
        progress=not args.no_progress,
        normalize=settings.normalize,
        settings=settings.record(),
        full_table=settings.full_table,
        scheduler=settings.scheduler,
    )
    for case_id, region, variant, error in result.failed[:20]:
        print(f"failed: {case_id} {region} ({variant}): {error}", file=sys.stderr)
    if len(result.failed) > 20:
        print(f"... and {len(result.failed) - 20} more failures (see failures.csv)", file=sys.stderr)
    counts = result.info["counts"]
    print(_summary(result, counts, time.perf_counter() - started))
    return 1 if result.failed else 0


def _summary(result: ExtractionResult, counts: Mapping[str, Any], seconds: float) -> str:
    stages = ", ".join(
        f"{stage}: {c.get('computed', 0)} computed / {c.get('cached', 0)} cached"
        for stage, c in result.counts.items()
    )
    return (
        f"{counts['cases']} cases, {counts['rows']} rows, {counts['features']} features "
        f"({len(result.degenerate)} flagged degenerate{_not_computed_text(result)}), {len(result.failed)} failure(s); "
        f"{stages}; "
        f"{seconds:.1f} s -> {result.out_dir}"
    )


def _not_computed_text(result: ExtractionResult) -> str:
    handcrafted = result.info.get("handcrafted") or {}
    count = len(handcrafted.get("not_computed") or []) * len(result.info.get("regions") or [])
    return f"; {count} rounding-noise features not computed" if count else ""
