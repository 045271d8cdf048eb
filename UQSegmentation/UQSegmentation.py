"""UQSegmentation: uncertainty-aware segmentation of mammograms, chest X-rays and CT in 3D Slicer.

Thin GUI layer (Slicer's scripted-module template): the module's metadata, the parameter node, the widget and the
test. The widget only connects the .ui to the parameter node and calls the logic; running the models
(`UQSegmentationLib.logic`, which starts the engine `uqseg` in a background process) and turning results into MRML
nodes (`UQSegmentationLib`) happen elsewhere.
"""

import importlib.util
import os
import unittest
from typing import Annotated

import qt
import vtk

import slicer
from slicer import vtkMRMLScalarVolumeNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from UQSegmentationLib.logic import FAILED, SUCCEEDED
from UQSegmentationLib.logic import UQSegmentationLogic as RunLogic
from UQSegmentationLib.review.controller import ReviewController
from UQSegmentationLib.review.save import corrections_root
from UQSegmentationLib.review.scheduling import ThreadRunner

#
# UQSegmentation
#


class UQSegmentation(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("UQ Segmentation")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = ["UQSegmentation developers"]
        self.parent.helpText = _("""
Segments mammograms, chest X-rays and CT volumes with models that also say where they are unsure, and shows that
uncertainty where you look: a &plusmn;&sigma; band around the pectoral-muscle boundary, organ contours whose nodes are
coloured by their standard deviation, and variance / entropy overlays on the segments.<br>
Pick an image and a task, press <b>Apply</b>; the model runs in the background (Apply turns into Cancel).
The first Apply offers to install PyTorch and the Python packages the models need.<br>
<b>Review</b> lists the regions the model is unsure about, most uncertain first: Next / Previous take the views there.
Drag a contour point and the model reshapes the whole contour through it; breast and CT regions are edited in the
Segment Editor, which can then change only the uncertain region. Save corrections writes labels for retraining;
Open queue steps through a batch run, most uncertain case first.<br>
Tasks and methods:
<ul>
<li><b>mammo-pectoral</b>: M. Zech et al., "Heteroscedastic Heatmap Regression for Reliable Pectoral Muscle
Segmentation in Mammography", MIDL 2026.</li>
<li><b>mammo-breast</b>: S. Verboom et al., "Deep learning-based breast region segmentation in raw and processed
digital mammograms", J. Med. Imaging, 2024.</li>
<li><b>cxr-landmarks</b>: M. Cosarinsky et al., "CheXmask-U", MIDL 2026 (HybridGNet: N. Gaggion et al., IEEE TMI
2023).</li>
<li><b>ct-organs</b>: Kampen, Aspe et al., "Structured Covariance Modeling Using Learned Mixture-of-Bases for
Uncertainty in 3D Segmentation" (Stochastic Segmentation Networks: M. Monteiro et al., 2020).</li>
</ul>
""")
        self.parent.acknowledgementText = _("""
The models build on the methods cited in the help. Runs on PyTorch through the SlicerPyTorch extension; the
background process and dependency handling follow SlicerMONAIAuto3DSeg and SlicerNNUnet.
""")
        # The shipped samples appear in the Sample Data module once the application has started.
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData():
    """Add the shipped samples (Resources/SampleData) to the Sample Data module, category "UQSegmentation"."""
    import SampleData

    from UQSegmentationLib.sample_data import register_sample_data

    register_sample_data(SampleData, __file__)


#
# UQSegmentationParameterNode
#


@parameterNodeWrapper
class UQSegmentationParameterNode:
    """The module's state, saved with the scene.

    inputVolume - the image to segment.
    taskId - the engine's task id (the task combo box; the list comes from the engine).
    device - auto, cuda, cpu or mps.
    samples - number of uncertainty samples; 0 means the model's default.
    cpuFallback - run again on the CPU when the GPU runs out of memory.
    overlayOpacity - opacity of the uncertainty overlay.
    overlayThreshold - uncertainty below this fraction of the overlay's maximum is hidden (the display layer's
        default, 5 %, keeps near-zero uncertainty from tinting the whole image).
    regionThreshold - the review's region threshold in the case's units; 0 means the model card's default.
    Region statuses are kept in the same node by UQSegmentationLib.review.state (one parameter per case).
    """

    inputVolume: vtkMRMLScalarVolumeNode
    taskId: str = ""
    device: str = "auto"
    samples: Annotated[int, WithinRange(0, 1000)] = 0
    cpuFallback: bool = True
    overlayOpacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.6
    overlayThreshold: Annotated[float, WithinRange(0.0, 1.0)] = 0.05
    regionThreshold: Annotated[float, WithinRange(0.0, 1000.0)] = 0.0


#
# UQSegmentationWidget
#


class SingleShotTimer:
    """The review's debounce timer (UQSegmentationLib.review.scheduling: start / stop / active) on a QTimer."""

    def __init__(self) -> None:
        self._callback = None
        self._timer = qt.QTimer()
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._fire)

    @property
    def active(self) -> bool:
        return self._timer.isActive()

    def start(self, delay_ms, callback) -> None:
        self._callback = callback
        self._timer.start(delay_ms)

    def stop(self) -> None:
        self._timer.stop()

    def _fire(self) -> None:
        callback, self._callback = self._callback, None
        if callback:
            callback()


class UQSegmentationWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    POLL_INTERVAL_MS = 200

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._pollTimer = None
        self.review = None
        self._reviewTimer = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/UQSegmentation.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = UQSegmentationLogic()
        for task in self.logic.tasks():
            self.ui.taskComboBox.addItem(task.id, task.id)
            self.ui.taskComboBox.setItemData(self.ui.taskComboBox.count - 1, task.description, qt.Qt.ToolTipRole)
        for device in self.logic.devices():
            self.ui.deviceComboBox.addItem(device, device)
        self.ui.progressBar.hide()

        self._pollTimer = qt.QTimer()
        self._pollTimer.setInterval(self.POLL_INTERVAL_MS)
        self._pollTimer.timeout.connect(self.onPollTimer)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        # The two combo boxes are filled at run time, so they are synchronised here rather than by connectGui.
        self.ui.taskComboBox.connect("currentIndexChanged(int)", self.onTaskChanged)
        self.ui.deviceComboBox.connect("currentIndexChanged(int)", self.onDeviceChanged)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.setupReview()

        self.initializeParameterNode()

    def cleanup(self) -> None:
        """The module is closed (application exit): stop a running model and delete its temp files."""
        if self._pollTimer:
            self._pollTimer.stop()
        if self._reviewTimer:
            self._reviewTimer.stop()
        if self.review:
            self.review.close()
        if self.logic:
            self.logic.cleanup()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        # A run goes on in the background; only stop reacting to parameter changes.
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)

    def onSceneStartClose(self, caller, event) -> None:
        # The results would land in a closed scene: stop the run and delete its files.
        if self.logic:
            self.logic.cancel()
        if self.review:
            self.review.close_session()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode:
                self._parameterNode.inputVolume = firstVolumeNode
        # A scene saved elsewhere may name a task or device this installation does not offer: use the first one.
        if self.ui.taskComboBox.findData(self._parameterNode.taskId) < 0 and self.ui.taskComboBox.count:
            self._parameterNode.taskId = self.ui.taskComboBox.itemData(0)
        if self.ui.deviceComboBox.findData(self._parameterNode.device) < 0:
            self._parameterNode.device = self.ui.deviceComboBox.itemData(0)

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # Widgets with the "SlicerParameterName" property in the .ui are bound by connectGui.
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            if self.review:
                self.review.parameter_node = self._parameterNode.parameterNode
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)
            self.updateGUIFromParameterNode()

    # ---------------------------------------------------------------------------------------------- GUI <-> state
    def updateGUIFromParameterNode(self, caller=None, event=None) -> None:
        p = self._parameterNode
        if p is None:
            return
        self._selectItem(self.ui.taskComboBox, p.taskId)
        self._selectItem(self.ui.deviceComboBox, p.device)
        self.ui.taskDescriptionLabel.text = self.ui.taskComboBox.itemData(self.ui.taskComboBox.currentIndex,
                                                                          qt.Qt.ToolTipRole) or ""
        self.logic.set_overlay_display(p.overlayOpacity, p.overlayThreshold)
        self.updateRunState()

    @staticmethod
    def _selectItem(comboBox, data) -> None:
        index = comboBox.findData(data)
        if index >= 0 and index != comboBox.currentIndex:
            wasBlocked = comboBox.blockSignals(True)
            comboBox.currentIndex = index
            comboBox.blockSignals(wasBlocked)

    def onTaskChanged(self, index) -> None:
        if self._parameterNode and index >= 0:
            self._parameterNode.taskId = self.ui.taskComboBox.itemData(index)

    def onDeviceChanged(self, index) -> None:
        if self._parameterNode and index >= 0:
            self._parameterNode.device = self.ui.deviceComboBox.itemData(index)

    def updateRunState(self) -> None:
        """Apply or Cancel, progress bar and status line, from the logic's run status."""
        status = self.logic.status
        p = self._parameterNode
        if status.running:
            self.ui.applyButton.text = _("Cancel")
            self.ui.applyButton.toolTip = _("Stop the model and discard this run")
            self.ui.applyButton.enabled = True
        else:
            self.ui.applyButton.text = _("Apply")
            ready = bool(p and p.inputVolume and p.taskId)
            self.ui.applyButton.enabled = ready
            self.ui.applyButton.toolTip = _("Run the task on the input image") if ready else _(
                "Select an input image and a task")
        self.ui.progressBar.visible = status.running
        self.ui.progressBar.maximum = 0 if status.indeterminate else 1000  # 0: busy indicator
        self.ui.progressBar.value = int(round(1000 * status.progress))
        self.ui.progressBar.format = f"%p%  {status.message}" if status.message else "%p%"
        self.ui.statusLabel.text = status.error or status.message

    # ---------------------------------------------------------------------------------------------- running
    def onApplyButton(self) -> None:
        if self.logic.running:
            self.logic.cancel()
            self._pollTimer.stop()
            self.updateRunState()
            return
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Failed to start the segmentation."), waitCursor=True):
            message = self.logic.ensure_dependencies(confirm=self._confirm)
            if message:
                slicer.util.infoDisplay(message, windowTitle=_("UQ Segmentation"))
            self.logic.start(p.inputVolume, p.taskId, device=p.device, samples=p.samples or None,
                             cpu_fallback=p.cpuFallback)
            self._pollTimer.start()
        self.updateRunState()

    @staticmethod
    def _confirm(text) -> bool:
        return slicer.util.confirmOkCancelDisplay(text, windowTitle=_("UQ Segmentation"))

    def onPollTimer(self) -> None:
        status = self.logic.poll()
        self.updateRunState()
        if status.running:
            return
        self._pollTimer.stop()
        if status.state == SUCCEEDED:
            p = self._parameterNode
            if p:
                self.logic.set_overlay_display(p.overlayOpacity, p.overlayThreshold)
            self.startReview(status.results)
        elif status.state == FAILED:
            if status.oom and slicer.util.confirmYesNoDisplay(
                    status.error + "\n\n" + _("Run it again on the CPU now?"), windowTitle=_("UQ Segmentation")):
                with slicer.util.tryWithErrorDisplay(_("Failed to start the segmentation."), waitCursor=True):
                    self.logic.retry_on_cpu()
                    self._pollTimer.start()
                self.updateRunState()
            else:
                slicer.util.errorDisplay(status.error, windowTitle=_("UQ Segmentation"))


    # ---------------------------------------------------------------------------------------------- review
    def setupReview(self) -> None:
        """The Review section: UQSegmentationLib.review.controller does the work, on a background thread for the
        model and a QTimer that hands its results back to the GUI thread."""
        self.review = ReviewController(slicer.mrmlScene, self.logic.getParameterNode().parameterNode,
                                       runner=ThreadRunner(), timer=SingleShotTimer(),
                                       on_change=lambda controller, what: self.updateReviewGUI())
        self._reviewTimer = qt.QTimer()
        self._reviewTimer.setInterval(50)
        self._reviewTimer.timeout.connect(self.review.poll)
        self._reviewTimer.start()
        self.ui.regionsTableWidget.connect("cellClicked(int,int)", self.onRegionClicked)
        self.ui.regionThresholdSpinBox.connect("editingFinished()", self.onThresholdEdited)
        actions = {
            self.ui.previousRegionButton: lambda s: s.previous(),
            self.ui.nextRegionButton: lambda s: s.next(),
            self.ui.acceptRegionButton: lambda s: s.accept(),
            self.ui.markCorrectedButton: lambda s: s.mark_corrected(),
            self.ui.undoCorrectionButton: lambda s: s.undo(),
            self.ui.acceptAlternativeButton:
                lambda s: s.accept_alternative(which=max(0, self.ui.alternativeComboBox.currentIndex)),
        }
        for button, action in actions.items():
            button.connect("clicked(bool)", lambda checked=False, a=action: self.onReviewAction(a))
        self.ui.editInSegmentEditorButton.connect("clicked(bool)", self.onEditInSegmentEditor)
        self.ui.saveCorrectionsButton.connect("clicked(bool)", self.onSaveCorrections)
        self.ui.openQueueButton.connect("clicked(bool)", self.onOpenQueue)
        self.ui.previousCaseButton.connect("clicked(bool)", lambda: self.onQueueStep(self.review.previous_case))
        self.ui.nextCaseButton.connect("clicked(bool)", lambda: self.onQueueStep(self.review.next_case))
        self.updateReviewGUI()

    def startReview(self, results) -> None:
        threshold = self._parameterNode.regionThreshold if self._parameterNode else 0.0
        with slicer.util.tryWithErrorDisplay(_("Failed to start the review."), waitCursor=True):
            self.review.review(results, threshold=threshold or None)
        self.updateReviewGUI()

    def onReviewAction(self, action) -> None:
        if self.review.session is None:
            return
        with slicer.util.tryWithErrorDisplay(_("Review action failed."), waitCursor=True):
            action(self.review.session)
        self.updateReviewGUI()

    def onRegionClicked(self, row, column) -> None:
        rows = self.review.table_rows()
        if 0 <= row < len(rows):
            self.onReviewAction(lambda s: s.go_to(rows[row]["id"]))

    def onThresholdEdited(self) -> None:
        if self.review.session is not None:
            self.startReview(self.review.session.results)

    def onEditInSegmentEditor(self) -> None:
        session = self.review.session
        if session is None or session.area is None:
            slicer.util.infoDisplay(_("Select a breast or CT region first (Next region)."),
                                    windowTitle=_("UQ Segmentation"))
            return
        slicer.util.selectModule("SegmentEditor")

    def onSaveCorrections(self) -> None:
        session = self.review.session
        if session is None:
            return
        folder = qt.QFileDialog.getExistingDirectory(None, _("Save corrections to"),
                                                     str(corrections_root(session.results)))
        if not folder:
            return
        with slicer.util.tryWithErrorDisplay(_("Saving the corrections failed."), waitCursor=True):
            record = session.save(folder)
            self.ui.reviewSummaryLabel.text = _("Saved {case} to {folder}").format(case=record["case"], folder=folder)

    def onOpenQueue(self) -> None:
        path = qt.QFileDialog.getOpenFileName(None, _("Open review queue"), "", _("Review queue (queue.csv)"))
        if path:
            self.onQueueStep(lambda: self.review.open_queue(path))

    def onQueueStep(self, step) -> None:
        with slicer.util.tryWithErrorDisplay(_("Opening the case failed."), waitCursor=True):
            step()
        self.updateReviewGUI()

    def updateReviewGUI(self) -> None:
        """Table of regions, summary line and which buttons apply, from the review controller."""
        session = self.review.session if self.review else None
        rows = self.review.table_rows() if self.review else []
        table = self.ui.regionsTableWidget
        table.setRowCount(len(rows))
        for r, region in enumerate(rows):
            for c, text in enumerate((str(region["id"]), region["kind"].replace("_", " "), region["where"],
                                      f"{region['uncertainty']:.3g}", region["status"])):
                table.setItem(r, c, qt.QTableWidgetItem(text))
        if session is not None and session.current is not None:
            table.selectRow([row["id"] for row in rows].index(session.current))
        self.ui.reviewSummaryLabel.text = self.review.message if self.review else ""
        alternatives = session.alternatives() if session is not None else []
        combo = self.ui.alternativeComboBox
        if [combo.itemText(k) for k in range(combo.count)] != alternatives:
            combo.clear()
            for text in alternatives:
                combo.addItem(text)
        selected = session is not None and session.current is not None
        for button in (self.ui.acceptRegionButton, self.ui.markCorrectedButton):
            button.enabled = selected
        self.ui.previousRegionButton.enabled = self.ui.nextRegionButton.enabled = bool(rows)
        self.ui.acceptAlternativeButton.enabled = self.ui.alternativeComboBox.enabled = selected and bool(alternatives)
        self.ui.editInSegmentEditorButton.enabled = selected and session.area is not None
        self.ui.undoCorrectionButton.enabled = session is not None and session.undo_stack.can_undo
        self.ui.saveCorrectionsButton.enabled = session is not None
        queue = self.review.queue if self.review else None
        self.ui.previousCaseButton.enabled = self.ui.nextCaseButton.enabled = queue is not None


