"""shape3d: pyradiomics' 3D shape coefficients of a one-slice volume, without the quadratic diameter search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from radiomics import cShape
from radiomics.shape import RadiomicsShape

from ALNMPredictorLib import shape3d

REPO = Path(__file__).resolve().parents[1]
BUSBRA = REPO.parent / "shared" / "data" / "busbra"

#: Surface area and volume: pyradiomics adds one term per mesh triangle in sequence; shape3d adds 15
#: products (window count x fitted per-configuration value). Both are the same sum rounded differently;
#: the sequential sum's error grows with the number of triangles (at most n * 1.1e-16 relative), which
#: for these masks (at most ~1e5 triangles) stays far below 1e-10; observed: 2e-12 at worst on BUS-BRA.
AREA_VOLUME_RTOL = 1e-10
SPACINGS = [(1.0, 1.0, 1.0), (1.0, 0.1, 0.1), (1.0, 0.0737, 0.0913), (2.5, 0.3, 0.05)]


def _padded(plane: np.ndarray) -> np.ndarray:
    """A 2D mask as pyradiomics' shape class sees it: a one-slice volume padded by one empty voxel."""
    return np.pad(np.asarray(plane, dtype=bool)[np.newaxis], 1)


def _masks() -> list[np.ndarray]:
    """Blobs, holes, several components, lines, single pixels, a checkerboard (every window configuration)."""
    rng = np.random.default_rng(7)
    rows, cols = np.mgrid[:40, :52]
    ellipse = ((rows - 20) / 14.0) ** 2 + ((cols - 25) / 21.0) ** 2 <= 1
    ring = ellipse & ~(((rows - 20) / 6.0) ** 2 + ((cols - 25) / 8.0) ** 2 <= 1)
    checker = (rows + cols) % 2 == 0
    masks = [
        ellipse,
        ring,
        checker[:9, :11],
        np.eye(12, dtype=bool),
        np.ones((1, 1), bool),
        np.ones((3, 17), bool),
    ]
    two = np.zeros((20, 30), bool)
    two[2:6, 3:9] = two[12:19, 20:28] = True
    masks.append(two)
    for _ in range(40):
        shape = tuple(rng.integers(2, 35, size=2))
        masks.append(rng.random(shape) < rng.uniform(0.1, 0.9))
    return [m for m in masks if m.any()]


@pytest.mark.parametrize("spacing", SPACINGS)
def test_one_slice_coefficients_equal_pyradiomics(spacing: tuple[float, float, float]) -> None:
    for plane in _masks():
        mask = _padded(plane)
        area, volume, diameters = cShape.calculate_coefficients(mask, np.array(spacing))
        fast_area, fast_volume, fast_diameters = shape3d.calculate_coefficients(mask, spacing)
        # the same vertices, coordinates, arithmetic and maximum: the same doubles in this process
        assert fast_diameters == tuple(diameters)
        assert fast_area == pytest.approx(area, rel=AREA_VOLUME_RTOL, abs=0)
        assert fast_volume == pytest.approx(volume, rel=AREA_VOLUME_RTOL, abs=0)


@pytest.mark.skipif(not BUSBRA.is_dir(), reason=f"BUS-BRA data set not found at {BUSBRA}")
def test_real_busbra_masks_equal_pyradiomics() -> None:
    from PIL import Image

    names = sorted((BUSBRA / "Masks").glob("mask_*.png"))[::150]
    assert len(names) >= 10
    for path in names:
        plane = np.asarray(Image.open(path)) > 0
        rows, cols = np.flatnonzero(plane.any(axis=1)), np.flatnonzero(plane.any(axis=0))
        mask = _padded(plane[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])
        spacing = (1.0, 0.0737, 0.0913)
        area, volume, diameters = cShape.calculate_coefficients(mask, np.array(spacing))
        fast = shape3d.calculate_coefficients(mask, spacing)
        assert fast[2] == tuple(diameters), path.name
        assert fast[:2] == pytest.approx((area, volume), rel=AREA_VOLUME_RTOL, abs=0), path.name


def test_diameters_of_any_3d_mask_equal_pyradiomics() -> None:
    """The diameter search is exact for several slices too (only area and volume are one-slice)."""
    rng = np.random.default_rng(3)
    for _ in range(15):
        volume = np.pad(rng.random(tuple(rng.integers(2, 9, size=3))) < 0.5, 1)
        if not volume.any():
            continue
        spacing = rng.uniform(0.05, 3.0, size=3)
        assert shape3d.mesh_diameters(volume, spacing) == tuple(
            cShape.calculate_coefficients(volume, spacing)[2]
        )


def test_other_masks_go_to_pyradiomics_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = cShape.calculate_coefficients

    def spy(mask: np.ndarray, spacing: np.ndarray) -> tuple:
        calls.append(mask.shape)
        return real(mask, spacing)

    monkeypatch.setattr(shape3d, "cShape", type("C", (), {"calculate_coefficients": staticmethod(spy)}))
    two_slices = np.pad(np.ones((2, 5, 6), bool), 1)
    assert shape3d.calculate_coefficients(two_slices, (1.0, 1.0, 1.0)) == real(two_slices, np.ones(3))
    assert calls == [two_slices.shape]
    # a spacing whose fit fails its check (here: a tolerance no fit meets) also goes to the C code
    monkeypatch.setattr(shape3d, "FIT_TOLERANCE", -1.0)
    monkeypatch.setattr(shape3d, "_FITS", {})
    plane = _padded(np.ones((4, 5), bool))
    assert shape3d.calculate_coefficients(plane, (1.0, 0.5, 0.5)) == real(plane, np.array([1.0, 0.5, 0.5]))
    assert shape3d._FITS == {(1.0, 0.5, 0.5): None}
    assert calls[-1] == plane.shape


def test_fit_checks_the_span_of_its_calibration_masks() -> None:
    counts = np.array([shape3d.window_counts(p) for p in shape3d._calibration_planes()])
    assert np.linalg.matrix_rank(counts) == shape3d.SPAN_RANK
    # any other mask's window counts lie in that span (so the fitted values apply to it)
    others = np.array([shape3d.window_counts(np.pad(m, 1)) for m in _masks()])
    assert np.linalg.matrix_rank(np.vstack([counts, others])) == shape3d.SPAN_RANK


def test_one_slice_shape_class_equals_pyradiomics() -> None:
    rows, cols = np.mgrid[:33, :47]
    plane = (((rows - 16) / 12.0) ** 2 + ((cols - 22) / 19.0) ** 2 <= 1).astype(np.uint8)
    image = sitk.GetImageFromArray(np.random.default_rng(0).uniform(0, 255, plane.shape)[np.newaxis])
    mask = sitk.GetImageFromArray(plane[np.newaxis])
    for item in (image, mask):
        item.SetSpacing((0.09, 0.07, 1.0))
    expected = RadiomicsShape(image, mask).execute()
    got = shape3d.OneSliceShape(image, mask).execute()
    assert list(got) == list(expected) and len(got) == 14
    for name, value in expected.items():
        assert float(got[name]) == pytest.approx(float(value), rel=AREA_VOLUME_RTOL, abs=0), name
    for name in (
        "Maximum3DDiameter",
        "Maximum2DDiameterSlice",
        "Maximum2DDiameterColumn",
        "Maximum2DDiameterRow",
        "MajorAxisLength",
        "MinorAxisLength",
        "LeastAxisLength",
        "Elongation",
        "Flatness",
        "VoxelVolume",
    ):
        assert float(got[name]) == float(expected[name]), name  # not from the mesh sums: the same doubles
