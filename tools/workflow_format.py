"""Convert between ComfyUI's two workflow formats, given the host's ``/object_info``, and lay out the examples.

The server only runs the API format; the frontend loads the UI format. The example workflows ship as both,
and the tests check that each UI file converts to its API twin. ``python tools/workflow_format.py`` regenerates
the UI files from the API files with a running host's node info, laid out as ``workflows/templates.toml`` says
(titled groups of node columns, data flowing left to right), with ``workflows/notes/NAME.md`` as note nodes.

``widgets_values`` is positional, and the frontend (1.32.9; the same rules hold in 1.58) adds widgets the API
format does not have, each with a slot of its own:

- a "control after generate" combo right after an INT input flagged ``control_after_generate`` in /object_info,
  or, when the flag is absent, one named ``seed`` or ``noise_seed`` (value ``fixed``, ``increment``,
  ``decrement`` or ``randomize``; a new node gets ``randomize``);
- after a COMBO input flagged ``control_after_generate``: that combo plus a "control filter list" string;
- an ``upload`` button (value ``"image"``) after the required inputs when a required combo is flagged
  ``image_upload``, ``video_upload`` or ``animated_image_upload`` (LoadImage).

Widgets that web extensions add with ``serialize: false`` (this plugin's V-A pad and emotion-group row, the
preview widgets of PreviewAny) take no slot.
"""

from __future__ import annotations

import json
from pathlib import Path

import tomllib

UI_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
SEED_NAMES = ("seed", "noise_seed")  # INT widgets that get a control widget unless flagged otherwise
CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize", "increment-wrap")
UPLOAD_FLAGS = ("image_upload", "video_upload", "animated_image_upload")
ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / "workflows"
TEMPLATES = WORKFLOWS / "templates.toml"

# Geometry of the frontend's LiteGraph canvas (1.32.9): a node's title bar is drawn above ``pos``.
TITLE_H = 30
SLOT_H = 20
WIDGET_H = 24
# Extra height of widgets that web extensions draw (this plugin's web/js): node types whose inputs carry them.
CUSTOM_WIDGET_H = {"EmoNodes_ValenceArousal": 292, "EmoNodes_VAToEmotions": 292, "EmoNodes_EmotionGrid": 130,
                   "EmoNodes_EmotionPath": 154, "EmoNodes_EmotionDirection": 46,
                   "EmoNodes_EmotionEdit": 46, "EmoNodes_IEILoop": 46}
TITLE_CHAR_W = 7.2  # the title font's average advance: a long title widens the node
# Room for what a node shows below its widgets: image previews, text previews, text areas.
PREVIEW_H = {"LoadImage": 300, "SaveImage": 300, "PreviewImage": 300, "PreviewAny": 160}
MIN_SIZE = {"CLIPTextEncode": (360, 150), "PrimitiveStringMultiline": (310, 120), "MarkdownNote": (360, 100),
            "EmoNodes_EmotionEdit": (360, 0),
            # measured in the browser test (1.32.9): their optional text/number inputs take more room than counted
            "EmoNodes_VAClosedLoop": (310, 650), "EmoNodes_PredictVA": (310, 160)}
NODE_W = 310
GAP_X, GAP_Y = 40, 20  # between columns; between a node's bottom and the next node's title
GROUP_PAD, GROUP_HEAD, GROUP_GAP = 16, 46, 36  # inside a group; its title band; between groups


# -- widget slots --------------------------------------------------------------------------------------------------
def _options(spec: list) -> dict:
    return spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}


def _is_widget(spec: list) -> bool:
    kind = spec[0]
    return (isinstance(kind, list) or kind in WIDGET_TYPES) and not _options(spec).get("forceInput")


def _has_control(name: str, spec: list) -> bool:
    flag = _options(spec).get("control_after_generate")
    if spec[0] == "INT":
        return bool(flag) if flag is not None else name in SEED_NAMES
    return _is_combo(spec) and bool(flag)  # FLOAT, STRING, BOOLEAN never get one


def _is_combo(spec: list) -> bool:
    return isinstance(spec[0], list) or spec[0] == "COMBO"


