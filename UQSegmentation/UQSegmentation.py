"""UQSegmentation: uncertainty-aware segmentation of mammograms, chest X-rays and CT in 3D Slicer.

Slicer's scripted-module template (module, parameter node, widget, logic, test) as wiring only: the widget binds the
.ui to the parameter node, forwards clicks to the logic and the review controller and shows what
`UQSegmentationLib.panel` computes from them. Running the models (`UQSegmentationLib.logic`: the engine `uqseg` in a
background process), results → MRML nodes, the review and its texts all live in `UQSegmentationLib`.
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

from UQSegmentationLib import panel
from UQSegmentationLib.logic import FAILED, SUCCEEDED
from UQSegmentationLib.logic import UQSegmentationLogic as RunLogic
from UQSegmentationLib.review.controller import ReviewController
from UQSegmentationLib.review.save import corrections_root
from UQSegmentationLib.review.scheduling import SingleShotTimer, ThreadRunner

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
    """The module's state, saved with the scene: the input image, the engine's task id, the device (auto, cuda, cpu,
    mps), the number of uncertainty samples (0: the model's default), whether to run again on the CPU when the GPU
    runs out of memory, the overlay's opacity and lower threshold (a fraction of its maximum; the display default,
    5 %, keeps near-zero uncertainty from tinting the image) and the review's region threshold in the case's units
    (0: the model card's). Region statuses are kept in the same node by UQSegmentationLib.review.state."""

    inputVolume: vtkMRMLScalarVolumeNode
    taskId: str = ""
    device: str = "auto"
    samples: Annotated[int, WithinRange(0, 1000)] = 0
    cpuFallback: bool = True
    overlayOpacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.6
    overlayThreshold: Annotated[float, WithinRange(0.0, 1.0)] = 0.05
    showOodMap: bool = False
    regionThreshold: Annotated[float, WithinRange(0.0, 1000.0)] = 0.0


#
# UQSegmentationWidget
#


class UQSegmentationWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    POLL_INTERVAL_MS = 200

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = self.review = self._parameterNode = self._parameterNodeGuiTag = None
        self._pollTimer = self._reviewTimer = None

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
        self._pollTimer = self._timer(self.POLL_INTERVAL_MS, self.onPollTimer)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        # The two combo boxes are filled at run time, so they are synchronised here rather than by connectGui.
        self.ui.taskComboBox.connect("currentIndexChanged(int)", self.onTaskChanged)
        self.ui.deviceComboBox.connect("currentIndexChanged(int)", self.onDeviceChanged)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.exportDicomButton.connect("clicked(bool)", self.onExportDicom)
        self.setupReview()
        self.initializeParameterNode()

    @staticmethod
    def _timer(intervalMs, callback):
        timer = qt.QTimer()
        timer.setInterval(intervalMs)
        timer.timeout.connect(callback)
        return timer

    def _show(self, properties) -> None:
        """Set what UQSegmentationLib.panel computed: {widget name in the .ui: {property: value}}."""
        for name, values in properties.items():
            for prop, value in values.items():
                setattr(getattr(self.ui, name), prop, value)

    def cleanup(self) -> None:
        """The module is closed (application exit): stop a running model and delete its temp files."""
        for timer in (self._pollTimer, self._reviewTimer):
            if timer:
                timer.stop()
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
        p = self._parameterNode
        firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
        if not p.inputVolume and firstVolumeNode:
            p.inputVolume = firstVolumeNode
        # A scene saved elsewhere may name a task or device this installation does not offer: use the first one.
        p.taskId = panel.first_available(p.taskId, [t.id for t in self.logic.tasks()])
        p.device = panel.first_available(p.device, self.logic.devices())

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # Widgets with the "SlicerParameterName" property in the .ui are bound by connectGui.
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
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
        self.logic.show_ood_map(bool(p.showOodMap), p.overlayOpacity)
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
        """Apply or Cancel, the progress bar and the status line (applyButton, progressBar, statusLabel)."""
        self._show(panel.run_view(self.logic.status, self._parameterNode).properties())

    # ---------------------------------------------------------------------------------------------- running
    def onApplyButton(self) -> None:
        if self.logic.running:
            self.logic.cancel()
            self._pollTimer.stop()
        else:
            p = self._parameterNode
            with slicer.util.tryWithErrorDisplay(_("Failed to start the segmentation."), waitCursor=True):
                message = self.logic.ensure_dependencies(confirm=lambda text: slicer.util.confirmOkCancelDisplay(
                    text, windowTitle=_("UQ Segmentation")))
                if message:
                    slicer.util.infoDisplay(message, windowTitle=_("UQ Segmentation"))
                self.logic.start(p.inputVolume, p.taskId, device=p.device, samples=p.samples or None,
                                 cpu_fallback=p.cpuFallback)
                self._pollTimer.start()
        self.updateRunState()

    def onPollTimer(self) -> None:
        status = self.logic.poll()
        self.updateRunState()
        if status.running:
            return
        self._pollTimer.stop()
        if status.state == SUCCEEDED:
            self.updateGUIFromParameterNode()  # the overlay settings, on the new result
            self.startReview(status.results)
        elif status.state == FAILED and status.oom and slicer.util.confirmYesNoDisplay(
                panel.retry_on_cpu_question(status), windowTitle=_("UQ Segmentation")):
            with slicer.util.tryWithErrorDisplay(_("Failed to start the segmentation."), waitCursor=True):
                self.logic.retry_on_cpu()
                self._pollTimer.start()
            self.updateRunState()
        elif status.state == FAILED:
            slicer.util.errorDisplay(status.error, windowTitle=_("UQ Segmentation"))

    def onExportDicom(self) -> None:
        """The current result as DICOM SEG / Parametric Map (/ SR) in the DICOM database (UQSegmentationLib.dicom_export)."""
        from UQSegmentationLib.dicom_export import export_to_dicom

        with slicer.util.tryWithErrorDisplay(_("Export to DICOM failed."), waitCursor=True):
            files = export_to_dicom(self.logic.status.case_dir, self._parameterNode.inputVolume)
            slicer.util.infoDisplay(_("Added to the DICOM database: ") + ", ".join(f.name for f in files),
                                    windowTitle=_("UQ Segmentation"))

    # ---------------------------------------------------------------------------------------------- review
    def setupReview(self) -> None:
        """The Review section: UQSegmentationLib.review.controller does the work, the model on a worker thread whose
        results a QTimer hands back to the GUI thread (controller.poll)."""
        self.review = ReviewController(slicer.mrmlScene, self.logic.getParameterNode().parameterNode,
                                       runner=ThreadRunner(), timer=SingleShotTimer(qt.QTimer()),
                                       on_change=lambda controller, what: self.updateReviewGUI())
        self._reviewTimer = self._timer(50, self.review.poll)
        self._reviewTimer.start()
        for button, action in ((self.ui.previousRegionButton, "previous"), (self.ui.nextRegionButton, "next"),
                               (self.ui.acceptRegionButton, "accept"), (self.ui.markCorrectedButton, "mark_corrected"),
                               (self.ui.undoCorrectionButton, "undo"),
                               (self.ui.acceptAlternativeButton, "accept_alternative")):
            button.connect("clicked(bool)", lambda checked=False, a=action: self.onReviewStep(
                lambda: self.review.act(a, alternative=self.ui.alternativeComboBox.currentIndex)))
        self.ui.regionsTableWidget.connect("cellClicked(int,int)",
                                           lambda row, column: self.onReviewStep(lambda: self.review.go_to_row(row)))
        self.ui.regionThresholdSpinBox.connect("editingFinished()", self.onThresholdEdited)
        self.ui.editInSegmentEditorButton.connect("clicked(bool)", lambda: slicer.util.selectModule("SegmentEditor"))
        self.ui.saveCorrectionsButton.connect("clicked(bool)", self.onSaveCorrections)
        self.ui.openQueueButton.connect("clicked(bool)", self.onOpenQueue)
        caseFailed = _("Opening the case failed.")
        self.ui.previousCaseButton.connect("clicked(bool)",
                                           lambda: self.onReviewStep(self.review.previous_case, caseFailed))
        self.ui.nextCaseButton.connect("clicked(bool)", lambda: self.onReviewStep(self.review.next_case, caseFailed))
        self.updateReviewGUI()

    def startReview(self, results) -> None:
        threshold = self._parameterNode.regionThreshold if self._parameterNode else 0.0
        self.onReviewStep(lambda: self.review.review(results, threshold=threshold or None),
                          _("Failed to start the review."))

    def onReviewStep(self, step, failure=None) -> None:
        with slicer.util.tryWithErrorDisplay(failure or _("Review action failed."), waitCursor=True):
            step()
        self.updateReviewGUI()

    def onThresholdEdited(self) -> None:
        if self.review.session is not None:
            self.startReview(self.review.session.results)

    def onSaveCorrections(self) -> None:
        session = self.review.session
        folder = session and qt.QFileDialog.getExistingDirectory(None, _("Save corrections to"),
                                                                 str(corrections_root(session.results)))
        if folder:
            with slicer.util.tryWithErrorDisplay(_("Saving the corrections failed."), waitCursor=True):
                self.ui.reviewSummaryLabel.text = panel.saved_message(session.save(folder)["case"], folder)

    def onOpenQueue(self) -> None:
        path = qt.QFileDialog.getOpenFileName(None, _("Open review queue"), "", _("Review queue (queue.csv)"))
        if path:
            self.onReviewStep(lambda: self.review.open_queue(path), _("Opening the case failed."))

    def updateReviewGUI(self) -> None:
        """The table of regions, the alternatives, the summary line and which buttons apply."""
        view = panel.review_view(self.review)
        table = self.ui.regionsTableWidget
        table.setRowCount(len(view.cells))
        for row, cells in enumerate(view.cells):
            for column, text in enumerate(cells):
                table.setItem(row, column, qt.QTableWidgetItem(text))
        if view.selected_row >= 0:
            table.selectRow(view.selected_row)
        combo = self.ui.alternativeComboBox
        if [combo.itemText(k) for k in range(combo.count)] != view.alternatives:
            combo.clear()
            for text in view.alternatives:
                combo.addItem(text)
        self._show(view.properties())


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
