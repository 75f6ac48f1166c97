"""Stand-ins of Slicer's qMRML widget classes, working on a real MRML scene (slicer-core).

Their behaviour follows Slicer's C++ source (v5.12):

- ``qMRMLNodeComboBox``: the node list is the scene's nodes accepted by ``qMRMLSortFilterProxyModel``'s
  ``filterAcceptsRow`` (``nodeTypes`` by ``IsA``; with ``showChildNodeTypes`` false only the exact class
  names; ``hideChildNodeTypes``; hidden nodes unless ``showHidden``; ``addAttribute`` filters).
  ``setCurrentNode`` of a node the list does not show selects "None" (or nothing), as
  ``setCurrentNodeIDInternal`` does; ``currentNodeChanged`` is emitted when the selection changes. A combo
  box without "None" selects the first node added to an empty list, and another node when its current
  node is removed.
- ``qMRMLSegmentSelectorWidget``: a segmentation ``qMRMLNodeComboBox`` plus a segment combo box
  repopulated as in ``populateSegmentCombobox`` (with ``noneEnabled`` the stored "no segment" is kept).
- ``qMRMLSegmentEditorWidget``: segmentation, source volume and segment selection go through a real
  ``vtkSlicerSegmentEditorLogic`` into the ``vtkMRMLSegmentEditorNode``; ``setActiveEffect`` writes the
  node's active effect name, and ``updateWidgetFromMRML`` (on every modification of that node) activates
  the named effect and sets up the view observations, or removes them when no effect is active, as
  ``updateEffectsSectionFromMRML`` does. Keyboard shortcuts are installed on the main window until
  ``uninstallKeyboardShortcuts``. ``qCritical`` lines go to :data:`qtcore.qt_log`.
"""

from __future__ import annotations

from typing import Any

import vtk
from qt import QComboBox, QWidget
from qtcore import Prop, Signal, qt_log

# Effect names of Slicer's Segment Editor (qMRMLSegmentEditorWidget's default order)
SEGMENT_EDITOR_EFFECTS = (
    "Paint",
    "Draw",
    "Erase",
    "Level tracing",
    "Grow from seeds",
    "Fill between slices",
    "Threshold",
    "Margin",
    "Hollow",
    "Smoothing",
    "Scissors",
    "Islands",
    "Logical operators",
    "Mask volume",
)


def _slicer() -> Any:
    import slicer

    return slicer


class qMRMLWidget(QWidget):
    """qMRMLWidget: holds a scene; ``mrmlSceneChanged(vtkMRMLScene*)`` drives the children in a .ui."""

    mrmlSceneChanged = Signal("mrmlSceneChanged(vtkMRMLScene*)")
    SLOTS = {"setMRMLScene": "setMRMLScene(vtkMRMLScene*)"}

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._scene = None

    def mrmlScene(self) -> Any:
        return self._scene

    def setMRMLScene(self, scene: Any) -> None:
        if scene is self._scene:
            return
        self._scene = scene
        self.mrmlSceneChanged.emit(scene)


class qSlicerWidget(qMRMLWidget):
    pass


