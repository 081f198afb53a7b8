"""The V-A pad and the emotion-group row in a real ComfyUI frontend (headless Chromium).

Runs once per frontend (the installed one and the newest, see conftest.py) on a real host with this plugin.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from browser import open_page
from paths import ROOT

REPO = Path(__file__).resolve().parents[2]


# Page-side helpers, defined once per page: node creation at a fixed view, pad geometry to client pixels.
HELPERS = """() => {
  window.__emo = {
    add(type, pos = [300, 200]) {
      const n = LiteGraph.createNode(type);
      n.pos = pos;
      app.graph.add(n);
      app.canvas.ds.scale = 1;
      app.canvas.ds.offset = [0, 0];
      app.canvas.setDirty(true, true);
      app.canvas.draw(true, true);
      return n.id;
    },
    node: (id) => app.graph.getNodeById(id),
    pad: (id) => app.graph.getNodeById(id).widgets.find((w) => w.type === 'emo_va_pad'),
    values: (id) => Object.fromEntries(app.graph.getNodeById(id).widgets.map((w) => [w.name, w.value])),
    set(id, name, v) {
      const n = app.graph.getNodeById(id);
      const w = n.widgets.find((w) => w.name === name);
      w.value = v;
      w.callback?.(v, app.canvas, n);
      app.canvas.draw(true, true);
    },
    // client (page) pixel of pad coordinate (v, a)
    at(id, v, a) {
      app.canvas.draw(true, true);
      const n = app.graph.getNodeById(id);
      const L = window.__emo.pad(id).layout;
      const unit = L.size / 6;
      const g = [n.pos[0] + L.x + (v + 3) * unit, n.pos[1] + L.y + (3 - a) * unit];
      const c = app.canvas.ds.convertOffsetToCanvas(g);
      const r = app.canvas.canvas.getBoundingClientRect();
      return [r.left + c[0], r.top + c[1]];
    },
    // RGBA of the canvas under pad coordinate (v, a), after a fresh draw
    pixel(id, v, a) {
      const [x, y] = window.__emo.at(id, v, a);
      const r = app.canvas.canvas.getBoundingClientRect();
      const k = app.canvas.canvas.width / r.width;
      return Array.from(app.canvas.canvas.getContext('2d')
        .getImageData(Math.round((x - r.left) * k), Math.round((y - r.top) * k), 1, 1).data);
    },
    async prompt(id) {
      const p = await app.graphToPrompt();
      return p.output[String(id)].inputs;
    },
  };
}"""

ORANGE = (255, 140, 42)


@pytest.fixture(scope="session")
def page(browser, frontend_url):
    with open_page(browser, frontend_url) as p:
        p.js(HELPERS)
        yield p


@pytest.fixture
def app_page(page):
    page.js("() => { app.graph.clear(); app.canvas.draw(true, true); }")
    page.errors.clear()
    yield page
    assert page.our_errors() == []


def click(page, id_, v, a, *, shift=False):
    page.page.wait_for_timeout(400)  # not a double-click with an earlier press
    x, y = page.js("([id, v, a]) => __emo.at(id, v, a)", [id_, v, a])
    if shift:
        page.page.keyboard.down("Shift")
    page.page.mouse.click(x, y)
    if shift:
        page.page.keyboard.up("Shift")


def drag(page, id_, start, end):
    page.page.wait_for_timeout(400)  # not a double-click with an earlier press
    x0, y0 = page.js("([id, v, a]) => __emo.at(id, v, a)", [id_, *start])
    x1, y1 = page.js("([id, v, a]) => __emo.at(id, v, a)", [id_, *end])
    page.page.mouse.move(x0, y0)
    page.page.mouse.down()
    page.page.mouse.move(x1, y1, steps=8)
    page.page.mouse.up()


def is_orange(rgba):
    return all(abs(c - o) < 40 for c, o in zip(rgba[:3], ORANGE, strict=True))


def test_pad_adds_nothing_to_saved_or_queued_values(app_page):
    nid = app_page.js("() => __emo.add('EmoNodes_ValenceArousal')")
    info = app_page.js("""(id) => { const n = __emo.node(id);
        return {wv: n.serialize().widgets_values, size: [...n.size], pad: __emo.pad(id).layout.size}; }""", nid)
    assert info["wv"] == [0.0, 0.0, False]
    assert info["pad"] >= 200  # visible by default
    inputs = app_page.js("(id) => __emo.prompt(id)", nid)
    assert inputs == {"valence": 0.0, "arousal": 0.0, "extrapolate": False}
    app_page.screenshot("va_pad_default")


def test_click_and_drag_set_the_widgets(app_page):
    nid = app_page.js("() => __emo.add('EmoNodes_ValenceArousal')")
    click(app_page, nid, 1.5, -1.0)
    vals = app_page.js("(id) => __emo.values(id)", nid)
    assert (vals["valence"], vals["arousal"]) == (pytest.approx(1.5, abs=0.051), pytest.approx(-1.0, abs=0.051))
    drag(app_page, nid, (vals["valence"], vals["arousal"]), (-2.0, 2.2))
    vals = app_page.js("(id) => __emo.values(id)", nid)
    assert (vals["valence"], vals["arousal"]) == (pytest.approx(-2.0, abs=0.051), pytest.approx(2.2, abs=0.051))
    inputs = app_page.js("(id) => __emo.prompt(id)", nid)
    assert inputs == {"valence": vals["valence"], "arousal": vals["arousal"], "extrapolate": False}
    assert all(isinstance(inputs[k], (int, float)) for k in ("valence", "arousal"))
    click(app_page, nid, 1.2, 0.8, shift=True)  # snaps to 0.5
    vals = app_page.js("(id) => __emo.values(id)", nid)
    assert (vals["valence"], vals["arousal"]) == (1.0, 1.0)
    app_page.screenshot("va_pad_after_drag")


def test_the_emotion_distribution_node_has_the_pad_too(app_page):
    nid = app_page.js("() => __emo.add('EmoNodes_VAToEmotions')")
    click(app_page, nid, -2.0, -1.5)
    inputs = app_page.js("(id) => __emo.prompt(id)", nid)
    assert (inputs["valence"], inputs["arousal"]) == (pytest.approx(-2.0, abs=0.051), pytest.approx(-1.5, abs=0.051))
    assert set(inputs) == {"valence", "arousal", "sigma"}  # the pad adds nothing to the queued inputs


def test_arrow_keys_nudge_the_focused_pad(app_page):
    nid = app_page.js("() => __emo.add('EmoNodes_ValenceArousal')")
    click(app_page, nid, 1.0, 1.0, shift=True)
    for key in ("ArrowRight", "ArrowRight", "ArrowDown"):
        app_page.page.keyboard.press(key)
    vals = app_page.js("(id) => __emo.values(id)", nid)
    assert (vals["valence"], vals["arousal"]) == (1.1, 0.95)
    # a click on the empty canvas takes the focus away
    app_page.page.mouse.click(1200, 800)
    app_page.page.keyboard.press("ArrowRight")
    assert app_page.js("(id) => __emo.values(id).valence", nid) == 1.1


def test_typed_values_move_the_point(app_page):
    nid = app_page.js("() => __emo.add('EmoNodes_ValenceArousal')")
    assert is_orange(app_page.js("(id) => __emo.pixel(id, 0, 0)", nid))
    app_page.js("(id) => { __emo.set(id, 'valence', 2); __emo.set(id, 'arousal', -1.5); }", nid)
    assert is_orange(app_page.js("(id) => __emo.pixel(id, 2, -1.5)", nid))
    assert not is_orange(app_page.js("(id) => __emo.pixel(id, 0, 0)", nid))


def test_double_click_prompt_and_clamping(app_page):
    nid = app_page.js("() => __emo.add('EmoNodes_ValenceArousal')")
    x, y = app_page.js("(id) => __emo.at(id, 0.5, 0.5)", nid)
    app_page.page.mouse.dblclick(x, y)
    box = app_page.page.locator(".graphdialog input.value")
    box.wait_for(timeout=5000)
    box.fill("5, -0.75")
    box.press("Enter")
    vals = app_page.js("(id) => __emo.values(id)", nid)
    assert (vals["valence"], vals["arousal"]) == (3.0, -0.75)  # clamped: extrapolate is off
    app_page.js("(id) => __emo.set(id, 'extrapolate', true)", nid)
    app_page.page.mouse.dblclick(x, y)
    box.wait_for(timeout=5000)
    box.fill("5 -4")
    box.press("Enter")
    vals = app_page.js("(id) => __emo.values(id)", nid)
    assert (vals["valence"], vals["arousal"]) == (5.0, -4.0)  # the widget's own limits (+-10) apply
    app_page.screenshot("va_pad_extrapolated")


def test_save_and_reload_keep_values(app_page):
    ids = app_page.js("""() => [__emo.add('EmoNodes_ValenceArousal', [300, 200]),
                               __emo.add('EmoNodes_EmotionGrid', [700, 150]),
                               __emo.add('EmoNodes_EmotionPath', [1050, 150]),
                               __emo.add('EmoNodes_IEILoop', [50, 600])]""")
    click(app_page, ids[0], -1.5, 2.0, shift=True)
    # saved as the frontend saves it (JSON), then loaded back
    before, reloaded = app_page.js("""async () => {
        const saved = JSON.stringify(app.graph.serialize());
        app.graph.clear();
        await app.loadGraphData(JSON.parse(saved));
        app.canvas.draw(true, true);
        return [JSON.parse(saved), app.graph.serialize()]; }""")
    wv = {str(n["id"]): n["widgets_values"] for n in before["nodes"]}  # ids: numbers or strings by version
    assert {str(n["id"]): n["widgets_values"] for n in reloaded["nodes"]} == wv
    assert wv[str(ids[0])] == [-1.5, 2.0, False]
    assert len(wv[str(ids[1])]) == 7 and len(wv[str(ids[2])]) == 6
    pads = app_page.js("(ids) => ids.map(id => __emo.node(id).widgets.filter(w => w.type.startsWith('emo_')).length)",
                       ids)
    assert pads == [1, 1, 1, 1]  # not added twice on load


def test_example_workflow_loads_unchanged(app_page):
    wf = json.loads((REPO / "workflows" / "emoticrafter_text_to_image.json").read_text())
    out = app_page.js("""async (wf) => { await app.loadGraphData(structuredClone(wf));
        app.extensionManager?.command?.execute?.('Comfy.Canvas.FitView'); app.canvas.draw(true, true);
        return app.graph.serialize(); }""", wf)
    ours = {str(n["id"]): n["widgets_values"] for n in wf["nodes"] if n["type"].startswith("EmoNodes_")}
    assert {str(n["id"]): n["widgets_values"] for n in out["nodes"] if str(n["id"]) in ours} == ours
    app_page.screenshot("workflow_text_to_image")


def test_resize_and_collapse(app_page):
    nid = app_page.js("() => __emo.add('EmoNodes_ValenceArousal')")
    sizes = app_page.js("""(id) => { const n = __emo.node(id), out = [];
        for (const w of [200, 420]) { n.setSize([w, n.size[1] + 200]); app.canvas.draw(true, true);
                                      out.push(__emo.pad(id).layout.size); }
        n.collapse(); app.canvas.draw(true, true); n.collapse(); app.canvas.draw(true, true);
        return out; }""", nid)
    assert sizes[0] == 200 - 20 and sizes[1] == 420 - 20  # the square follows the width
    app_page.js("(id) => __emo.node(id).collapse()", nid)
    app_page.page.keyboard.press("ArrowRight")  # no focused pad on a collapsed node: nothing happens
    app_page.screenshot("va_pad_collapsed")


def test_grid_and_path_handles(app_page):
    gid = app_page.js("() => __emo.add('EmoNodes_EmotionGrid', [300, 150])")
    drag(app_page, gid, (3.0, -3.0), (1.0, -1.0))  # the last cell's corner
    vals = app_page.js("(id) => __emo.values(id)", gid)
    assert (vals["valence_to"], vals["arousal_to"]) == (pytest.approx(1.0, abs=0.051), pytest.approx(-1.0, abs=0.051))
    assert (vals["valence_from"], vals["arousal_from"]) == (-3.0, 3.0)
    inputs = app_page.js("(id) => __emo.prompt(id)", gid)
    assert set(inputs) == {"valence_from", "valence_to", "columns", "arousal_from", "arousal_to", "rows",
                           "extrapolate"}
    click(app_page, gid, 0.0, 0.0)  # away from both corners: nothing moves
    assert app_page.js("(id) => __emo.values(id)", gid) == vals
    pid = app_page.js("() => __emo.add('EmoNodes_EmotionPath', [750, 150])")
    drag(app_page, pid, (2.0, 2.0), (0.5, 2.5))
    vals = app_page.js("(id) => __emo.values(id)", pid)
    assert (vals["valence_end"], vals["arousal_end"]) == (pytest.approx(0.5, abs=0.051), pytest.approx(2.5, abs=0.051))
    app_page.screenshot("grid_and_path")


def test_emotion_groups_row_sets_the_target(app_page):
    nid = app_page.js("() => __emo.add('EmoNodes_EmotionDirection', [300, 200])")
    hit = app_page.js("""(id) => { app.canvas.draw(true, true); const n = __emo.node(id);
        const w = n.widgets.find(w => w.type === 'emo_emotion_groups');
        // the 'fear' chip: third of the negative row
        const chipW = (n.size[0] - 30 - 56) / 4, g = [n.pos[0] + 15 + 56 + 2.5 * chipW, n.pos[1] + w.y + 2 + 20 + 8];
        const c = app.canvas.ds.convertOffsetToCanvas(g), r = app.canvas.canvas.getBoundingClientRect();
        return [r.left + c[0], r.top + c[1]]; }""", nid)
    app_page.page.mouse.click(*hit)
    assert app_page.js("(id) => __emo.values(id).target", nid) == "fear"
    assert app_page.js("(id) => __emo.node(id).serialize().widgets_values", nid) == ["fear"]
    assert app_page.js("(id) => __emo.prompt(id)", nid) == {"target": "fear"}
    app_page.screenshot("emotion_groups")


def test_nodes_2_mode(browser, page, frontend_url):
    """Nodes 2.0: the pad is drawn in the widget's own canvas where the frontend gives it room (1.58), else a
    one-line summary (1.32); either way the plain widgets keep working and nothing extra is saved."""
    with open_page(browser, frontend_url, vue_nodes=True) as p:
        p.js(HELPERS)
        p.js("() => app.graph.clear()")
        nid = p.js("() => __emo.add('EmoNodes_ValenceArousal', [300, 150])")
        did = p.js("() => __emo.add('EmoNodes_EmotionDirection', [700, 150])")
        p.page.wait_for_timeout(1500)  # Vue mounts the nodes
        p.js("(id) => __emo.set(id, 'valence', 1.25)", nid)
        p.js("(id) => __emo.set(id, 'target', 'fear')", did)
        assert p.js("(id) => __emo.prompt(id)", nid) == {"valence": 1.25, "arousal": 0.0, "extrapolate": False}
        assert p.js("(id) => __emo.node(id).serialize().widgets_values", nid) == [1.25, 0.0, False]
        assert p.js("(id) => __emo.node(id).serialize().widgets_values", did) == ["fear"]
        # where the pad is drawn, a click on it sets the widgets
        target = p.js("""(id) => { const L = __emo.pad(id).layout; if (!L) return null;
            const el = [...document.querySelectorAll('canvas.cursor-crosshair')]
                .find((c) => c.parentElement?.getAttribute('node-type') === 'EmoNodes_ValenceArousal');
            const r = el.getBoundingClientRect(), unit = L.size / 6;
            return [r.left + L.x + (-1.5 + 3) * unit, r.top + L.y + (3 - 2.0) * unit]; }""", nid)
        if target is not None:
            p.page.mouse.click(*target)
            vals = p.js("(id) => __emo.values(id)", nid)
            assert (vals["valence"], vals["arousal"]) == (pytest.approx(-1.5, abs=0.051), pytest.approx(2.0, abs=0.051))
        p.screenshot("nodes2_va_pad")
        assert p.our_errors() == []


def test_every_node_has_a_help_page(host):
    """The frontend's node help reads /extensions/<pack>/docs/<NodeId>.md; every emo-nodes node has one."""
    with urllib.request.urlopen(f"{host.url}/object_info", timeout=30) as r:
        info = json.load(r)
    ours = {k: v for k, v in info.items() if k.startswith("EmoNodes_")}
    assert len(ours) >= 21 and set(ours) == {page.stem for page in (ROOT / "web" / "docs").glob("EmoNodes_*.md")}
    for node_id, spec in ours.items():
        pack = spec["python_module"].split(".", 1)[1]  # custom_nodes.<folder>
        with urllib.request.urlopen(f"{host.url}/extensions/{pack}/docs/{node_id}.md", timeout=30) as r:
            assert r.read().decode().startswith(f"# {spec['display_name']}"), node_id
