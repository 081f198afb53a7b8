"""The shipped workflows in the real ComfyUI frontend (headless Chromium): what an artist sees in the first minutes.

Every UI workflow loads with each widget holding its API twin's value (a missing "control after generate" slot
shifts every later value), the published seeds are fixed, no two nodes overlap, fit view stays above the zoom
where the canvas stops drawing text, the templates endpoint lists every workflow with a JPEG thumbnail, and one
EmotiCrafter workflow (on the tiny models) runs from the Run button and shows its image.

Uses the host at ``EMO_BROWSER_URL`` when set, else the session's host (tests/conftest.py). Needs
``/usr/bin/chromium`` and the ``playwright`` package (see browser.py); screenshots go to ``artifacts/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.request
from pathlib import Path

import pytest
from browser import ARTIFACTS, VIEWPORT, chromium_available, open_page

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "workflows"
NAMES = sorted(p.stem for p in (WORKFLOWS / "api").glob("*.json"))
UI_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
RUN_WORKFLOW = "emoticrafter_text_to_image"
MIN_SCALE = 0.6  # the target; the hard floor is the frontend's own low-quality threshold (~0.57 at 1600x1000)

pytestmark = pytest.mark.skipif(not chromium_available(), reason="needs playwright and /usr/bin/chromium")

# Page-side: what the canvas holds for every node after loading a workflow.
READ_GRAPH = """() => {
  const title = LiteGraph.NODE_TITLE_HEIGHT;
  return app.graph.nodes.map((n) => ({
    id: n.id, type: n.type, title: n.title,
    rect: [n.pos[0], n.pos[1] - title, n.size[0], n.size[1] + title],
    widgets: (n.widgets || []).map((w) => ({name: w.name, type: w.type, value: w.value,
                                            serialize: w.serialize !== false})),
    inputs: (n.inputs || []).map((s) => ({name: s.name, link: s.link})),
  }));
}"""
FIT_VIEW = """async () => {
  // the command animates (350 ms) to the bounds of every node and group; wait until the scale settles
  await app.extensionManager.command.execute('Comfy.Canvas.FitView');
  let last = null;
  for (let i = 0; i < 50 && app.canvas.ds.scale !== last; i++) {
    last = app.canvas.ds.scale;
    await new Promise((r) => setTimeout(r, 200));
  }
  app.canvas.draw(true, true);
  return {scale: app.canvas.ds.scale, lowQuality: app.canvas.low_quality,
          threshold: app.canvas._lowQualityZoomThreshold ?? null,
          canvas: [app.canvas.canvas.clientWidth, app.canvas.canvas.clientHeight]};
}"""


@pytest.fixture(scope="module")
def url(request):
    """A running host given by EMO_BROWSER_URL, else the session's host (tests/conftest.py: tiny models)."""
    if os.environ.get("EMO_BROWSER_URL"):
        return os.environ["EMO_BROWSER_URL"].rstrip("/")
    return request.getfixturevalue("host").url


def get_json(url: str, path: str):
    with urllib.request.urlopen(url + path, timeout=30) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def object_info(url) -> dict:
    return get_json(url, "/object_info")


@pytest.fixture(scope="module")
def page(browser, url):
    with open_page(browser, url) as p:
        yield p


def api_of(name: str) -> dict:
    return json.loads((WORKFLOWS / "api" / f"{name}.json").read_text())


def ui_of(name: str) -> dict:
    return json.loads((WORKFLOWS / f"{name}.json").read_text())


def load(page, ui: dict) -> list[dict]:
    page.js("async (wf) => { await app.loadGraphData(wf); app.canvas.draw(true, true); }", ui)
    page.page.wait_for_timeout(300)  # DOM widgets (text areas, previews) settle their sizes
    page.js("() => app.canvas.draw(true, true)")
    return page.js(READ_GRAPH)


def overlaps(nodes: list[dict]) -> list[str]:
    found = []
    for i, a in enumerate(nodes):
        ax, ay, aw, ah = a["rect"]
        for b in nodes[i + 1:]:
            bx, by, bw, bh = b["rect"]
            if ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah:
                found.append(f"{a['id']} {a['title']!r} {a['rect']} overlaps {b['id']} {b['title']!r} {b['rect']}")
    return found