class qMRMLNodeComboBox(qMRMLWidget):
    """qMRMLNodeComboBox on a real scene (see the module docstring)."""

    currentNodeChanged = Signal("currentNodeChanged(vtkMRMLNode*)", "currentNodeChanged(bool)")
    currentNodeIDChanged = Signal("currentNodeIDChanged(QString)")
    nodeActivated = Signal("nodeActivated(vtkMRMLNode*)")
    nodeAdded = Signal("nodeAdded(vtkMRMLNode*)")
    nodeAboutToBeRemoved = Signal("nodeAboutToBeRemoved(vtkMRMLNode*)")
    nodeAddedByUserAction = Signal("nodeAddedByUserAction(vtkMRMLNode*)")
    nodeAboutToBeEdited = Signal("nodeAboutToBeEdited(vtkMRMLNode*)")
    currentNodeRenamed = Signal("currentNodeRenamed(QString)")
    SLOTS = {
        "setMRMLScene": "setMRMLScene(vtkMRMLScene*)",
        "setCurrentNode": "setCurrentNode(vtkMRMLNode*)",
        "setCurrentNodeID": "setCurrentNodeID(QString)",
        "setCurrentNodeIndex": "setCurrentNodeIndex(int)",
    }

    nodeTypes = Prop(list, convert=list)
    showHidden = Prop(False, convert=bool)
    showChildNodeTypes = Prop(True, convert=bool)
    hideChildNodeTypes = Prop(list, convert=list)
    noneEnabled = Prop(False, convert=bool)
    addEnabled = Prop(True, convert=bool)
    removeEnabled = Prop(True, convert=bool)
    editEnabled = Prop(False, convert=bool)
    renameEnabled = Prop(False, convert=bool)
    noneDisplay = Prop("None", convert=str)
    baseName = Prop("", convert=str)
    selectNodeUponCreation = Prop(True, convert=bool)
    sizeAdjustPolicy = Prop(0)
    interactionNodeSingletonTag = Prop("", convert=str)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._current_id: str | None = None
        self._attributes: dict[str, tuple[str, Any]] = {}
        self._observations: list[int] = []
        self._props["enabled"] = False  # setMRMLScene(None) state

    # ----- filter (qMRMLSortFilterProxyModel::filterAcceptsRow) ----------------------------------

    def accepts(self, node: Any) -> bool:
        """Whether the combo box lists ``node`` (harness helper mirroring filterAcceptsRow)."""
        if node is None or node.GetScene() is not self._scene:
            return False
        if not self.showHidden and node.GetHideFromEditors():
            return False
        types = list(self.nodeTypes)
        if not types:
            return True
        for node_type in types:
            if not node.IsA(node_type):
                continue
            if not self.showChildNodeTypes and node_type != node.GetClassName():
                continue
            if self.showChildNodeTypes and any(node.IsA(hidden) for hidden in self.hideChildNodeTypes):
                return False
            if node_type in self._attributes:
                name, value = self._attributes[node_type]
                actual = node.GetAttribute(name)
                if actual is None or (value is not None and str(value) != actual):
                    return False
            return True
        return False

    def addAttribute(self, nodeType: str, attributeName: str, attributeValue: Any = None) -> None:
        self._attributes[nodeType] = (attributeName, attributeValue)
        self._refresh_current()

    def removeAttribute(self, nodeType: str, attributeName: str) -> None:
        self._attributes.pop(nodeType, None)

    def nodes(self) -> list[Any]:
        """The listed nodes in scene order (harness helper: what the drop-down shows)."""
        if self._scene is None:
            return []
        out = []
        collection = self._scene.GetNodes()
        for i in range(collection.GetNumberOfItems()):
            node = collection.GetItemAsObject(i)
            if self.accepts(node):
                out.append(node)
        return out

    def nodeCount(self) -> int:
        return len(self.nodes())

    def nodeFromIndex(self, index: int) -> Any:
        nodes = self.nodes()
        return nodes[index] if 0 <= index < len(nodes) else None

    # ----- selection -------------------------------------------------------------------------------

    def currentNode(self) -> Any:
        if self._scene is None or self._current_id is None:
            return None
        node = self._scene.GetNodeByID(self._current_id)
        return node if self.accepts(node) else None

    def _get_currentNodeID(self) -> str:
        node = self.currentNode()
        return node.GetID() if node is not None else ""

    currentNodeID = Prop("", readonly=True)

    def _select(self, node: Any) -> None:
        old = self.currentNode()
        self._current_id = node.GetID() if node is not None else None
        if self.currentNode() is not old:
            new = self.currentNode()
            self.currentNodeChanged.emit(new)
            self._bound_signal("currentNodeIDChanged").emit(new.GetID() if new is not None else "")

    def setCurrentNode(self, node: Any) -> None:
        if node is not None and not self.accepts(node):
            node = None  # setCurrentNodeIDInternal: not in the list -> "None" (or nothing)
        self._select(node)

    def setCurrentNodeID(self, node_id: str) -> None:
        node = self._scene.GetNodeByID(node_id) if (self._scene is not None and node_id) else None
        self.setCurrentNode(node)

    def setCurrentNodeIndex(self, index: int) -> None:
        self.setCurrentNode(self.nodeFromIndex(index))

    def choose(self, node: Any) -> None:
        """A user picking ``node`` (or None) in the drop-down (harness helper): only listed nodes can be picked."""
        if node is not None and not self.accepts(node):
            raise ValueError(
                f"{self.objectName}: {node.GetClassName()} '{node.GetName()}' is not in its list "
                f"(nodeTypes {list(self.nodeTypes)}, showChildNodeTypes {self.showChildNodeTypes})"
            )
        if node is None and not self.noneEnabled:
            raise ValueError(f"{self.objectName}: 'None' is not in its list")
        self._select(node)
        self.nodeActivated.emit(node)

    def _refresh_current(self) -> None:
        if self._current_id is not None and self.currentNode() is None:
            self._current_id = None
            self._select(None if self.noneEnabled else self.nodeFromIndex(0))

    # ----- scene -----------------------------------------------------------------------------------

    def setMRMLScene(self, scene: Any) -> None:
        if scene is self._scene:
            return
        old_node = self.currentNode()
        if self._scene is not None:
            for tag in self._observations:
                self._scene.RemoveObserver(tag)
        self._observations = []
        super().setMRMLScene(scene)
        if scene is not None:
            self._observations = [
                scene.AddObserver(scene.NodeAddedEvent, self._on_node_added),
                scene.AddObserver(scene.NodeRemovedEvent, self._on_node_removed),
            ]
        self._props["enabled"] = scene is not None
        if old_node is not None and self.accepts(old_node):
            return
        self._current_id = None
        if old_node is not None:
            self.currentNodeChanged.emit(None)
        if not self.noneEnabled and self.nodeCount():
            self._select(self.nodeFromIndex(0))

    @vtk.calldata_type(vtk.VTK_OBJECT)
    def _on_node_added(self, caller: Any, event: Any, node: Any) -> None:
        if self.accepts(node):
            self.nodeAdded.emit(node)
            if not self.noneEnabled and self.currentNode() is None and self.nodeCount() == 1:
                self._select(node)

    @vtk.calldata_type(vtk.VTK_OBJECT)
    def _on_node_removed(self, caller: Any, event: Any, node: Any) -> None:
        if node is not None and node.GetID() == self._current_id:
            self._current_id = None
            replacement = None if self.noneEnabled else self.nodeFromIndex(0)
            self._current_id = replacement.GetID() if replacement is not None else None
            self.currentNodeChanged.emit(replacement)
            self._bound_signal("currentNodeIDChanged").emit(
                replacement.GetID() if replacement is not None else ""
            )


