"""Extraction on Dask distributed (``--scheduler`` / ``--dask``): a LocalCluster of 2 worker processes on
127.0.0.1 gives the process pool's table, with the same cache, failure records and resume, and survives a
worker killed mid-run."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ALNMPredictorLib import cli
from ALNMPredictorLib.cohort import load_manifest
from ALNMPredictorLib.errors import ALNMError
from ALNMPredictorLib.extraction import extract_cohort

distributed = pytest.importorskip("distributed")

pytestmark = [
    pytest.mark.filterwarnings("ignore:the load_module:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:distributed"),
]

# A small, fast pyradiomics configuration (tiny images: the test is about the scheduling, not pyradiomics).
PARAMS = {
    "imageType": {"Original": {}},
    "featureClass": {"firstorder": None, "glcm": None, "shape2D": None},
    "setting": {"binWidth": 10, "force2D": True, "force2Ddimension": 0},
}
N_CASES = 24
# Pool and Dask runs compute every value in other processes by the same single-threaded code on this
# machine (pyradiomics and SimpleITK on one thread, float64): they are expected to be bit-identical;
# 1e-12 relative leaves room only for last-bit differences, while a wrong ROI or setting moves values by
# far more.
RTOL = 1e-12


def _write_cohort(folder: Path, bad: bool = False) -> Path:
    """``N_CASES`` tiny speckle images (40 x 48) with elliptical masks of varied size; ``bad``: the 4th
    case's mask is empty and the 7th case's image file is missing."""
    rng = np.random.default_rng(11)
    folder.mkdir(parents=True, exist_ok=True)
    rows, cols = np.mgrid[:40, :48]
    records = []
    for i in range(N_CASES):
        image = rng.integers(0, 256, size=rows.shape).astype(np.uint8)
        a, b = 6 + i % 9, 8 + (i * 5) % 11
        mask = (((rows - 20) / a) ** 2 + ((cols - 24) / b) ** 2 <= 1).astype(np.uint8) * 255
        if bad and i == 3:
            mask[:] = 0
        Image.fromarray(image).save(folder / f"img{i:02d}.png")
        Image.fromarray(mask).save(folder / f"mask{i:02d}.png")
        records.append(
            {
                "case_id": f"c{i:02d}",
                "label": i % 2,
                "split": "train" if i < 16 else "test",
                "tumor_image": f"img{i:02d}.png",
                "tumor_mask": f"mask{i:02d}.png",
                "tumor_spacing": "0.1",
            }
        )
    if bad:
        (folder / "img06.png").unlink()
    path = folder / "manifest.csv"
    pd.DataFrame(records).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0"
    ) as local:
        yield local


@pytest.fixture(scope="module")
def pool_run(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("dask")
    manifest = _write_cohort(folder / "cohort")
    result = extract_cohort(
        load_manifest(manifest), folder / "pool", handcrafted=PARAMS, deep=None, workers=2, progress=False
    )
    return manifest, result


def _feature_values(table: pd.DataFrame) -> np.ndarray:
    return table.drop(columns=["case_id", "variant"]).to_numpy(float)


def _cache_entries(out: Path) -> list[Path]:
    return sorted((out / "cache" / "handcrafted").glob("*.json"))


def test_local_cluster_gives_the_process_pool_table_and_resumes(pool_run, cluster, tmp_path) -> None:
    manifest, pool = pool_run
    out = tmp_path / "dask"
    result = extract_cohort(
        load_manifest(manifest),
        out,
        handcrafted=PARAMS,
        deep=None,
        scheduler=cluster.scheduler_address,
        progress=False,
    )
    assert result.failed == [] and result.counts["handcrafted"] == {
        "computed": N_CASES,
        "cached": 0,
        "failed": 0,
    }
    assert list(result.table.columns) == list(pool.table.columns)
    assert result.table[["case_id", "variant"]].equals(pool.table[["case_id", "variant"]])
    np.testing.assert_allclose(_feature_values(result.table), _feature_values(pool.table), rtol=RTOL, atol=0)
    # the client wrote one cache entry per ROI, in the pool's format and under the pool's keys
    entries = _cache_entries(out)
    assert [p.name for p in entries] == [p.name for p in _cache_entries(pool.out_dir)]
    record = json.loads(entries[0].read_text())
    assert record["format"] == "alnm-handcrafted-cache" and len(record["names"]) == len(record["values"])
    info = json.loads((out / "extraction.json").read_text())
    assert info["scheduler"] == cluster.scheduler_address and info["workers"] == 2
    # resume: a rerun loads every ROI from the cache and computes nothing
    again = extract_cohort(
        load_manifest(manifest),
        out,
        handcrafted=PARAMS,
        deep=None,
        scheduler=cluster.scheduler_address,
        progress=False,
    )
    assert again.counts["handcrafted"] == {"computed": 0, "cached": N_CASES, "failed": 0}
    np.testing.assert_array_equal(_feature_values(again.table), _feature_values(result.table))


def test_a_worker_killed_mid_run_is_survived(pool_run, cluster, tmp_path) -> None:
    """Its tasks run again elsewhere (Dask reschedules them; the nanny restarts the worker): nothing is lost,
    and nothing is counted twice."""
    manifest, pool = pool_run
    progress: list[int] = []
    killed: dict[str, list] = {}
    with distributed.Client(cluster.scheduler_address) as client:

        def kill_a_busy_worker(stage: str, done: int, total: int) -> None:
            progress.append(done)
            if done == 1 and not killed:
                processing = client.processing()
                address = max(processing, key=lambda w: len(processing[w]))
                pid = client.run(os.getpid, workers=[address])[address]
                killed[address] = list(processing[address])
                os.kill(pid, signal.SIGKILL)

        result = extract_cohort(
            load_manifest(manifest),
            tmp_path / "killed",
            handcrafted=PARAMS,
            deep=None,
            scheduler=cluster.scheduler_address,
            progress=False,
            callback=kill_a_busy_worker,
        )
        client.wait_for_workers(2, timeout=60)  # the nanny restarted it, for the other tests
    assert killed and next(iter(killed.values())), "no task was running on the killed worker"
    assert progress == list(range(1, N_CASES + 1))  # each ROI reported once
    assert result.failed == [] and result.counts["handcrafted"] == {
        "computed": N_CASES,
        "cached": 0,
        "failed": 0,
    }
    assert (result.status["status"] == "ok").all() and len(result.status) == N_CASES
    assert len(_cache_entries(tmp_path / "killed")) == N_CASES
    np.testing.assert_allclose(_feature_values(result.table), _feature_values(pool.table), rtol=RTOL, atol=0)


def test_failures_are_recorded_per_case_and_the_cli_runs_on_a_local_cluster(tmp_path, capsys) -> None:
    manifest = _write_cohort(tmp_path / "cohort", bad=True)
    code = cli.main(
        [
            "extract",
            str(manifest),
            "--out",
            str(tmp_path / "out"),
            "--preset",
            str(_params_file(tmp_path)),
            "--deep",
            "off",
            "--dask",
            "local",
            "--workers",
            "2",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "c03" in err and "tumor_mask" in err and "empty" in err
    assert "c06" in err and "tumor_image" in err and "img06.png" in err
    status = pd.read_csv(tmp_path / "out" / "status.csv")
    assert (status["status"] == "ok").sum() == N_CASES - 2
    failures = pd.read_csv(tmp_path / "out" / "failures.csv")
    assert sorted(failures["case_id"]) == ["c03", "c06"]
    assert json.loads((tmp_path / "out" / "extraction.json").read_text())["scheduler"] == "local"


def _params_file(folder: Path) -> Path:
    import yaml

    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(PARAMS))
    return path


def test_an_unreachable_scheduler_is_a_clear_error(tmp_path, monkeypatch) -> None:
    from ALNMPredictorLib import extraction

    monkeypatch.setattr(extraction, "DASK_CONNECT_SECONDS", 2)  # nothing listens there: do not wait 30 s
    manifest = _write_cohort(tmp_path / "cohort")
    with pytest.raises(ALNMError, match=r"cannot connect to the Dask scheduler at tcp://127\.0\.0\.1:9"):
        extract_cohort(
            load_manifest(manifest),
            tmp_path / "out",
            handcrafted=PARAMS,
            deep=None,
            scheduler="tcp://127.0.0.1:9",
            progress=False,
        )
