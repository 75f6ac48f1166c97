"""Stand-ins of the Slicer modules the ALNMPredictor module talks to: SampleData and PyTorchUtils (SlicerPyTorch).

Their public APIs mirror Slicer 5.12's ``Modules/Scripted/SampleData/SampleData.py`` and SlicerPyTorch's
``PyTorchUtils/PyTorchUtils.py`` (signatures copied from those files; bodies reduced to what a test can
check). ``SampleDataLogic.downloadFromSource`` loads ``file://`` sources with slicer-core's real storage
nodes (checksums verified), as Slicer's loaders would read those files.
"""

from __future__ import annotations

import hashlib
import types
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any


class SampleDataSource:
    def __init__(
        self,
        sampleName=None,
        sampleDescription=None,
        uris=None,
        fileNames=None,
        nodeNames=None,
        checksums=None,
        loadFiles=None,
        customDownloader=None,
        thumbnailFileName=None,
        loadFileTypes=None,
        loadFileProperties=None,
        loadFileType=None,
    ):
        if isinstance(uris, str):
            uris, fileNames, nodeNames, checksums = [uris], [fileNames], [nodeNames], [checksums]
            loadFileTypes = [loadFileType or (loadFileTypes if isinstance(loadFileTypes, str) else None)]
        if uris is None:
            raise TypeError("object of type 'NoneType' has no len()")  # as SampleData.py: len(uris)
        n = len(uris)
        self.sampleName = sampleName
        self.sampleDescription = sampleDescription or sampleName
        self.uris = list(uris)
        self.fileNames = list(fileNames or [None] * n)
        self.nodeNames = list(nodeNames or [None] * n)
        self.checksums = list(checksums or [None] * n)
        self.loadFileTypes = list(loadFileTypes or [None] * n)
        self.loadFiles = loadFiles
        self.customDownloader = customDownloader
        self.thumbnailFileName = thumbnailFileName
        self.loadFileProperties = loadFileProperties or {}
        lengths = {
            len(self.uris),
            len(self.fileNames),
            len(self.nodeNames),
            len(self.checksums),
            len(self.loadFileTypes),
        }
        if len(lengths) != 1:
            raise ValueError(
                f"SampleDataSource {sampleName}: uris, fileNames, nodeNames, checksums and "
                "loadFileTypes must have the same length"
            )


def make_sample_data_module(*, version: tuple[int, int] = (5, 12)) -> types.ModuleType:
    """A ``SampleData`` module; ``registerCustomSampleDataCategory`` exists from Slicer 5.12 only."""
    import slicer

    module = types.ModuleType("SampleData")

    class SampleDataLogic:
        @staticmethod
        def registerCustomSampleDataSource(
            category="Custom",
            sampleName=None,
            uris=None,
            fileNames=None,
            nodeNames=None,
            customDownloader=None,
            thumbnailFileName=None,
            loadFileTypes=None,
            loadFiles=None,
            loadFileProperties={},  # noqa: B006  (SampleData.py's own signature)
            checksums=None,
            loadFileType=None,
        ):
            sources = getattr(slicer.modules, "sampleDataSources", None)
            if sources is None:
                sources = slicer.modules.sampleDataSources = {}
            source = SampleDataSource(
                sampleName=sampleName,
                uris=uris,
                fileNames=fileNames,
                nodeNames=nodeNames,
                checksums=checksums,
                loadFiles=loadFiles,
                customDownloader=customDownloader,
                thumbnailFileName=thumbnailFileName,
                loadFileTypes=loadFileTypes,
                loadFileProperties=loadFileProperties,
                loadFileType=loadFileType,
            )
            sources.setdefault(category, []).append(source)
            return source

        @staticmethod
        def sampleDataSourcesByCategory(category=None):
            sources = getattr(slicer.modules, "sampleDataSources", {})
            return sources if category is None else sources.get(category, [])

        def downloadFromSource(self, source, maximumAttemptsCount=3, forceDownload=False):
            loaded = []
            for uri, name, checksum, file_type in zip(
                source.uris, source.nodeNames, source.checksums, source.loadFileTypes, strict=True
            ):
                if not uri.startswith("file:"):
                    raise ValueError(f"the harness loads file:// sample data only, got {uri}")
                path = Path(urllib.request.url2pathname(urllib.parse.urlparse(uri).path))
                if checksum:
                    algo, digest = checksum.split(":", 1)
                    if hashlib.new(algo.lower(), path.read_bytes()).hexdigest() != digest:
                        raise ValueError(f"checksum mismatch for {path}")
                loaded.append(_load(path, name, file_type))
            return loaded

    if version < (5, 12):
        pass
    else:

        def registerCustomSampleDataCategory(category, title):
            categories = getattr(slicer.modules, "sampleDataSourceCategories", None)
            if categories is None:
                categories = slicer.modules.sampleDataSourceCategories = {}
            categories[category] = {"title": title}

        SampleDataLogic.registerCustomSampleDataCategory = staticmethod(registerCustomSampleDataCategory)
    module.SampleDataLogic = SampleDataLogic
    module.SampleDataSource = SampleDataSource
    return module


