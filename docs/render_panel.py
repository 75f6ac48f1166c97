"""Render the module panel's layout (ALNMPredictor.ui) offscreen with PySide6, for the README.

No 3D Slicer is needed: Slicer/CTK widgets are drawn by plain Qt stand-ins (collapsible sections as
group boxes, node selectors as combo boxes, the Segment Editor as a placeholder), and the panel is
filled with a real prediction of the SYNTHETIC demo case by the SYNTHETIC demo model. The image is a
rendering of the layout, not a screenshot of Slicer.

    QT_QPA_PLATFORM=offscreen python docs/render_panel.py [--out docs/screenshots/panel.png]

Needs ``PySide6`` (``pip install PySide6-Essentials``) besides the package itself.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
UI_FILE = REPO / "ALNMPredictor" / "Resources" / "UI" / "ALNMPredictor.ui"

#: Slicer/CTK class -> (Qt stand-in, properties kept)
STAND_INS = {
    "qMRMLWidget": "QWidget",
    "ctkCollapsibleButton": "QGroupBox",
    "ctkPathLineEdit": "QLineEdit",
    "qMRMLNodeComboBox": "QComboBox",
    "qMRMLSegmentSelectorWidget": "QComboBox",
    "qMRMLSegmentEditorWidget": "QLabel",
    "ctkSliderWidget": "QDoubleSpinBox",
}
PLACEHOLDERS = {
    "modelPathLineEdit": "(empty: synthetic demo model)",
    "tumorVolumeSelector": "P0011 tumor",
    "tumorSegmentSelector": "P0011 tumor ROI - tumor",
    "lnVolumeSelector": "P0011 ln",
    "lnSegmentSelector": "P0011 ln ROI - ln",
    "resultTableSelector": "ALNM prediction P0011",
    "readsPathLineEdit": "alnm-reads.csv",
    "demoFolderPathLineEdit": "/tmp/ALNMPredictor-demo",
    "manifestPathLineEdit": "cohort/manifest.csv",
    "batchModelPathLineEdit": "run/model",
    "batchOutputFolderPathLineEdit": "run",
}


def qt_ui_text() -> bytes:
    """The .ui with Slicer/CTK widgets replaced by Qt stand-ins."""
    tree = ET.parse(UI_FILE)
    root = tree.getroot()
    for widget in root.iter("widget"):
        cls = widget.get("class")
        if cls in STAND_INS:
            widget.set("class", STAND_INS[cls])
            for prop in list(widget.findall("property")):
                if prop.get("name") not in ("text", "toolTip", "geometry", "enabled"):
                    widget.remove(prop)
            text = widget.find("property[@name='text']")
            if cls == "ctkCollapsibleButton" and text is not None:
                text.set("name", "title")
            if cls == "qMRMLSegmentEditorWidget":
                widget.append(
                    ET.fromstring(
                        "<property name='text'><string>[Segment Editor: paint, draw, "
                        "threshold... on the selected image]</string></property>"
                    )
                )
    for tag in ("customwidgets", "connections"):
        node = root.find(tag)
        if node is not None:
            root.remove(node)
    return ET.tostring(root, encoding="utf-8")


def demo_content(work: Path) -> dict:
    """A real prediction of a SYNTHETIC demo case, with its nomogram and calibration images."""
    sys.path.insert(0, str(REPO / "ALNMPredictor"))
    from ALNMPredictorLib import casefigures, clinicalform, demomodel
    from ALNMPredictorLib import casepredict as cp

    model_path = demomodel.ensure_demo_model(None)
    loaded = cp.load_model_cached(model_path)
    case = demomodel.demo_case(work / "cases", 0)
    prediction = cp.predict_case(loaded, case.regions, case.clinical, case.case_id)
    nomogram = casefigures.figure_png(
        casefigures.nomogram_figure(loaded, prediction), work / "nomogram.png", dpi=70
    )
    calibration = casefigures.calibration_figure(model_path, loaded)
    calibration_png = (
        None if calibration is None else casefigures.figure_png(calibration, work / "calibration.png", dpi=55)
    )
    return {
        "prediction": prediction,
        "fields": clinicalform.clinical_fields(loaded),
        "clinical": case.clinical,
        "nomogram": nomogram,
        "calibration": calibration_png,
        "description": "synthetic demo — not for clinical use",
    }


def render(out: Path, width: int = 460) -> Path:
    """Render the filled panel to ``out`` (PNG)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
    from PySide6.QtGui import QPixmap
    from PySide6.QtUiTools import QUiLoader
    from PySide6.QtWidgets import QApplication, QComboBox, QLabel, QLineEdit, QVBoxLayout, QWidget

    app = QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory() as tmp:
        content = demo_content(Path(tmp))
        data = QByteArray(qt_ui_text())
        buffer = QBuffer(data)
        buffer.open(QIODevice.ReadOnly)
        panel = QUiLoader().load(buffer)
        find = panel.findChild
        for name, text in PLACEHOLDERS.items():
            widget = find(QWidget, name)
            if isinstance(widget, QComboBox):
                widget.addItem(text)
            elif isinstance(widget, QLineEdit):
                widget.setText(text)
        find(QComboBox, "batchTaskComboBox").addItems(["predict", "evaluate", "train"])
        find(QLineEdit, "caseIdLineEdit").setText(content["prediction"].case_id)
        find(QLabel, "modelInfoLabel").setText(content["description"])
        form = find(QWidget, "clinicalFormWidget").layout()
        for spec in content["fields"]:
            value = content["clinical"].get(spec.name)
            if spec.kind == "categorical":
                field = QComboBox()
                field.addItem(str(value))
            else:
                field = QLineEdit(f"{value:g}" if isinstance(value, float) else str(value))
            form.addRow(spec.name + (" *" if spec.required else ""), field)
        find(QWidget, "resultsText").setPlainText(content["prediction"].summary())
        for name in ("nomogramLabel", "calibrationLabel"):
            path = content["nomogram" if name == "nomogramLabel" else "calibration"]
            if path is not None:
                pixmap = QPixmap(str(path))
                find(QLabel, name).setPixmap(pixmap.scaledToWidth(width - 70, Qt.SmoothTransformation))
        frame = QWidget()
        layout = QVBoxLayout(frame)
        note = QLabel(
            "Rendering of the ALNM Predictor panel layout (PySide6, offscreen) - not a Slicer screenshot. "
            "SYNTHETIC demo case and model, not for clinical use."
        )
        note.setWordWrap(True)
        note.setStyleSheet("color: #8a2b2b; font-size: 10px;")
        layout.addWidget(note)
        layout.addWidget(panel)
        frame.setFixedWidth(width)
        frame.adjustSize()
        frame.resize(width, frame.sizeHint().height())
        out.parent.mkdir(parents=True, exist_ok=True)
        if not frame.grab().save(str(out), "PNG"):
            raise RuntimeError(f"could not write {out}")
    del app
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "docs" / "screenshots" / "panel.png"))
    parser.add_argument("--width", type=int, default=460)
    args = parser.parse_args(argv)
    print(render(Path(args.out), args.width))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
