"""The Slicer side of the module uses no Qt 5-only name, so that it runs on Slicer 5.8 and 5.10 (Qt 5) and 5.12 (Qt 6).

Scanned: every file that may call Qt, PythonQt or CTK — UQSegmentation.py, UQSegmentationLib/*.py, the self-test
(Testing/Python/*.py) and the .ui files — as text, Python comments and XML comments left out (signal signatures are
strings, so strings are scanned). Each rule is a Qt 5 name or form that Qt 6, or PythonQt built against Qt 6, no
longer has (and one Qt 6-only form of the .ui file that Qt 5 cannot read), with the form that works on both. Each
rule is also checked against an example of the bad and of the good form, so that a rule that can never match is
caught too. docs/slicer-compatibility.md ("Qt 5 and Qt 6") says how the module was audited.
"""

from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "UQSegmentation"


@dataclass(frozen=True)
class Rule:
    """One name that a Qt version lacks: where it is looked for ("py", "ui"), the form to use instead (`use`), an
    example that must match (`bad`) and one, valid on Qt 5 and Qt 6, that must not (`good`)."""

    name: str
    pattern: str
    use: str
    bad: str
    good: str
    files: tuple[str, ...] = ("py",)
    allowed_if: str = ""  # a line matching this regex is a Qt 5 / Qt 6 switch, not a Qt 5-only use

    def hits(self, line: str) -> bool:
        return bool(re.search(self.pattern, line)) and not (self.allowed_if and re.search(self.allowed_if, line))


