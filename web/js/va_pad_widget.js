// The pad as a LiteGraph custom widget: draws the node's V-A widgets and edits them by mouse and keyboard.
// The pad holds no value of its own: it reads the numeric widgets at draw time and writes through them,
// so workflows and API prompts are exactly what they are without this extension.

import {
    clamp, drawBackground, drawDot, drawSummary, fromPx, inside, nearestEmotion, padLayout, roundTo, SNAP_STEP, toPx,
    VA_LIMIT, VA_STEP,
} from "./va_pad_core.js";

const MIN_PAD = 120; // smallest pad height the node layout keeps
const MIN_DRAWN = 60; // below this a one-line summary replaces the pad
const GRAB_RADIUS = 12; // px: how close a click must be to pick a handle on multi-handle pads
const DOUBLE_CLICK_MS = 350;
const ARROWS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, 1], ArrowDown: [0, -1] };

let focusedPad = null; // the pad last clicked: arrow keys go to it

const widgetByName = (node, name) => node.widgets?.find((w) => w.name === name);

function numberOf(node, name) {
    const v = Number(widgetByName(node, name)?.value);
    return Number.isFinite(v) ? v : 0;
}

const handlePoint = (node, h) => [numberOf(node, h.v), numberOf(node, h.a)];

/** [min, max] a value may take: the trained range, or the widget's own limits when extrapolating. */
function limitsOf(node, name) {
    if (!widgetByName(node, "extrapolate")?.value) return [-VA_LIMIT, VA_LIMIT];
    const opts = widgetByName(node, name)?.options ?? {};
    return [opts.min ?? -10, opts.max ?? 10];
}

function writeNumber(node, name, value) {
    const w = widgetByName(node, name);
    if (!w) return;
    const v = roundTo(clamp(value, ...limitsOf(node, name)), 0.01);
    if (w.value === v) return;
    w.value = v;
    w.callback?.(v, globalThis.app?.canvas, node);
}

function errorSafe(fn, fallback) {
    return function (...args) {
        try {
            return fn.apply(this, args);
        } catch (e) {
            console.debug?.("[emo-nodes] pad:", e); // never break the canvas for a drawing problem
            return fallback;
        }
    };
}

function redraw(pad, node) {
    node.setDirtyCanvas?.(true, true);
    pad.triggerDraw?.(); // Nodes 2.0 draws legacy widgets into their own canvas, only on request
}

/** Move handle `h` to pad pixel (px, py), snapping when asked. */
function moveHandle(pad, node, h, px, py, snap) {
    const [v, a] = fromPx(pad.layout, px, py);
    const step = snap ? SNAP_STEP : VA_STEP;
    writeNumber(node, h.v, roundTo(v, step));
    writeNumber(node, h.a, roundTo(a, step));
    redraw(pad, node);
}

function nearestHandle(pad, node, px, py) {
    let best = null;
    let bestDist = Infinity;
    for (const h of pad.handles) {
        const [x, y] = toPx(pad.layout, ...handlePoint(node, h).map((c) => clamp(c, -VA_LIMIT, VA_LIMIT)));
        const d = Math.hypot(x - px, y - py);
        if (d < bestDist) [best, bestDist] = [h, d];
    }
    // A single-handle pad jumps to any click; on others a click must land near a handle.
    return pad.handles.length === 1 || bestDist <= GRAB_RADIUS ? best : null;
}

function parsePair(text) {
    const nums = String(text ?? "").trim().split(/[\s,;]+/).map(Number);
    return nums.length === 2 && nums.every(Number.isFinite) ? nums : null;
}

/** Double-click: type "valence, arousal" for the active handle, in the frontend's own prompt box. */
function promptValues(pad, node, event) {
    const h = pad.active ?? pad.handles[0];
    const [v, a] = handlePoint(node, h);
    const title = `${h.label ?? "point"}: valence, arousal`;
    const apply = errorSafe((text) => {
        const pair = parsePair(text);
        if (!pair) return;
        writeNumber(node, h.v, pair[0]);
        writeNumber(node, h.a, pair[1]);
        redraw(pad, node);
    });
    const canvas = globalThis.app?.canvas;
    if (typeof canvas?.prompt === "function") {
        canvas.prompt(title, `${v.toFixed(2)}, ${a.toFixed(2)}`, apply, event);
    } else {
        apply(globalThis.prompt?.(title, `${v.toFixed(2)}, ${a.toFixed(2)}`));
    }
}

function onPointerDown(pad, node, event, px, py) {
    if (!inside(pad.layout, px, py)) return false;
    focusedPad = pad;
    const now = performance.now();
    const [lx, ly, lt] = pad.lastDown;
    const isDouble = now - lt < DOUBLE_CLICK_MS && Math.hypot(px - lx, py - ly) < 6;
    pad.lastDown = isDouble ? [0, 0, -Infinity] : [px, py, now];
    const h = nearestHandle(pad, node, px, py);
    if (h) pad.active = h;
    if (isDouble) {
        pad.dragging = null;
        promptValues(pad, node, event);
        return true;
    }
    pad.dragging = h;
    if (h) moveHandle(pad, node, h, px, py, event.shiftKey);
    else redraw(pad, node);
    return true;
}