def _load(path: Path, name: str, file_type: str) -> Any:
    """Read a file as Slicer's readers do: volumes through vtkSlicerVolumesLogic::AddArchetypeVolume (grey or
    colour, as the file holds), segmentations through vtkMRMLSegmentationStorageNode (slicer-core's classes)."""
    import slicer

    scene = slicer.mrmlScene
    if file_type == "VolumeFile":
        if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"):
            return _itk_2d_volume(path, name)
        node = slicer.app.volumesLogic().AddArchetypeVolume(str(path), name)
        if node is None:
            raise ValueError(f"cannot read {path}")
        return node
    if file_type != "SegmentationFile":
        raise ValueError(f"file type {file_type} not handled by the harness")
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(path))
    if not storage.ReadData(node):
        raise ValueError(f"cannot read {path}")
    node.CreateDefaultDisplayNodes()
    return node


def _itk_2d_volume(path: Path, name: str) -> Any:
    """A PNG/JPEG/BMP as Slicer's volume reader loads it (ITK): grey -> scalar, colour -> vector volume, ITK's
    LPS geometry turned to RAS. slicer-core lacks ITK's 2D image readers, so SimpleITK (the same ITK readers)
    reads the pixels and Slicer's own ``slicer.util.addVolumeFromArray`` makes the node."""
    import numpy as np
    import SimpleITK as sitk
    import slicer

    image = sitk.ReadImage(str(path))
    pixels = sitk.GetArrayFromImage(image)  # (rows, cols) or (rows, cols, components)
    spacing = list(image.GetSpacing()) + [1.0]
    origin = list(image.GetOrigin()) + [0.0]
    direction = np.eye(3)
    direction[:2, :2] = np.asarray(image.GetDirection()).reshape(2, 2)
    ijk_to_lps = np.eye(4)
    ijk_to_lps[:3, :3] = direction @ np.diag(spacing[:3])
    ijk_to_lps[:3, 3] = origin[:3]
    ijk_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ ijk_to_lps
    colour = pixels.ndim == 3
    node = slicer.util.addVolumeFromArray(
        pixels[None], ijk_to_ras, name, "vtkMRMLVectorVolumeNode" if colour else "vtkMRMLScalarVolumeNode"
    )
    node.CreateDefaultDisplayNodes()
    return node


def make_pytorch_utils_module(on_install: Any, *, decline: bool = False) -> types.ModuleType:
    """A ``PyTorchUtils`` module (SlicerPyTorch); ``on_install()`` makes torch importable."""
    module = types.ModuleType("PyTorchUtils")
    calls: list[dict[str, Any]] = []

    class PyTorchUtilsLogic:
        @staticmethod
        def torchInstalled():
            import importlib.util

            return importlib.util.find_spec("torch") is not None

        def installTorch(
            self,
            askConfirmation=False,
            forceComputationBackend=None,
            torchVersionRequirement=None,
            torchvisionVersionRequirement=None,
        ):
            calls.append(
                {
                    "askConfirmation": askConfirmation,
                    "torchVersionRequirement": torchVersionRequirement,
                    "torchvisionVersionRequirement": torchvisionVersionRequirement,
                }
            )
            if decline:
                return None
            on_install()
            import torch

            return torch

    module.PyTorchUtilsLogic = PyTorchUtilsLogic
    module.calls = calls
    return module