class qMRMLSegmentSelectorWidget(qMRMLWidget):
    """qMRMLSegmentSelectorWidget (single selection): segmentation combo box + segment combo box."""

    currentNodeChanged = Signal("currentNodeChanged(vtkMRMLNode*)", "currentNodeChanged(bool)")
    currentSegmentChanged = Signal("currentSegmentChanged(QString)")
    segmentSelectionChanged = Signal("segmentSelectionChanged(QStringList)")
    nodeAboutToBeEdited = Signal("nodeAboutToBeEdited(vtkMRMLNode*)")
    SLOTS = {
        "setMRMLScene": "setMRMLScene(vtkMRMLScene*)",
        "setCurrentNode": "setCurrentNode(vtkMRMLNode*)",
        "setCurrentNodeID": "setCurrentNodeID(QString)",
        "setCurrentSegmentID": "setCurrentSegmentID(QString)",
    }
    NONE_DISPLAY = "None"

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._node_combo = qMRMLNodeComboBox(self)  # children named as in qMRMLSegmentSelectorWidget.ui
        self._node_combo.objectName = "MRMLNodeComboBox_Segmentation"
        self._node_combo.nodeTypes = ["vtkMRMLSegmentationNode"]
        self._segment_combo = QComboBox(self)
        self._segment_combo.objectName = "comboBox_Segment"
        self._segmentation = None
        self._current_segment = ""
        self._segment_tags: list[int] = []
        self._node_combo.currentNodeChanged.connect(self._on_current_node_changed)
        self._node_combo.currentNodeChanged.connect(lambda node: self.currentNodeChanged.emit(node))
        self._segment_combo.currentIndexChanged.connect(self._on_current_segment_changed)
        self.populateSegmentCombobox()

    def _get_noneEnabled(self) -> bool:
        return self._node_combo.noneEnabled

    def _set_noneEnabled(self, value: bool) -> None:
        self._node_combo.noneEnabled = value
        self.populateSegmentCombobox()

    noneEnabled = Prop(False)

    def _get_editEnabled(self) -> bool:
        return self._node_combo.editEnabled

    def _set_editEnabled(self, value: bool) -> None:
        self._node_combo.editEnabled = value

    editEnabled = Prop(False)
    segmentationNodeSelectorVisible = Prop(True, convert=bool)
    selectNodeUponCreation = Prop(True, convert=bool)
    multiSelection = Prop(False, convert=bool)
    horizontalLayout = Prop(False, convert=bool)

    def setMRMLScene(self, scene: Any) -> None:
        super().setMRMLScene(scene)
        self._node_combo.setMRMLScene(scene)

    def currentNode(self) -> Any:
        return self._node_combo.currentNode()

    def currentNodeID(self) -> str:
        return self._node_combo.currentNodeID

    def setCurrentNode(self, node: Any) -> None:
        self._node_combo.setCurrentNode(node)

    def setCurrentNodeID(self, node_id: str) -> None:
        self._node_combo.setCurrentNodeID(node_id)

    def currentSegmentID(self) -> str:
        return self._current_segment

    def segmentIDs(self) -> list[str]:
        return [
            self._segment_combo.itemData(i)
            for i in range(self._segment_combo.count())
            if self._segment_combo.itemData(i) != self.NONE_DISPLAY
        ]

    def setCurrentSegmentID(self, segment_id: str) -> None:
        if not segment_id and self.noneEnabled:
            self._segment_combo.currentIndex = 0
            return
        index = self._segment_combo.findData(segment_id)
        if index != -1 and self._segment_combo.currentIndex != index:
            self._segment_combo.currentIndex = index

    def choose_segment(self, name: str) -> None:
        """A user picking a segment by name (harness helper)."""
        self._segment_combo.choose(name)

    def _on_current_node_changed(self, node: Any) -> None:
        slicer = _slicer()
        segmentation = node if isinstance(node, slicer.vtkMRMLSegmentationNode) else None
        if segmentation is self._segmentation:
            return
        if self._segmentation is not None:
            seg = self._segmentation.GetSegmentation()
            for tag in self._segment_tags:
                seg.RemoveObserver(tag)
        self._segment_tags = []
        self._segmentation = segmentation
        if segmentation is not None:
            seg = segmentation.GetSegmentation()
            for event in (seg.SegmentAdded, seg.SegmentRemoved, seg.SegmentModified):
                self._segment_tags.append(
                    seg.AddObserver(event, lambda *args: self.populateSegmentCombobox())
                )
        self.populateSegmentCombobox()

    def populateSegmentCombobox(self) -> None:
        combo = self._segment_combo
        blocked = combo.blockSignals(True)
        combo.clear()
        combo.blockSignals(blocked)
        segmentation = self._segmentation.GetSegmentation() if self._segmentation is not None else None
        if segmentation is None or segmentation.GetNumberOfSegments() == 0:
            return
        blocked = combo.blockSignals(True)
        if self.noneEnabled:
            combo.addItem(self.NONE_DISPLAY, self.NONE_DISPLAY)
        ids = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]
        for segment_id in ids:
            combo.addItem(segmentation.GetSegment(segment_id).GetName(), segment_id)
        combo.blockSignals(blocked)
        if (self.noneEnabled and not self._current_segment) or (
            self._current_segment and self._current_segment in ids
        ):
            blocked = combo.blockSignals(True)
            self.setCurrentSegmentID(self._current_segment)
            combo.blockSignals(blocked)
        else:
            blocked = combo.blockSignals(True)
            combo.currentIndex = -1
            combo.blockSignals(blocked)
            combo.currentIndex = 1 if self.noneEnabled else 0

    def _on_current_segment_changed(self, index: int) -> None:
        if self._segmentation is None:
            return
        segment_id = self._segment_combo.itemData(index)
        self._current_segment = "" if segment_id in (None, self.NONE_DISPLAY) else str(segment_id)
        self.currentSegmentChanged.emit(self._current_segment)


