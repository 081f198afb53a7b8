// The host's progress text on emo-nodes nodes, drawn inside the node without changing its size.
//
// On a `progress_text` event the frontend adds a text-preview widget ("$$node-text-preview", at least 58 px tall)
// under the running node's widgets, and its layout step grows the node downward to fit it: over the node the user
// placed right below. For our nodes (`EmoNodes_*`) only:
// - the frontend's widget is taken off the node as soon as it is there (after the event's listeners, and again right
//   before the node's layout step, which runs after onDrawForeground), and the node gets back the size it had before
//   the widget came, should it have grown in between;
// - the latest text is drawn by us in one line in the node's title bar, right of the title (the frontend's badges sit
//   above the title bar, and no other node's badge reaches it; the body is the widgets' to the last pixel), clipped
//   with an ellipsis to the room there, in the canvas's own text colour;
// - the text is cleared when the prompt ends (executing null, execution_success/error/interrupted), so a finished
//   node looks as before. Saved workflows load exactly as saved: nothing here changes a size or a saved field.
// Other nodes keep the frontend's own widget. Nodes 2.0 (Vue nodes) lays its nodes out from their content and draws
// no canvas foreground: there the frontend's widget is left alone.

import { app } from "../../../scripts/app.js";

const PREFIX = "EmoNodes_";
export const TEXT_WIDGET = "$$node-text-preview";
const MIN_TITLE_ROOM = 72; // px the text gets at least in the title bar (over the tail of a long title)
const FONT_PX = 11;
const PAD = 6;
const END_EVENTS = ["execution_success", "execution_error", "execution_interrupted"];

const ours = (node) => typeof node?.comfyClass === "string" && node.comfyClass.startsWith(PREFIX);
const vueMode = () => !!globalThis.LiteGraph?.vueNodesMode;
const textWidget = (node) => node?.widgets?.find((w) => w?.name === TEXT_WIDGET);

/** The latest progress text per node of ours (what we draw); the size a node had before the frontend's widget. */
const texts = new WeakMap();
const sizes = new WeakMap();
const shown = new Set(); // the nodes in `texts`, to clear them all at the prompt's end

export function progressTextOf(node) {
    return texts.get(node) ?? null;
}

function redraw(node) {
    (node?.graph ?? app.graph)?.setDirtyCanvas?.(true, true);
    app.canvas?.setDirty?.(true, true);
}

/** Take the frontend's text widget off `node` (one of ours), keep its text, and give the node back its size. */
export function adoptProgressText(node) {
    if (!ours(node) || vueMode()) return false;
    const widget = textWidget(node);
    if (!widget) return false;
    const text = widget.value;
    try {
        if (typeof node.removeWidget === "function") node.removeWidget(widget);
        else {
            widget.onRemove?.();
            node.widgets.splice(node.widgets.indexOf(widget), 1);
        }
    } catch (e) {
        console.debug?.("[emo-nodes] progress text:", e);
    }
    const before = sizes.get(node);
    if (before && (node.size[0] !== before[0] || node.size[1] !== before[1])) node.setSize([before[0], before[1]]);
    sizes.delete(node);
    if (typeof text === "string" && text) {
        texts.set(node, text);
        shown.add(node);
    }
    redraw(node);
    return true;
}

function nodesOf(graph) {
    return graph?.nodes ?? graph?._nodes ?? [];
}

/** The shown graphs' nodes of ours (an event's node id may name a node in a subgraph, "outer:inner": look at the
 *  graphs rather than resolve the id, as the frontend does). */
function ourNodes() {
    const out = [];
    for (const graph of new Set([app.canvas?.graph, app.graph].filter(Boolean))) {
        for (const node of nodesOf(graph)) if (ours(node)) out.push(node);
    }
    return out;
}

function adoptAll() {
    for (const node of ourNodes()) {
        try {
            adoptProgressText(node);
        } catch (e) {
            console.debug?.("[emo-nodes] progress text:", e);
        }
    }
}

function onProgressText() {
    if (vueMode()) return;
    // Before the widget can grow a node (that happens when the canvas lays the node out): remember the sizes.
    for (const node of ourNodes()) if (!textWidget(node)) sizes.set(node, [node.size[0], node.size[1]]);
    // The frontend's listener may run before or after this one, synchronously: look once they all ran, and on the
    // next frame for good measure.
    queueMicrotask(adoptAll);
    requestAnimationFrame(adoptAll);
}