def widget_inputs(node_info: dict) -> list[tuple[str, dict]]:
    """(name, options) of the inputs shown as widgets, in the frontend's order."""
    return [(name, _options(spec)) for section in ("required", "optional")
            for name, spec in node_info["input"].get(section, {}).items() if _is_widget(spec)]


def widget_slots(node_info: dict) -> list[tuple[str, str]]:
    """The slots of a UI node's ``widgets_values``, in order, as ``(input name, kind)``; kind is ``value`` (the
    input itself), ``control`` (control after generate), ``filter`` (its filter list, combos only) or
    ``upload`` (the upload button; input name ``upload``)."""
    slots: list[tuple[str, str]] = []
    for section in ("required", "optional"):
        items = node_info["input"].get(section, {}).items()
        for name, spec in items:
            if not _is_widget(spec):
                continue
            slots.append((name, "value"))
            if _has_control(name, spec):
                slots.append((name, "control"))
                if _is_combo(spec):
                    slots.append((name, "filter"))
        if section == "required" and any(_is_combo(spec) and any(_options(spec).get(f) is True for f in UPLOAD_FLAGS)
                                         for _, spec in items):
            slots.append(("upload", "upload"))  # appended to the required inputs by the frontend
    return slots


def ui_widget_values(inputs: dict, node_info: dict, control: str = "fixed") -> list:
    """``widgets_values`` for API ``inputs`` (linked widget inputs get their default, as the frontend keeps)."""
    values = []
    options = dict(widget_inputs(node_info))
    for name, kind in widget_slots(node_info):
        if kind == "value":
            value = inputs.get(name, options[name].get("default"))
            values.append(options[name].get("default") if isinstance(value, list) else value)
        elif kind == "control":
            values.append(control)
        elif kind == "filter":
            values.append("")
        else:
            values.append("image")
    return values


def api_widget_values(widgets_values: list | dict, node_info: dict) -> dict:
    """The API inputs held in a UI node's ``widgets_values`` (UI-only slots dropped)."""
    if isinstance(widgets_values, dict):  # some extensions save a dict keyed by widget name
        return {name: widgets_values[name] for name, _ in widget_inputs(node_info) if name in widgets_values}
    slots = widget_slots(node_info)
    if len(widgets_values) != len(slots):
        raise ValueError(f"{len(widgets_values)} widget values for {len(slots)} slots "
                         f"({[f'{n}:{k}' for n, k in slots]}): {widgets_values}")
    out = {}
    for (name, kind), value in zip(slots, widgets_values, strict=True):
        if kind == "value":
            out[name] = value
        elif kind == "control" and value not in CONTROL_VALUES:
            raise ValueError(f"control-after-generate slot of {name!r} holds {value!r}: values shifted?")
    return out


# -- UI -> API -----------------------------------------------------------------------------------------------------
def ui_to_api(ui: dict, object_info: dict) -> dict:
    links = {link[0]: link for link in ui["links"]}
    api = {}
    for node in ui["nodes"]:
        if node["type"] in UI_ONLY or node.get("mode", 0) in (2, 4):  # muted / bypassed
            continue
        info = object_info[node["type"]]
        inputs = api_widget_values(node.get("widgets_values") or [], info)
        for slot in node.get("inputs", []):
            if slot.get("link") is not None:
                _, src, src_slot, *_ = links[slot["link"]]
                inputs[slot["name"]] = [str(src), src_slot]
        api[str(node["id"])] = {"class_type": node["type"], "inputs": inputs,
                                "_meta": {"title": node.get("title", info["display_name"])}}
    return api