class qMRMLSegmentEditorWidget(qMRMLWidget):
    """qMRMLSegmentEditorWidget (see the module docstring)."""

    segmentationNodeChanged = Signal("segmentationNodeChanged(vtkMRMLSegmentationNode*)")
    sourceVolumeNodeChanged = Signal("sourceVolumeNodeChanged(vtkMRMLVolumeNode*)")
    currentSegmentIDChanged = Signal("currentSegmentIDChanged(QString)")
    SLOTS = {
        "setMRMLScene": "setMRMLScene(vtkMRMLScene*)",
        "setSegmentationNode": "setSegmentationNode(vtkMRMLNode*)",
        "setSourceVolumeNode": "setSourceVolumeNode(vtkMRMLNode*)",
        "updateWidgetFromMRML": "updateWidgetFromMRML()",
    }

    segmentationNodeSelectorVisible = Prop(True, convert=bool)
    sourceVolumeNodeSelectorVisible = Prop(True, convert=bool)
    masterVolumeNodeSelectorVisible = Prop(True, convert=bool)
    switchToSegmentationsButtonVisible = Prop(True, convert=bool)
    undoEnabled = Prop(True, convert=bool)
    maximumNumberOfUndoStates = Prop(10, convert=int)
    readOnly = Prop(False, convert=bool)
    autoShowSourceVolumeNode = Prop(True, convert=bool)
    segmentationNodeSelectorEnabled = Prop(True, convert=bool)
    sourceVolumeNodeSelectorEnabled = Prop(True, convert=bool)
    effectColumnCount = Prop(2, convert=int)
    unorderedEffectsVisible = Prop(True, convert=bool)
    jumpToSelectedSegmentEnabled = Prop(False, convert=bool)
    defaultTerminologyEntrySettingsKey = Prop("", convert=str)
    addRemoveSegmentButtonsVisible = Prop(True, convert=bool)
    specifyGeometryButtonVisible = Prop(True, convert=bool)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        slicer = _slicer()
        self._logic = slicer.vtkSlicerSegmentEditorLogic()
        self._editor_node = None
        self._editor_tag = None
        self._active_effect: str | None = None
        self._shortcuts_installed = False  # state Qt keeps in the main window's QShortcut objects
        self._view_observations: list[str] = []  # views whose interactor events the widget captures

    # ----- scene and parameter node ----------------------------------------------------------------

    def setMRMLScene(self, scene: Any) -> None:
        super().setMRMLScene(scene)
        self._logic.SetMRMLScene(scene)
        slicer = _slicer()
        app = getattr(slicer, "app", None)
        if app is not None:
            self._logic.SetMRMLApplicationLogic(app.applicationLogic())

    def mrmlSegmentEditorNode(self) -> Any:
        return self._editor_node

    def setMRMLSegmentEditorNode(self, node: Any) -> None:
        if node is self._editor_node:
            return
        if self._editor_node is not None and self._editor_tag is not None:
            self._editor_node.RemoveObserver(self._editor_tag)
        self._editor_tag = None
        self._editor_node = node
        self._logic.SetSegmentEditorNode(node)
        if node is None:
            return
        self._editor_tag = node.AddObserver(
            vtk.vtkCommand.ModifiedEvent, lambda *args: self.updateWidgetFromMRML()
        )
        self.updateWidgetFromMRML()

    def _critical(self, where: str, message: str = "Invalid segment editor parameter set node") -> None:
        qt_log.append(f"qCritical: qMRMLSegmentEditorWidget::{where}: {message}")

    # ----- segmentation / source volume ----------------------------------------------------------

    def setSegmentationNode(self, node: Any) -> None:
        if self._logic.GetSegmentationNode() is node:
            return
        if self._editor_node is None:
            self._critical("setSegmentationNode")
            return
        self._logic.SetSegmentationNode(node)
        self.setActiveEffect(None)  # deactivate the current effect when switching segmentation
        self.segmentationNodeChanged.emit(node)

    def segmentationNode(self) -> Any:
        return self._logic.GetSegmentationNode() if self._editor_node is not None else None

    def segmentationNodeID(self) -> str:
        node = self.segmentationNode()
        return node.GetID() if node is not None else ""

    def setSegmentationNodeID(self, node_id: str) -> None:
        if self.mrmlScene() is None:
            self._critical("setSegmentationNodeID", "failed: MRML scene is not set")
            return
        self.setSegmentationNode(self.mrmlScene().GetNodeByID(node_id))

    def setSourceVolumeNode(self, node: Any) -> None:
        if self._editor_node is None:
            self._critical("setSourceVolumeNode")
            return
        self._logic.SetSourceVolumeNode(node)
        self.sourceVolumeNodeChanged.emit(node)

    def sourceVolumeNode(self) -> Any:
        return self._logic.GetSourceVolumeNode() if self._editor_node is not None else None

    def sourceVolumeNodeID(self) -> str:
        node = self.sourceVolumeNode()
        return node.GetID() if node is not None else ""

    def setSourceVolumeNodeID(self, node_id: str) -> None:
        scene = self.mrmlScene()
        self.setSourceVolumeNode(scene.GetNodeByID(node_id) if scene is not None and node_id else None)

    def setCurrentSegmentID(self, segment_id: str) -> None:
        if self._editor_node is None:
            self._critical("setCurrentSegmentID")
            return
        self._editor_node.SetSelectedSegmentID(segment_id)

    def currentSegmentID(self) -> str:
        return self._editor_node.GetSelectedSegmentID() or "" if self._editor_node is not None else ""

    # ----- effects ---------------------------------------------------------------------------------

    def effectByName(self, name: str) -> str | None:
        return name if name in SEGMENT_EDITOR_EFFECTS else None

    def setActiveEffect(self, effect: str | None) -> None:
        if self._editor_node is None:
            if effect is not None:
                self._critical("setActiveEffect")
            return
        self._editor_node.SetActiveEffectName(effect or "")

    def setActiveEffectByName(self, name: str) -> None:
        self.setActiveEffect(self.effectByName(name))

    def activeEffect(self) -> str | None:
        return self._active_effect

    def updateWidgetFromMRML(self) -> None:
        node = self._editor_node
        if node is None:
            return
        name = node.GetActiveEffectName() or ""
        effect = self.effectByName(name)
        if effect is not None and node.GetSourceVolumeNode() is None:
            effect = None  # effects are disabled until a source volume is selected
        if effect == self._active_effect:
            return
        self._active_effect = effect
        if effect is not None:
            self.setupViewObservations()
        else:
            self.removeViewObservations()

    def updateEffectList(self) -> None:
        pass

    def setupViewObservations(self) -> None:
        self.removeViewObservations()
        slicer = _slicer()
        manager = slicer.app.layoutManager() if getattr(slicer, "app", None) is not None else None
        views = list(manager.sliceViewNames()) if manager is not None else ["Red", "Yellow", "Green"]
        self._view_observations = views

    def removeViewObservations(self) -> None:
        self._view_observations = []

    def installKeyboardShortcuts(self, parent: Any = None) -> None:
        self.uninstallKeyboardShortcuts()
        self._shortcuts_installed = True

    def uninstallKeyboardShortcuts(self) -> None:
        self._shortcuts_installed = False

    def keyboard_shortcuts_installed(self) -> bool:
        """Whether the editor's shortcuts (1-9, Z, Y, ...) act on the main window (harness helper)."""
        return self._shortcuts_installed

    def setMaximumNumberOfUndoStates(self, count: int) -> None:
        self.maximumNumberOfUndoStates = count

    def captures_view_clicks(self) -> bool:
        """Whether a click in a slice view would go to this editor's effect (harness helper)."""
        return self._active_effect is not None and bool(self._view_observations)


__all__ = [
    "SEGMENT_EDITOR_EFFECTS",
    "qMRMLNodeComboBox",
    "qMRMLSegmentEditorWidget",
    "qMRMLSegmentSelectorWidget",
    "qMRMLWidget",
    "qSlicerWidget",
]
