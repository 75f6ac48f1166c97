"""ALNM Predictor core library: cohort I/O, feature extraction, statistics, models and reports.

Pure Python: never imports slicer, qt, ctk or vtk, so it runs inside 3D Slicer and outside it.
"""

__version__ = "0.1.0"

SYNTHETIC_LABEL = "SYNTHETIC DATA - not patient data, not for clinical use"
