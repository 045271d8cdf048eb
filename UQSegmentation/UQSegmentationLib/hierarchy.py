"""Subject hierarchy of one result: a folder "<input name> — <task>" holding every node of that result.

The folder sits under the input volume's study (the DICOM "Study" level item that is an ancestor of the volume's
item) or, when the volume has no study or there is no input volume, under the scene root. Its item attributes
identify the result, so a re-run finds and replaces it:

    UQSegmentation.Task         the task id (e.g. "mammo-pectoral")
    UQSegmentation.InputNodeID  the input volume node's ID ("" when loaded without one)
    UQSegmentation.Case         the case name (summary.json "case", else the case folder's name)
    UQSegmentation.CaseDir      the folder the result was read from

`remove_results` removes the folder, every data node under it (recursively) and their display nodes (colour
legends included) and storage nodes — `vtkMRMLSubjectHierarchyNode.RemoveItem` alone leaves display and storage
nodes behind in the scene. Shared nodes (the project colormaps, the input volume, slice views) are never removed.

Slicer creates a subject-hierarchy item for every node added to the scene (a Qt plugin does it); on `slicer-core`
nothing does, so `add_to_folder` creates the item when it is missing and re-parents it otherwise.
"""

from __future__ import annotations

ATTR_TASK = "UQSegmentation.Task"
ATTR_INPUT = "UQSegmentation.InputNodeID"
ATTR_CASE = "UQSegmentation.Case"
ATTR_CASE_DIR = "UQSegmentation.CaseDir"
STUDY_LEVEL = "Study"
SEPARATOR = " — "


def sh_node(scene):
    """The scene's subject hierarchy node (created by Slicer on first request)."""
    import slicer

    node = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    if node is None:
        raise RuntimeError("the scene has no subject hierarchy node")
    return node


def folder_name(input_name: str, task: str) -> str:
    return f"{input_name}{SEPARATOR}{task}"


def _study_of(sh, node) -> int:
    if node is None:
        return 0
    item = sh.GetItemByDataNode(node)
    if not item:
        return 0
    if sh.GetItemLevel(item) == STUDY_LEVEL:
        return item
    parent = sh.GetItemParent(item)
    while parent and parent != sh.GetSceneItemID():
        if sh.GetItemLevel(parent) == STUDY_LEVEL:
            return parent
        parent = sh.GetItemParent(parent)
    return 0


def create_results_folder(scene, task: str, input_volume_node=None, case: str = "", case_dir: str = "") -> int:
    """A new folder item for a result, under the input's study or the scene root; returns its item ID."""
    sh = sh_node(scene)
    parent = _study_of(sh, input_volume_node) or sh.GetSceneItemID()
    name = input_volume_node.GetName() if input_volume_node is not None else (case or "case")
    item = sh.CreateFolderItem(parent, folder_name(name, task))
    sh.SetItemAttribute(item, ATTR_TASK, task)
    sh.SetItemAttribute(item, ATTR_INPUT, input_volume_node.GetID() if input_volume_node is not None else "")
    sh.SetItemAttribute(item, ATTR_CASE, case or "")
    sh.SetItemAttribute(item, ATTR_CASE_DIR, str(case_dir))
    return item


def find_results(scene, task: str, input_volume_node=None, case: str | None = None) -> int:
    """The folder item of the existing result for this task and input (0 when none).

    With an input volume node the result is identified by (task, input node ID); without one by (task, case).
    """
    sh = sh_node(scene)
    from vtk import vtkIdList

    items = vtkIdList()
    sh.GetItemChildren(sh.GetSceneItemID(), items, True)
    want_input = input_volume_node.GetID() if input_volume_node is not None else ""
    for k in range(items.GetNumberOfIds()):
        item = items.GetId(k)
        if sh.GetItemAttribute(item, ATTR_TASK) != task:
            continue
        if sh.GetItemAttribute(item, ATTR_INPUT) != want_input:
            continue
        if not want_input and case is not None and sh.GetItemAttribute(item, ATTR_CASE) != case:
            continue
        return item
    return 0


def result_folders(scene) -> list[int]:
    """Every result folder in the scene (items carrying the task attribute), in hierarchy order."""
    sh = sh_node(scene)
    from vtk import vtkIdList

    items = vtkIdList()
    sh.GetItemChildren(sh.GetSceneItemID(), items, True)
    ids = [items.GetId(k) for k in range(items.GetNumberOfIds())]
    return [i for i in ids if sh.GetItemAttribute(i, ATTR_TASK)]