@pytest.mark.parametrize("name", NAMES)
def test_widgets_hold_the_api_values(page, object_info, name):
    """Every widget of every node equals its API twin's input; each control-after-generate is fixed."""
    api = api_of(name)
    nodes = {str(n["id"]): n for n in load(page, ui_of(name))}
    assert sorted(k for k, n in nodes.items() if n["type"] not in UI_ONLY) == sorted(api, key=str)
    problems = []
    for nid, spec in api.items():
        node = nodes[nid]
        assert node["type"] == spec["class_type"]
        widgets = {w["name"]: w for w in node["widgets"]}
        for key, value in spec["inputs"].items():
            if isinstance(value, list):  # a link: the socket must be connected
                linked = [s for s in node["inputs"] if s["name"] == key and s["link"] is not None]
                if not linked:
                    problems.append(f"{nid}.{key}: not linked")
                continue
            if key not in widgets:
                problems.append(f"{nid}.{key}: no widget")
            elif widgets[key]["value"] != value and not (
                    isinstance(value, float) and abs(widgets[key]["value"] - value) < 1e-9):
                problems.append(f"{nid}.{key}: canvas {widgets[key]['value']!r} != api {value!r}")
        for w in node["widgets"]:
            if w["name"] == "control_after_generate":
                if w["value"] != "fixed":
                    problems.append(f"{nid}: control after generate is {w['value']!r}, not 'fixed'")
    assert not problems, f"{name}:\n" + "\n".join(problems)
    # what the Run button would send is the API twin itself (less UI-only extras such as PreviewAny's "preview",
    # which the host ignores)
    prompt = page.js("async () => (await app.graphToPrompt()).output")

    def declared(node):
        spec = object_info[node["class_type"]]["input"]
        names = {*spec.get("required", {}), *spec.get("optional", {})}
        return {k: v for k, v in node["inputs"].items() if k in names}

    sent = {k: {"class_type": v["class_type"], "inputs": declared(v)} for k, v in prompt.items()}
    assert sent == {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in api.items()}


@pytest.mark.parametrize("name", NAMES)
def test_layout_has_no_overlaps_and_reads_at_fit_view(page, name):
    nodes = load(page, ui_of(name))
    assert not overlaps(nodes), f"{name}:\n" + "\n".join(overlaps(nodes))
    groups = page.js("() => app.graph.groups.map((g) => ({title: g.title, rect: [...g._bounding]}))")
    assert groups and all(g["title"] for g in groups), f"{name}: untitled or no groups"
    for n in nodes:  # every node sits inside a group, title bar included
        x, y, w, h = n["rect"]
        assert any(gx <= x and gy <= y and x + w <= gx + gw and y + h <= gy + gh
                   for gx, gy, gw, gh in (g["rect"] for g in groups)), f"{name}: node {n['id']} outside its group"
    fit = page.js(FIT_VIEW)
    page.screenshot(f"workflow_{name}_fit")
    record_scale(name, fit["scale"])
    assert not fit["lowQuality"], f"{name}: fit view {fit} is below the zoom where the canvas draws text"
    assert fit["scale"] >= MIN_SCALE, f"{name}: fit-view scale {fit['scale']:.3f} < {MIN_SCALE}"


def record_scale(name: str, scale: float) -> None:
    path = ARTIFACTS / "fit_view_scales.json"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    scales = {}
    with contextlib.suppress(OSError, ValueError):
        scales = json.loads(path.read_text())
    scales[name] = round(scale, 4)
    scales["_viewport"] = f"{VIEWPORT['width']}x{VIEWPORT['height']}"
    path.write_text(json.dumps(scales, indent=1, sort_keys=True) + "\n")


def test_templates_list_every_workflow_with_a_jpeg_thumbnail(url, page):
    listing = get_json(url, "/workflow_templates")
    ours = [mod for mod, names in listing.items() if set(NAMES) <= set(names)]
    assert ours, f"no template module lists all of {NAMES}: {listing}"
    module = ours[0]
    assert sorted(listing[module]) == NAMES
    for name in NAMES:
        with urllib.request.urlopen(f"{url}/api/workflow_templates/{module}/{name}.jpg", timeout=30) as r:
            assert r.status == 200 and r.headers["Content-Type"] == "image/jpeg", name
            assert r.read(3) == b"\xff\xd8\xff", f"{name}.jpg is not a JPEG"
    # the browser decodes them too
    sizes = page.js("""async ([module, names]) => Promise.all(names.map((n) => new Promise((ok) => {
        const img = new Image();
        img.onload = () => ok([n, img.naturalWidth, img.naturalHeight]);
        img.onerror = () => ok([n, 0, 0]);
        img.src = `api/workflow_templates/${module}/${n}.jpg`;
    })))""", [module, NAMES])
    assert all(w > 0 and h > 0 for _, w, h in sizes), sizes