RULES = [
    # Qt 6 bindings call it exec(); PythonQt looks `exec_` up as `exec`, so exec() works on Qt 5 builds as well.
    Rule("exec_()", r"\.exec_\s*\(", "exec()", "dialog.exec_()", "dialog.exec()"),
    # QRegExp (and QRegExpValidator) moved to Qt5Compat, which Slicer's PythonQt does not wrap: QRegularExpression.
    Rule("QRegExp", r"\bQRegExp\w*", "QRegularExpression / QRegularExpressionValidator, or Python's re",
         "qt.QRegExp('a+')", "qt.QRegularExpression('a+')", ("py", "ui")),
    # QDesktopWidget and QApplication.desktop() were removed: screens are QScreen objects.
    Rule("QDesktopWidget", r"\bQDesktopWidget\b|\.desktop\s*\(\s*\)",
         "qt.QGuiApplication.primaryScreen() or widget.screen()", "slicer.app.desktop().screenGeometry()",
         "qt.QGuiApplication.primaryScreen().geometry", ("py", "ui")),
    # QStringRef was removed (QStringView is not wrapped); Python strings are what PythonQt hands out anyway.
    Rule("QStringRef", r"\bQStringRef\b", "a Python str", "qt.QStringRef(s)", "str(s)", ("py", "ui")),
    # QTextCodec moved to Qt5Compat; QStringConverter replaces it, Python's codecs do the job here.
    Rule("QTextCodec", r"\bQTextCodec\b", "Python's str.encode / bytes.decode",
         "qt.QTextCodec.codecForName('UTF-8')", "text.encode('utf-8')", ("py", "ui")),
    # QFontMetrics.width() was removed; horizontalAdvance() exists since Qt 5.11.
    Rule("QFontMetrics.width", r"(?:fontMetrics\s*\(\s*\)|QFontMetricsF?\s*\([^)]*\))\.width\s*\(",
         "QFontMetrics.horizontalAdvance()", "w.fontMetrics().width('x')", "w.fontMetrics().horizontalAdvance('x')"),
    # QMouseEvent / QWheelEvent pos(), globalPos(), localPos() ... are deprecated in Qt 6 in favour of position() and
    # globalPosition(), which Qt 5 lacks: a handler needs `e.position() if hasattr(e, "position") else e.pos()`.
    Rule("QMouseEvent.pos", r"\b\w*(?:[eE]vent|\bev|\be)\.(?:pos|globalPos|localPos|windowPos|screenPos|x|y|globalX|"
         r"globalY)\s*\(\s*\)", "position() on Qt 6, pos() on Qt 5, chosen with hasattr(event, 'position')",
         "p = event.pos()", "p = event.position() if hasattr(event, 'position') else event.pos()",
         allowed_if=r"\bposition\b"),
    # Qt.MidButton was removed; Qt.MiddleButton exists in Qt 5 as well.
    Rule("Qt.MidButton", r"\bMidButton\b", "qt.Qt.MiddleButton", "qt.Qt.MidButton", "qt.Qt.MiddleButton",
         ("py", "ui")),
    # QAction (and QShortcut, QActionGroup) moved from QtWidgets to QtGui; `qt.QAction` finds it on both.
    Rule("QtWidgets.QAction", r"QtWidgets\s*\.\s*Q(?:Action|ActionGroup|Shortcut)\b|"
         r"from\s+PythonQt\.QtWidgets\s+import[^\n]*\bQ(?:Action|ActionGroup|Shortcut)\b",
         "qt.QAction", "PythonQt.QtWidgets.QAction('x')", "qt.QAction('x')"),
    # QLayout.setMargin() was removed: setContentsMargins(left, top, right, bottom).
    Rule("setMargin", r"\.setMargin\s*\(", "setContentsMargins(l, t, r, b)", "layout.setMargin(0)",
         "layout.setContentsMargins(0, 0, 0, 0)"),
    # The .ui equivalent: a layout's "margin" property is ignored by Qt 6's form builder.
    Rule("layout margin property", r'<property\s+name="margin"', "leftMargin / topMargin / rightMargin / "
         "bottomMargin properties", '<property name="margin">', '<property name="leftMargin">', ("ui",)),
    # QHeaderView.setResizeMode() is gone (since Qt 5); setSectionResizeMode() works on both.
    Rule("QHeaderView.setResizeMode", r"\.setResizeMode\s*\(", "QHeaderView.setSectionResizeMode()",
         "header.setResizeMode(0, qt.QHeaderView.Stretch)", "header.setSectionResizeMode(0, qt.QHeaderView.Stretch)"),
    # QTableWidget / QListWidget / QTreeWidget setItemSelected() and isItemSelected() were removed.
    Rule("setItemSelected", r"\.(?:set|is)ItemSelected\s*\(", "item.setSelected() / item.isSelected()",
         "table.setItemSelected(item, True)", "item.setSelected(True)"),
    # QComboBox's QString overloads of currentIndexChanged / activated / highlighted were removed:
    # currentTextChanged(QString), textActivated(QString), textHighlighted(QString) exist since Qt 5.14.
    Rule("QComboBox QString signals", r"\b(?:currentIndexChanged|activated|highlighted)\s*\(\s*(?:const\s+)?QString",
         "currentIndexChanged(int), currentTextChanged(QString), textActivated(QString)",
         "combo.connect('currentIndexChanged(QString)', f)", "combo.connect('currentIndexChanged(int)', f)",
         ("py", "ui")),
    # QWheelEvent.delta() was removed: angleDelta().y().
    Rule("QWheelEvent.delta", r"\.delta\s*\(\s*\)", "angleDelta().y()", "event.delta()", "event.angleDelta().y()"),
    # QGLWidget was removed: QOpenGLWidget.
    Rule("QGLWidget", r"\bQGLWidget\b", "QOpenGLWidget", "qt.QGLWidget()", "qt.QOpenGLWidget()", ("py", "ui")),
    # Qt WebKit is gone from Qt 6 (and from Slicer): Slicer's qSlicerWebWidget (Qt WebEngine).
    Rule("QWebView", r"\bQWebView\b|\bQtWebKit\b", "slicer.qSlicerWebWidget", "qt.QWebView()",
         "slicer.qSlicerWebWidget()", ("py", "ui")),
    # QMatrix was removed: QTransform.
    Rule("QMatrix", r"\bQMatrix\b", "QTransform", "qt.QMatrix()", "qt.QTransform()", ("py", "ui")),
    # High-DPI scaling is always on in Qt 6; these attributes are deprecated no-ops there.
    Rule("AA_EnableHighDpiScaling", r"\bAA_(?:EnableHighDpiScaling|DisableHighDpiScaling|UseHighDpiPixmaps)\b",
         "nothing (Slicer sets up high-DPI itself)", "qt.Qt.AA_EnableHighDpiScaling", "pass"),
    # QDateTime's time_t functions were removed: toSecsSinceEpoch / fromSecsSinceEpoch (Qt 5.8+).
    Rule("QDateTime.toTime_t", r"\b(?:toTime_t|setTime_t|fromTime_t)\s*\(", "toSecsSinceEpoch / fromSecsSinceEpoch",
         "d.toTime_t()", "d.toSecsSinceEpoch()"),
    # QString::SkipEmptyParts moved to Qt::SkipEmptyParts (Qt 5.14+).
    Rule("QString.SkipEmptyParts", r"\bQString\.(?:SkipEmptyParts|KeepEmptyParts)\b", "qt.Qt.SkipEmptyParts",
         "qt.QString.SkipEmptyParts", "qt.Qt.SkipEmptyParts"),
    # The other direction: Qt Designer 6.7 and later writes scoped enum values (Qt::Orientation::Vertical), which the
    # .ui loader of Qt 5 (before 5.15.18, so Slicer 5.8 and 5.10) cannot read; the short form reads on both.
    Rule("scoped enum in .ui", r"<(?:enum|set)>[^<]*\b\w+::\w+::\w+",
         "the short form (Qt::Vertical, QAbstractItemView::SelectRows)", "<enum>Qt::Orientation::Vertical</enum>",
         "<enum>Qt::Vertical</enum>", ("ui",)),
    # Not Qt 5-only but a binding mix-up: PythonQt's static QFileDialog functions return the path (a str) on Qt 5
    # and Qt 6 alike; unpacking a (path, filter) tuple is the PyQt / PySide form and fails in Slicer.
    Rule("QFileDialog tuple", r"\w+\s*,\s*\w+\s*=\s*qt\.QFileDialog\.get\w+\s*\(",
         "path = qt.QFileDialog.getOpenFileName(...)", "path, _ = qt.QFileDialog.getOpenFileName(None, 'x')",
         "path = qt.QFileDialog.getOpenFileName(None, 'x')"),
]