function padMouse(event, pos, node) {
    if (!this.layout) return false;
    const [px, py] = pos;
    const type = event?.type ?? "";
    if (type.endsWith("down")) return onPointerDown(this, node, event, px, py);
    if (type.endsWith("move") && this.dragging) {
        moveHandle(this, node, this.dragging, px, py, event.shiftKey);
        return true;
    }
    if (type.endsWith("up")) this.dragging = null;
    return false;
}

function summary(pad, node) {
    const parts = pad.handles.map((h) => {
        const [v, a] = handlePoint(node, h);
        return `${pad.handles.length > 1 ? `${h.label} ` : ""}V ${v.toFixed(2)}, A ${a.toFixed(2)}`;
    });
    if (pad.handles.length === 1) parts.push(`(${nearestEmotion(...handlePoint(node, pad.handles[0]))})`);
    return parts.join("  ");
}

function padDraw(ctx, node, width, y, height, lowQuality) {
    if (node.flags?.collapsed) return;
    // Nodes 2.0 passes the height it gave the widget; the classic canvas passes one row and sets computedHeight.
    const vue = !!globalThis.LiteGraph?.vueNodesMode;
    const h = Math.max((vue ? height : this.computedHeight ?? height) ?? 0, 0);
    if (h < MIN_DRAWN) {
        this.layout = null; // no pointer editing on a summary line
        drawSummary(ctx, width, y, h, summary(this, node));
        return;
    }
    this.layout = padLayout(width, y, h);
    drawBackground(ctx, this.layout, { focused: focusedPad === this, lowQuality });
    this.drawExtras?.(ctx, this.layout, node);
    for (const handle of this.handles) {
        const [v, a] = handlePoint(node, handle);
        drawDot(ctx, this.layout, v, a, { color: handle.color, active: focusedPad === this && this.active === handle });
    }
}

function nudge(pad, event) {
    const [dx, dy] = ARROWS[event.key];
    const node = pad.node;
    const h = pad.active ?? pad.handles[0];
    const step = event.shiftKey ? SNAP_STEP : VA_STEP;
    const [v, a] = handlePoint(node, h);
    writeNumber(node, h.v, roundTo(v + dx * step, VA_STEP));
    writeNumber(node, h.a, roundTo(a + dy * step, VA_STEP));
    redraw(pad, node);
}

function isTextTarget(target) {
    const tag = target?.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || target?.isContentEditable;
}

let listenersInstalled = false;

/** One pair of window listeners for all pads: clicks elsewhere drop the focus, arrows nudge the focused pad. */
function installListeners() {
    if (listenersInstalled) return;
    listenersInstalled = true;
    // Capture phase: runs before the canvas hands the click to a pad, which then takes the focus back.
    window.addEventListener("pointerdown", () => { focusedPad = null; }, true);
    window.addEventListener("keydown", errorSafe((event) => {
        const pad = focusedPad;
        if (!pad || !ARROWS[event.key] || isTextTarget(event.target)) return;
        if (!pad.node.graph || pad.node.flags?.collapsed) {
            focusedPad = null;
            return;
        }
        nudge(pad, event);
        event.preventDefault();
        event.stopImmediatePropagation();
    }), true);
}

/**
 * Add a pad to `node`, last among its widgets (so it leaves the widgets_values indices alone).
 * handles: [{v: widget name, a: widget name, label, color}]; drawExtras(ctx, layout, node) draws behind them;
 * watch: more widget names whose changes alter the drawing.
 */
export function addPadWidget(node, { name = "va_pad", handles, drawExtras, watch = [] }) {
    installListeners();
    const pad = {
        name,
        type: "emo_va_pad",
        value: undefined,
        serialize: false, // nothing in widgets_values
        options: { serialize: false }, // nothing in the API prompt
        node,
        handles,
        active: handles[0],
        drawExtras,
        layout: null,
        dragging: null,
        lastDown: [0, 0, -Infinity], // x, y, time of the last press: double-click detection
        draw: errorSafe(padDraw),
        mouse: errorSafe(padMouse, false),
        computeLayoutSize: () => ({ minHeight: MIN_PAD, maxHeight: 1e6, minWidth: MIN_PAD }),
    };
    const added = node.addCustomWidget(pad);
    redrawOnChange(added ?? pad, node, [...handles.flatMap((h) => [h.v, h.a]), "extrapolate", ...watch]);
    return added;
}

/** Typing in a numeric widget moves the point: Nodes 2.0 needs to be told to redraw the pad. */
function redrawOnChange(pad, node, names) {
    for (const w of node.widgets ?? []) {
        if (!names.includes(w.name)) continue;
        const original = w.callback;
        w.callback = function (...args) {
            const result = original?.apply(this, args);
            try {
                pad.triggerDraw?.();
            } catch { /* the pad is only a view */ }
            return result;
        };
    }
}

/** Make the node big enough to show a square pad (a loaded workflow's saved size wins afterwards). */
export function fitNodeToPad(node, width = 300) {
    const w = Math.max(node.size?.[0] ?? 0, width);
    const base = node.computeSize?.()?.[1] ?? 0; // includes MIN_PAD for the pad
    const side = w - 20;
    node.setSize?.([w, base - MIN_PAD + side + 8]);
}