function clearAll() {
    if (!shown.size) return;
    for (const node of shown) {
        texts.delete(node);
        redraw(node);
    }
    shown.clear();
}

/** `text` cut to `width` px with an ellipsis (binary search on the measured prefix). */
function clip(ctx, text, width) {
    if (ctx.measureText(text).width <= width) return text;
    const ell = "…";
    let lo = 0;
    let hi = text.length;
    while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (ctx.measureText(text.slice(0, mid) + ell).width <= width) lo = mid;
        else hi = mid - 1;
    }
    return lo > 0 ? text.slice(0, lo).trimEnd() + ell : "";
}

/** Where the text goes, in node coordinates: the title bar right of the title. Nothing of the frontend's is drawn
 *  there (the badges sit above the title bar, and the node's body is its widgets' to the last pixel: a multiline
 *  widget ends at the bottom edge). A title too long to leave MIN_TITLE_ROOM px loses its tail to the text. */
function place(node, ctx) {
    const L = globalThis.LiteGraph ?? {};
    const w = node.size[0];
    const th = L.NODE_TITLE_HEIGHT ?? 30;
    let right = w - PAD;
    for (const b of node.title_buttons ?? []) if (b?.visible) right -= (b.getWidth?.(ctx) ?? 0) + 2;
    ctx.save();
    ctx.font = node.titleFontStyle ?? `${L.NODE_TEXT_SIZE ?? 14}px ${L.NODE_FONT ?? "Arial"}`;
    const title = String(node.getTitle?.() ?? node.title ?? "") + (node.pinned ? "📌" : "");
    const end = th + Math.min(ctx.measureText(title).width, Math.max(0, w - 2 * th));
    ctx.restore();
    const left = Math.max(th, Math.min(end + 2 * PAD, right - MIN_TITLE_ROOM));
    return { left, right, top: -th, height: th, covers: left < end + PAD };
}

function drawText(node, ctx, canvas) {
    const text = texts.get(node);
    if (!text || node.flags?.collapsed || vueMode() || canvas?.low_quality) return;
    const mode = node.title_mode ?? node.constructor?.title_mode ?? 0; // litegraph's TitleMode: 1 none, 2 transparent
    if (mode === 1 || mode === 2) return; // no title bar: the frontend draws no title text either
    const L = globalThis.LiteGraph ?? {};
    const at = place(node, ctx);
    ctx.save();
    ctx.beginPath();
    ctx.rect(at.left - PAD, at.top + 1, at.right - at.left + PAD, at.height - 2);
    ctx.clip();
    if (at.covers) {
        // The title's tail under the text: paint the title bar's own colour over it first.
        ctx.fillStyle = node.constructor?.title_color || node.renderingColor || node.color || "#353535";
        ctx.fillRect(at.left - PAD, at.top + 1, at.right - at.left + PAD, at.height - 2);
    }
    ctx.font = `${FONT_PX}px ${L.NODE_FONT ?? "Arial"}`;
    ctx.fillStyle = L.NODE_TEXT_COLOR ?? "#AAA"; // the canvas's own text colour (follows the colour palette)
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    ctx.fillText(clip(ctx, text, at.right - at.left), at.left, at.top + at.height / 2);
    ctx.restore();
}

function hook(node) {
    if (!ours(node) || node.__emoProgressText) return;
    node.__emoProgressText = true;
    const previous = node.onDrawForeground;
    node.onDrawForeground = function (ctx, canvas, ...rest) {
        const r = previous?.apply(this, [ctx, canvas, ...rest]);
        try {
            // The canvas lays the node out (and would grow it) right after this call: take a widget that is
            // still here off the node first.
            if (textWidget(this)) adoptProgressText(this);
            drawText(this, ctx, canvas);
        } catch (e) {
            console.debug?.("[emo-nodes] progress text:", e);
        }
        return r;
    };
}

app.registerExtension({
    name: "emo-nodes.progress_text",
    progressTextOf, // the text drawn on a node of ours (null when none): for the tests
    nodeCreated(node) {
        try {
            hook(node);
        } catch (e) {
            console.debug?.("[emo-nodes] progress text:", e);
        }
    },
    setup() {
        const api = app.api;
        if (!api?.addEventListener) return;
        api.addEventListener("progress_text", onProgressText);
        api.addEventListener("executing", (e) => {
            const d = e?.detail;
            if (d === null || d === undefined || (typeof d === "object" && d.node == null)) clearAll();
        });
        for (const name of END_EVENTS) api.addEventListener(name, clearAll);
    },
});
