"""Write the SYNTHETIC demo case registered with Slicer's Sample Data module (``Resources/SampleData``).

    python Testing/slicer_harness/sample_data_files.py          # rewrites ALNMPredictor/Resources/SampleData

The case is the first test-set patient of the demo-case cohort (``demomodel.demo_case(folder, 0)``):
each region's image as NRRD and its ROI as a ``.seg.nrrd`` segmentation, written by slicer-core's own
storage nodes (the files Slicer writes), plus a 260 x 280 thumbnail. ``test_slicer_module`` checks that
the committed files hold exactly what this writes.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TARGET = REPO / "ALNMPredictor" / "Resources" / "SampleData"


def write(folder: Path, logic) -> dict:
    """Write the files into ``folder`` with the module's logic; returns the demo case's arrays by region."""
    import slicer

    from ALNMPredictorLib.demomodel import demo_case

    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as cases:
        loaded = logic.loadDemoCase(Path(cases), 0)
        arrays = {region: demo_case(Path(cases), 0).regions[region] for region in loaded["volumes"]}
    for region, stem in (("tumor", "ALNMDemoTumor"), ("ln", "ALNMDemoLN")):
        volume = loaded["volumes"][region]
        storage = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
        storage.SetFileName(str(folder / f"{stem}.nrrd"))
        storage.SetUseCompression(1)
        assert storage.WriteData(volume), stem
        segmentation = loaded["segmentations"][region]
        storage = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
        storage.SetFileName(str(folder / f"{stem}.seg.nrrd"))
        storage.SetUseCompression(1)
        assert storage.WriteData(segmentation), stem
    _thumbnail(folder / "ALNMDemoCase.png", arrays)
    return arrays


def _thumbnail(path: Path, arrays: dict) -> None:
    """Both images side by side with the ROI outlined, labelled SYNTHETIC (Sample Data's 260 x 280 tile)."""
    import numpy as np
    from PIL import Image, ImageDraw

    tiles = []
    for region in ("tumor", "ln"):
        image = np.asarray(arrays[region].image, dtype=np.uint8)
        mask = np.asarray(arrays[region].mask) > 0
        edge = mask & ~(
            np.roll(mask, 1, 0) & np.roll(mask, -1, 0) & np.roll(mask, 1, 1) & np.roll(mask, -1, 1)
        )
        rgb = np.stack([image] * 3, axis=-1)
        rgb[edge] = (255, 200, 0)
        tiles.append(Image.fromarray(rgb).resize((130, 240), Image.Resampling.LANCZOS))
    canvas = Image.new("RGB", (260, 280), (0, 0, 0))
    canvas.paste(tiles[0], (0, 0))
    canvas.paste(tiles[1], (130, 0))
    ImageDraw.Draw(canvas).text((8, 252), "ALNM demo case - SYNTHETIC", fill=(255, 255, 255))
    canvas.save(path, optimize=True)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    from environment import ModuleHarness, install

    env = install()
    harness = ModuleHarness(env, REPO / "ALNMPredictor" / "ALNMPredictor.py")
    write(TARGET, harness.logic_class())
    print(f"wrote {sorted(p.name for p in TARGET.iterdir())}")
