"""The host's progress text on our nodes: drawn inside the node, no node changes size (headless Chromium, once per
frontend: see conftest.py).

The frontend shows a node's progress text in a widget of its own ("$$node-text-preview", 58 px at least) that it adds
below the widgets on the `progress_text` event; laying the node out then grows it downward, over the node placed
right below. web/js/progress_text.js takes that widget off our nodes (EmoNodes_*), keeps the text and draws it in one
line along the node's bottom edge, clipped to the node's width, until the prompt ends. Other nodes keep the
frontend's widget.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from browser import open_page

REPO = Path(__file__).resolve().parents[2]
TEXT_WIDGET = "$$node-text-preview"
LONG = (
    "attempt 6 of at most 6: SSIM 0.912, p(awe) 0.413, accepted; "
    "best so far attempt 4: SSIM 0.934, p(awe) 0.398, rejected; a long line that cannot fit in the node"
)
REPORTING = ["EmoNodes_IEILoop", "EmoNodes_EmotionEdit", "EmoNodes_VAClosedLoop", "EmoNodes_PredictVA"]

# A node with a second node right below it (the usual gap: just the lower node's title); a fixed view.
SETUP = """(type) => {
  app.graph.clear();
  const add = (type, pos) => { const n = LiteGraph.createNode(type); n.pos = pos; app.graph.add(n); return n; };
  const top = add(type, [200, 100]);
  const below = add('EmoNodes_ValenceArousal', [200, 100 + top.size[1] + LiteGraph.NODE_TITLE_HEIGHT + 10]);
  app.canvas.ds.scale = 1;
  app.canvas.ds.offset = [60, 40];
  app.canvas.setDirty(true, true);
  app.canvas.draw(true, true);
  return [top.id, below.id, [...top.size], [...below.size]];
}"""

# After a fresh draw: both nodes' sizes and positions, the text widgets left on the top node, and our stored text.
STATE = """async ([id, belowId]) => {
  app.canvas.setDirty(true, true);
  app.canvas.draw(true, true);
  const n = app.graph.getNodeById(id), below = app.graph.getNodeById(belowId);
  const ext = app.extensions.find((e) => e.name === 'emo-nodes.progress_text');
  const w = (n.widgets ?? []).filter((w) => w.name === 'TEXT_WIDGET');
  return { size: [...n.size], pos: [...n.pos], widgets: w.length, value: w[0]?.value ?? null,
           text: ext.progressTextOf(n), belowSize: [...below.size], belowPos: [...below.pos],
           title: LiteGraph.NODE_TITLE_HEIGHT };
}""".replace("TEXT_WIDGET", TEXT_WIDGET)


@pytest.fixture(scope="module")
def page(browser, frontend_url):
    with open_page(browser, frontend_url) as p:
        yield p


def which(request) -> str:
    """The frontend this run uses: installed or newest."""
    return request.node.callspec.params.get("frontend_url", "frontend")


def send(page, node_id, text):
    """What the host's send_progress_text becomes on the page."""
    page.js(
        "([id, text]) => app.api.dispatchCustomEvent('progress_text', { nodeId: String(id), text })", [node_id, text]
    )
    page.page.wait_for_timeout(300)  # the canvas draws a frame or two


def end(page, event="execution_success"):
    page.js("(e) => app.api.dispatchCustomEvent(e, { prompt_id: 'test', timestamp: 0 })", event)
    page.page.wait_for_timeout(200)


def shot(page, top, name):
    """A screenshot of the top node's title bar and upper part (the view is moved there first)."""
    page.js(
        """(id) => { const n = app.graph.getNodeById(id);
        app.canvas.ds.scale = 1.5;
        app.canvas.ds.offset = [60 - n.pos[0], 200 / 1.5 - n.pos[1]];
        app.canvas.setDirty(true, true); app.canvas.draw(true, true); }""",
        top,
    )
    page.page.wait_for_timeout(150)
    return page.screenshot(name)


def no_overlap(s) -> None:
    """The top node's frame ends above the lower node's title."""
    assert s["pos"][1] + s["size"][1] <= s["belowPos"][1] - s["title"], s


def test_iei_progress_text_is_drawn_inside_the_node(page, request):
    page.errors.clear()
    top, below, size0, below0 = page.js(SETUP, "EmoNodes_IEILoop")
    shot(page, top, f"progress_text_before_{which(request)}")
    send(page, top, LONG)
    s = page.js(STATE, [top, below])
    assert s["widgets"] == 0, s  # the frontend's widget is gone from our node
    assert s["text"] == LONG  # and its text is ours to draw
    assert s["size"] == size0 and s["belowSize"] == below0
    no_overlap(s)
    shot(page, top, f"progress_text_{which(request)}")
    # a second text on the same node: replaces the first, same size
    send(page, top, "attempt 1 of at most 6")
    s = page.js(STATE, [top, below])
    assert s["widgets"] == 0 and s["text"] == "attempt 1 of at most 6" and s["size"] == size0
    shot(page, top, f"progress_text_short_{which(request)}")
    # the prompt ends: the text goes, the node looks as before
    end(page)
    s = page.js(STATE, [top, below])
    assert s["text"] is None and s["widgets"] == 0 and s["size"] == size0
    shot(page, top, f"progress_text_after_{which(request)}")
    assert page.our_errors() == []


@pytest.mark.parametrize("event", ["execution_error", "execution_interrupted", "executing"])
def test_the_text_is_cleared_when_the_prompt_ends(page, event):
    top, below, size0, _ = page.js(SETUP, "EmoNodes_IEILoop")
    send(page, top, LONG)
    assert page.js(STATE, [top, below])["text"] == LONG
    if event == "executing":
        page.js("() => app.api.dispatchCustomEvent('executing', null)")
        page.page.wait_for_timeout(200)
    else:
        end(page, event)
    s = page.js(STATE, [top, below])
    assert s["text"] is None and s["size"] == size0


@pytest.mark.parametrize("node_type", REPORTING[1:])
def test_every_reporting_node_keeps_its_size(page, node_type):
    top, below, size0, _ = page.js(SETUP, node_type)
    send(page, top, LONG)
    s = page.js(STATE, [top, below])
    assert s["widgets"] == 0 and s["text"] == LONG and s["size"] == size0
    no_overlap(s)
    end(page)


def test_a_core_node_keeps_the_frontends_widget(page):
    top, below, _, _ = page.js(SETUP, "KSampler")
    send(page, top, "core progress")
    s = page.js(STATE, [top, below])
    assert s["widgets"] == 1 and s["value"] == "core progress" and s["text"] is None
    end(page)


def test_a_shipped_workflow_keeps_every_size(page, request):
    """The IEI workflow as shipped (a long title, a node right below): the text is drawn over the title's tail, and
    no node of the workflow changes size or place."""
    graph = json.loads((REPO / "workflows" / "emoeditor_iei_loop.json").read_text())
    page.js("async (g) => { await app.loadGraphData(g); app.canvas.draw(true, true); }", graph)
    layout = "() => app.graph._nodes.map((n) => [n.id, [...n.pos], [...n.size]])"
    before = page.js(layout)
    top = page.js("() => app.graph._nodes.find((n) => n.comfyClass === 'EmoNodes_IEILoop').id")
    send(page, top, LONG)
    page.js("() => app.canvas.draw(true, true)")
    assert page.js(layout) == before
    assert page.js(f"(id) => app.graph.getNodeById(id).widgets.some(w => w.name === '{TEXT_WIDGET}')", top) is False
    shot(page, top, f"progress_text_workflow_{which(request)}")
    end(page)
    assert page.js(layout) == before
    assert page.our_errors() == []