def scanned_files() -> list[Path]:
    """The files of the module that may call Qt, PythonQt or CTK."""
    files = [MODULE_DIR / "UQSegmentation.py"]
    files += sorted((MODULE_DIR / "UQSegmentationLib").rglob("*.py"))
    files += sorted((MODULE_DIR / "Testing" / "Python").rglob("*.py"))
    files += sorted((MODULE_DIR / "Resources" / "UI").rglob("*.ui"))
    return [f for f in files if "__pycache__" not in f.parts]


def code_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of `path` without comments: Python `#` comments, or `<!-- -->` in a .ui file."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".ui":
        text = re.sub(r"<!--.*?-->", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
        return list(enumerate(text.splitlines(), start=1))
    lines = text.splitlines()
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.COMMENT:
            row, col = token.start
            lines[row - 1] = lines[row - 1][:col]
    return list(enumerate(lines, start=1))


@pytest.mark.parametrize("rule", RULES, ids=[r.name for r in RULES])
def test_each_rule_matches_its_bad_form_and_not_the_form_for_both(rule):
    assert rule.hits(rule.bad), f"{rule.name}: the rule does not match its own example"
    assert not rule.hits(rule.good), f"{rule.name}: the rule matches the form that works on Qt 5 and Qt 6"
    assert set(rule.files) <= {"py", "ui"}


def test_the_scan_covers_the_gui_the_ui_the_lib_and_the_self_test():
    names = {f.relative_to(MODULE_DIR).as_posix() for f in scanned_files()}
    assert {"UQSegmentation.py", "Resources/UI/UQSegmentation.ui", "Testing/Python/UQSegmentationSelfTest.py",
            "UQSegmentationLib/logic.py", "UQSegmentationLib/process_runner.py"} <= names


def test_comments_are_not_scanned(tmp_path):
    py = tmp_path / "x.py"
    py.write_text("a = 1  # dialog.exec_() was the Qt 5 form\nb = 'dialog.exec_()'\n")
    assert code_lines(py) == [(1, "a = 1  "), (2, "b = 'dialog.exec_()'")]
    ui = tmp_path / "x.ui"
    ui.write_text("<ui>\n<!-- qt.Qt.MidButton\n -->\n<x/>\n</ui>\n")
    assert [line for _, line in code_lines(ui)] == ["<ui>", "", "", "<x/>", "</ui>"]


def test_no_name_that_one_qt_version_lacks_in_the_module():
    found = []
    for path in scanned_files():
        kind = "ui" if path.suffix == ".ui" else "py"
        for number, line in code_lines(path):
            for rule in RULES:
                if kind in rule.files and rule.hits(line):
                    found.append(f"{path.relative_to(REPO).as_posix()}:{number}: {rule.name} — use {rule.use}")
    assert found == [], "names one of Qt 5 (Slicer 5.8, 5.10) and Qt 6 (Slicer 5.12) lacks:\n" + "\n".join(found)