def test_run_button_shows_the_image(url, page, object_info):
    from tiny_graph import for_tiny_models
    from workflow_format import api_to_ui, load_templates

    template = next(t for t in load_templates() if t["name"] == RUN_WORKFLOW)
    notes = (WORKFLOWS / "notes" / f"{RUN_WORKFLOW}.md").read_text().split("\n---\n")
    api = for_tiny_models(api_of(RUN_WORKFLOW))
    ui = api_to_ui(api, object_info, notes, template["groups"])
    load(page, ui)
    save_id = next(k for k, v in api.items() if v["class_type"] == "SaveImage")
    page.page.get_by_role("button", name="Run", exact=True).click()
    page.page.wait_for_function(f"() => app.nodeOutputs['{save_id}']?.images?.length > 0", timeout=240_000)
    page.js(FIT_VIEW)
    drawn = f"app.graph.getNodeById({save_id}).imgs?.[0]?.naturalWidth > 0"
    page.page.wait_for_function(  # the node loads and draws its image (a draw per poll keeps the canvas going)
        f"() => {{ app.canvas.draw(true, true); return {drawn}; }}", timeout=30_000)
    shown = page.js(f"""() => {{
        const n = app.graph.getNodeById({save_id});
        return {{imgs: (n.imgs || []).map((i) => i.naturalWidth), images: app.nodeOutputs['{save_id}'].images}};
    }}""")
    assert shown["imgs"] and shown["imgs"][0] > 0, shown
    nodes = page.js(READ_GRAPH)
    assert not overlaps(nodes), "after the run:\n" + "\n".join(overlaps(nodes))
    page.screenshot(f"workflow_{RUN_WORKFLOW}_after_run")
    assert not page.our_errors(), page.our_errors()


def test_templates_dialog_shows_the_thumbnails(url, page):
    """The template browser shows the pack's thumbnails (runs last: it leaves a dialog behind if it fails)."""
    page.js("() => app.extensionManager.command.execute('Comfy.BrowseTemplates')")
    page.page.wait_for_timeout(1500)
    module = next(m for m, names in get_json(url, "/workflow_templates").items() if set(NAMES) <= set(names))
    extension = page.page.get_by_text(module, exact=True)
    if extension.count():  # the pack's own category, where every card is ours
        extension.first.click()
        page.page.wait_for_timeout(1500)
    # the cards show each thumbnail through a blob: URL of the fetched file; ours are 512 px squares. A card is the
    # largest ancestor of its image holding no other thumbnail; its text names the workflow.
    cards = """() => [...document.querySelectorAll('img')].filter((i) => i.naturalWidth === 512).map((i) => {
        const count = (el) => [...el.querySelectorAll('img')].filter((j) => j.naturalWidth === 512).length;
        let card = i;
        while (card.parentElement && count(card.parentElement) === 1) card = card.parentElement;
        return [card.innerText, i.naturalWidth]; })"""
    # the dialog loads a card's image only when it scrolls into view: scroll down a screen at a time, keeping every
    # card seen
    seen: dict[str, int] = {}
    for _ in range(2 + len(NAMES) // 4):
        with contextlib.suppress(Exception):  # wait until the visible cards' images have loaded
            page.page.wait_for_function(f"() => ({cards})().length > 0", timeout=10_000)
        for text, width in page.js(cards):
            for name in NAMES:
                if name in text.split():
                    seen[name] = width
        page.js("""() => { const img = [...document.querySelectorAll('img')].find((i) => i.naturalWidth === 512);
            let el = img?.parentElement; while (el && el.scrollHeight <= el.clientHeight + 1) el = el.parentElement;
            if (el) el.scrollTop += el.clientHeight; }""")
        page.page.wait_for_timeout(800)
    imgs = sorted(seen.items())
    page.screenshot("templates_dialog")
    page.page.keyboard.press("Escape")  # best effort: this test runs last on the shared page
    assert sorted(seen) == NAMES and all(w > 0 for _, w in imgs), imgs