#
# UQSegmentationLogic
#


class UQSegmentationLogic(ScriptedLoadableModuleLogic, RunLogic):
    """UQSegmentationLib's run logic, plus the parameter node of Slicer's scripted modules."""

    def __init__(self, **kwargs) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        RunLogic.__init__(self, **kwargs)

    def getParameterNode(self):
        return UQSegmentationParameterNode(super().getParameterNode())


#
# UQSegmentationTest
#


def loadSelfTestModule():
    """The self-test (Testing/Python/UQSegmentationSelfTest.py, installed with the module) as a Python module."""
    path = os.path.join(os.path.dirname(__file__), "Testing", "Python", "UQSegmentationSelfTest.py")
    spec = importlib.util.spec_from_file_location("UQSegmentationSelfTest", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class UQSegmentationTest(ScriptedLoadableModuleTest):
    """Runs the self-test: every task on the CPU on sample data, through the module's logic."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_UQSegmentationSelfTest()

    def test_UQSegmentationSelfTest(self):
        self.delayDisplay("Running every task on the CPU on sample data")
        suite = unittest.defaultTestLoader.loadTestsFromModule(loadSelfTestModule())
        result = unittest.TextTestRunner(verbosity=2).run(suite)
        self.assertTrue(result.wasSuccessful(), f"{len(result.failures)} failures, {len(result.errors)} errors")
        self.delayDisplay("Test passed")