# -- API -> UI -----------------------------------------------------------------------------------------------------
def node_size(class_type: str, info: dict | None, text: str = "", title: str = "") -> tuple[int, int]:
    """A size at least as large as the frontend computes for the node, plus room for its previews."""
    if info is None:  # a note: its markdown at ~16 px a line, ~60 characters a line, plus a heading
        lines = sum(1 + len(line) // 60 for line in text.strip().splitlines())
        w, h = MIN_SIZE["MarkdownNote"]
        return w, max(h, 16 * lines + 70)
    widgets = len(widget_slots(info))
    sockets = sum(1 for section in ("required", "optional")
                  for spec in info["input"].get(section, {}).values() if not _is_widget(spec))
    rows = max(sockets, len(info["output"]), 1)
    h = rows * SLOT_H + widgets * WIDGET_H + 14 + CUSTOM_WIDGET_H.get(class_type, 0) + PREVIEW_H.get(class_type, 0)
    w, min_h = MIN_SIZE.get(class_type, (NODE_W, 0))
    return max(w, round(len(title) * TITLE_CHAR_W) + 20), max(h, min_h)


def load_templates() -> list[dict]:
    """The shipped workflows in their intended order: name, title, description, groups (see templates.toml)."""
    return tomllib.loads(TEMPLATES.read_text())["workflow"]


def _layout(sizes: dict[str, tuple[int, int]], groups: list[dict]) -> tuple[dict, list[dict]]:
    """Positions for every node id (strings) and the UI group boxes. Each group is a run of columns; groups follow
    each other left to right, or stack under the previous one (``below``)."""
    pos: dict[str, list[int]] = {}
    boxes = []
    right = 0  # where the next group to the right starts
    left = top = 0
    for i, group in enumerate(groups):
        if group.get("below") and i:
            top = boxes[-1]["bounding"][1] + boxes[-1]["bounding"][3] + GROUP_GAP
        else:
            left, top = (right + GROUP_GAP if i else 0), 0
        x = left + GROUP_PAD
        bottom = top
        for column in group["columns"]:
            width = max(sizes[str(n)][0] for n in column)
            y = top + GROUP_HEAD + TITLE_H
            for n in column:
                if str(n) in pos:
                    raise ValueError(f"node {n} is in two places of the layout")
                pos[str(n)] = [x, y]
                y += sizes[str(n)][1] + GAP_Y + TITLE_H
            bottom = max(bottom, y - GAP_Y - TITLE_H)
            x += width + GAP_X
        x += GROUP_PAD - GAP_X
        boxes.append({"id": len(boxes) + 1, "title": group["title"],
                      "bounding": [left, top, x - left, bottom + GROUP_PAD - top],
                      "color": group.get("color", "#3f789e"), "font_size": 24, "flags": {}})
        right = max(right, x)
    missing = set(sizes) - set(pos)
    if missing:
        raise ValueError(f"nodes in no group of the layout: {sorted(missing)}")
    return pos, boxes


def api_to_ui(api: dict, object_info: dict, notes: list[str] = (), groups: list[dict] | None = None,
              control: str = "fixed", extra: dict | None = None) -> dict:
    """A UI workflow for an API graph: same ids, positional widget values (every seed's control after generate set
    to ``control``), laid out in ``groups`` (``[{title, columns: [[id, ...], ...]}]``; notes are ``note1``,
    ``note2``, ...) or, without groups, in one column per graph depth."""
    out_links: dict[tuple[str, int], list[int]] = {}
    links = []
    link_id = 0
    nodes = []
    note_ids = {f"note{i + 1}": max(int(n) for n in api) + i + 1 for i in range(len(notes))}
    sizes = {nid: node_size(api[nid]["class_type"], object_info[api[nid]["class_type"]],
                            title=api[nid].get("_meta", {}).get("title", "")) for nid in api}
    sizes.update({key: node_size("MarkdownNote", None, text) for key, text in zip(note_ids, notes, strict=True)})
    if groups is None:
        groups = [{"title": "", "columns": columns} for columns in [_depth_columns(api)]]
        groups.append({"title": "Notes", "columns": [list(note_ids)]}) if notes else None
    pos, boxes = _layout(sizes, groups)
    if groups and not groups[0]["title"]:
        boxes = [b for b in boxes if b["title"]]

    # links first, so that every output knows its link ids
    inputs_of: dict[str, list[dict]] = {}
    for nid in sorted(api, key=int):
        info = object_info[api[nid]["class_type"]]
        widget_names = {name for name, _ in widget_inputs(info)}
        sockets = []
        for section in ("required", "optional"):
            for name, spec in info["input"].get(section, {}).items():
                value = api[nid]["inputs"].get(name)
                if name in widget_names and not isinstance(value, list):
                    continue
                slot = {"name": name, "type": spec[0] if isinstance(spec[0], str) else "COMBO", "link": None}
                if name in widget_names:
                    slot["widget"] = {"name": name}
                if isinstance(value, list):
                    link_id += 1
                    links.append([link_id, int(value[0]), value[1], int(nid), len(sockets), slot["type"]])
                    out_links.setdefault((value[0], value[1]), []).append(link_id)
                    slot["link"] = link_id
                sockets.append(slot)
        inputs_of[nid] = sockets

    for order, nid in enumerate(sorted(api, key=int)):
        node = api[nid]
        info = object_info[node["class_type"]]
        outputs = [{"name": oname, "type": otype, "slot_index": i, "links": out_links.get((nid, i), [])}
                   for i, (oname, otype) in enumerate(zip(info["output_name"], info["output"], strict=True))]
        nodes.append({"id": int(nid), "type": node["class_type"], "pos": pos[nid], "size": list(sizes[nid]),
                      "flags": {}, "order": order, "mode": 0, "inputs": inputs_of[nid], "outputs": outputs,
                      "properties": {"Node name for S&R": node["class_type"]},
                      "widgets_values": ui_widget_values(node["inputs"], info, control),
                      "title": node.get("_meta", {}).get("title", info["display_name"])})
    for key, text in zip(note_ids, notes, strict=True):
        nodes.append({"id": note_ids[key], "type": "MarkdownNote", "pos": pos[key], "size": list(sizes[key]),
                      "flags": {}, "order": len(nodes), "mode": 0, "inputs": [], "outputs": [],
                      "properties": {}, "widgets_values": [text.strip()], "title": "Note", "color": "#432",
                      "bgcolor": "#653"})
    links.sort()
    return {"last_node_id": max(n["id"] for n in nodes), "last_link_id": link_id, "nodes": nodes, "links": links,
            "groups": boxes, "config": {}, "extra": dict(extra or {}), "version": 0.4}


def _depth_columns(api: dict) -> list[list[str]]:
    depth: dict[str, int] = {}

    def node_depth(nid: str) -> int:
        if nid not in depth:
            srcs = [v[0] for v in api[nid]["inputs"].values() if isinstance(v, list)]
            depth[nid] = 1 + max((node_depth(s) for s in srcs), default=-1)
        return depth[nid]

    columns: dict[int, list[str]] = {}
    for nid in sorted(api, key=int):
        columns.setdefault(node_depth(nid), []).append(nid)
    return [columns[d] for d in sorted(columns)]


def check_flow(ui: dict) -> list[str]:
    """Links that run right to left, or upward within a column (the layout promises left-to-right flow)."""
    by_id = {n["id"]: n for n in ui["nodes"]}
    bad = []
    for _, src, _, dst, *_ in ui["links"]:
        (sx, sy), (dx, dy) = by_id[src]["pos"], by_id[dst]["pos"]
        if sx > dx or (sx == dx and sy > dy):
            bad.append(f"{src} -> {dst}")
    return bad


def regenerate(object_info: dict) -> list[Path]:
    """Write ``workflows/NAME.json`` (UI) from ``workflows/api/NAME.json`` for every workflow of templates.toml,
    with ``workflows/notes/NAME.md`` (sections split at lines of ``---``) as note nodes."""
    written = []
    templates = load_templates()
    names = sorted(p.stem for p in (WORKFLOWS / "api").glob("*.json"))
    if sorted(t["name"] for t in templates) != names:
        raise ValueError(f"templates.toml lists {sorted(t['name'] for t in templates)}, workflows/api has {names}")
    for order, template in enumerate(templates, 1):
        name = template["name"]
        api = json.loads((WORKFLOWS / "api" / f"{name}.json").read_text())
        note_path = WORKFLOWS / "notes" / f"{name}.md"
        notes = note_path.read_text().split("\n---\n") if note_path.is_file() else []
        extra = {"emo_nodes": {"title": template["title"], "description": template["description"],
                               "order": order}}
        ui = api_to_ui(api, object_info, notes, template["groups"], extra=extra)
        bad = check_flow(ui)
        if bad:
            raise ValueError(f"{name}: links against the left-to-right flow: {bad}")
        out = WORKFLOWS / f"{name}.json"
        out.write_text(json.dumps(ui, indent=1) + "\n")
        written.append(out)
    return written


if __name__ == "__main__":
    from comfy_host import ComfyHost

    with ComfyHost() as host:
        for path in regenerate(host.get("/object_info")):
            print(path.relative_to(ROOT))