def add_to_folder(scene, folder_item: int, node) -> int:
    """Put a data node under the folder (creating its subject-hierarchy item if needed); returns the item ID."""
    sh = sh_node(scene)
    item = sh.GetItemByDataNode(node)
    if item:
        sh.SetItemParent(item, folder_item)
    else:
        item = sh.CreateItem(folder_item, node)
    return item


def folder_data_nodes(scene, folder_item: int) -> list:
    """Every data node under the folder, recursively, in hierarchy order."""
    sh = sh_node(scene)
    from vtk import vtkIdList

    items = vtkIdList()
    sh.GetItemChildren(folder_item, items, True)
    nodes = []
    for k in range(items.GetNumberOfIds()):
        node = sh.GetItemDataNode(items.GetId(k))
        if node is not None:
            nodes.append(node)
    return nodes


def _owned_nodes(node) -> list:
    """Display nodes (legends included) and storage nodes of a data node."""
    owned = []
    for k in range(node.GetNumberOfDisplayNodes() if hasattr(node, "GetNumberOfDisplayNodes") else 0):
        d = node.GetNthDisplayNode(k)
        if d is not None:
            owned.append(d)
    for k in range(node.GetNumberOfStorageNodes() if hasattr(node, "GetNumberOfStorageNodes") else 0):
        s = node.GetNthStorageNode(k)
        if s is not None:
            owned.append(s)
    return owned


def _folder_item_of(scene, target) -> int:
    sh = sh_node(scene)
    if hasattr(target, "folder_item"):  # a ResultNodes
        return int(target.folder_item)
    if isinstance(target, int):
        return target
    if hasattr(target, "GetID"):  # a node: its result folder (the nearest ancestor with the task attribute)
        item = sh.GetItemByDataNode(target)
        while item and item != sh.GetSceneItemID():
            if sh.GetItemAttribute(item, ATTR_TASK):
                return item
            item = sh.GetItemParent(item)
        return 0
    raise TypeError(f"expected a folder item ID, a node in a result folder or a ResultNodes, got {target!r}")


def remove_results(scene, target) -> int:
    """Remove a result folder and every node in it; returns the number of data nodes removed (0: nothing found).

    target: the folder's item ID, any data node inside a result folder, or the `ResultNodes` `load_results`
    returned. Display nodes (colour legends included) and storage nodes of those data nodes go too.
    """
    sh = sh_node(scene)
    folder = _folder_item_of(scene, target)
    if not folder or folder not in result_folders(scene):  # not a result folder, or already removed
        return 0
    data_nodes = folder_data_nodes(scene, folder)
    owned = [o for n in data_nodes for o in _owned_nodes(n)]
    scene.StartState(scene.BatchProcessState)
    try:
        for node in data_nodes:
            if node.GetScene() is scene:
                scene.RemoveNode(node)
        for node in owned:
            if node.GetScene() is scene:
                scene.RemoveNode(node)
        sh.RemoveItem(folder, False, True)
    finally:
        scene.EndState(scene.BatchProcessState)
    return len(data_nodes)


class NodeCollector:
    """Collects a loader's nodes by role and puts each into the result folder as soon as it exists.

    So that a loader failing half-way leaves nothing behind: the caller removes the folder (`remove_results`)
    and with it every node already created. With folder_item None (a loader used on its own) it only collects.
    """

    def __init__(self, scene, folder_item: int | None):
        self.scene = scene
        self.folder_item = folder_item
        self.nodes: dict = {}

    def add(self, role: str, node):
        # Display nodes (e.g. a colour legend) belong to their displayable node, not to the folder.
        if self.folder_item and not node.IsA("vtkMRMLDisplayNode"):
            add_to_folder(self.scene, self.folder_item, node)
        self.nodes[role] = node
        return node

    def discard(self) -> None:
        """Remove the collected nodes and their display/storage nodes (for loaders used without a folder)."""
        for node in list(self.nodes.values()):
            if node.IsA("vtkMRMLDisplayNode"):
                continue
            owned = _owned_nodes(node)
            if node.GetScene() is self.scene:
                self.scene.RemoveNode(node)
            for other in owned:
                if other.GetScene() is self.scene:
                    self.scene.RemoveNode(other)
        self.nodes.clear()
