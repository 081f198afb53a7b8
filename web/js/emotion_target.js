// EmoEditor's eight target classes shown grouped positive / negative under the nodes' `target` combo.
// The combo stays as it is; this row only reads it (and sets it on click), saving nothing of its own.

import { app } from "../../../scripts/app.js";

const GROUPS = [
    { label: "positive", color: "#5cc96b", names: ["amusement", "awe", "contentment", "excitement"] },
    { label: "negative", color: "#e0604f", names: ["anger", "disgust", "fear", "sadness"] },
];
const NODES = new Set(["EmoNodes_EmotionDirection", "EmoNodes_EmotionEdit", "EmoNodes_IEILoop"]);
const ROW = 20;
const MARGIN = 15;
const LABEL_W = 56;

const targetOf = (node) => node.widgets?.find((w) => w.name === "target");

function theme() {
    const lg = globalThis.LiteGraph ?? {};
    return { bg: lg.WIDGET_BGCOLOR ?? "#222", text: lg.WIDGET_TEXT_COLOR ?? "#ddd", dim: lg.WIDGET_SECONDARY_TEXT_COLOR ?? "#999" };
}

/** Chip rectangles for every class: [{name, x, y, w, h, group}], relative to the node. */
function chips(width, y) {
    const out = [];
    const chipW = Math.max(10, (width - 2 * MARGIN - LABEL_W) / 4);
    GROUPS.forEach((group, row) => {
        group.names.forEach((name, i) => {
            out.push({ name, group, x: MARGIN + LABEL_W + i * chipW, y: y + 2 + row * ROW, w: chipW - 3, h: ROW - 3 });
        });
    });
    return out;
}

function fitFont(ctx, width) {
    for (let size = 11; size > 7; size--) {
        ctx.font = `${size}px sans-serif`;
        if (ctx.measureText("contentment").width <= width - 4) return;
    }
}

const vueMode = () => !!globalThis.LiteGraph?.vueNodesMode;

// Nodes 2.0 has its own dropdown listing the classes: one line naming the selected class's group is enough there.
function drawCompact(ctx, width, y, selected) {
    const group = GROUPS.find((g) => g.names.includes(selected));
    if (!group) return;
    ctx.save();
    ctx.font = "11px sans-serif";
    ctx.textBaseline = "middle";
    ctx.textAlign = "left";
    ctx.fillStyle = group.color;
    ctx.fillText(`${selected}: ${group.label} (${group.names.join(", ")})`, MARGIN, y + ROW / 2, width - 2 * MARGIN);
    ctx.restore();
}

function drawGroups(ctx, node, width, y) {
    if (node.flags?.collapsed) return;
    const selected = targetOf(node)?.value;
    if (vueMode()) return drawCompact(ctx, width, y, selected);
    const t = theme();
    const boxes = chips(width, y);
    ctx.save();
    ctx.textBaseline = "middle";
    ctx.font = "11px sans-serif";
    GROUPS.forEach((group, row) => {
        ctx.fillStyle = group.color;
        ctx.textAlign = "left";
        ctx.fillText(group.label, MARGIN, y + 2 + row * ROW + (ROW - 3) / 2);
    });
    fitFont(ctx, boxes[0].w);
    ctx.textAlign = "center";
    for (const b of boxes) {
        const on = b.name === selected;
        ctx.fillStyle = on ? b.group.color : t.bg;
        ctx.strokeStyle = b.group.color;
        ctx.globalAlpha = on ? 1 : 0.8;
        ctx.beginPath();
        ctx.roundRect ? ctx.roundRect(b.x, b.y, b.w, b.h, 4) : ctx.rect(b.x, b.y, b.w, b.h);
        ctx.fill();
        ctx.stroke();
        ctx.fillStyle = on ? "#111" : t.text;
        ctx.fillText(b.name, b.x + b.w / 2, b.y + b.h / 2 + 0.5, b.w - 2);
    }
    ctx.restore();
}

function selectAt(widget, node, [px, py]) {
    if (vueMode()) return false;
    const hit = chips(widget.lastWidth, widget.lastY).find((b) => px >= b.x && px <= b.x + b.w && py >= b.y && py <= b.y + b.h);
    const combo = targetOf(node);
    if (!hit || !combo || combo.value === hit.name) return false;
    if (combo.options?.values && !combo.options.values.includes(hit.name)) return false;
    combo.value = hit.name;
    combo.callback?.(hit.name, globalThis.app?.canvas, node);
    node.setDirtyCanvas?.(true, true);
    widget.triggerDraw?.();
    return true;
}

function guarded(fn, fallback) {
    return function (...args) {
        try {
            return fn.apply(this, args);
        } catch (e) {
            console.debug?.("[emo-nodes] emotion groups:", e);
            return fallback;
        }
    };
}

function addGroupsWidget(node) {
    const widget = {
        name: "emotion_groups",
        type: "emo_emotion_groups",
        value: undefined,
        serialize: false, // nothing in widgets_values
        options: { serialize: false }, // nothing in the API prompt
        lastWidth: 0,
        lastY: 0,
        draw: guarded(function (ctx, node, width, y) {
            this.lastWidth = width;
            this.lastY = y;
            drawGroups(ctx, node, width, y);
        }),
        mouse: guarded(function (event, pos, node) {
            return (event?.type ?? "").endsWith("down") ? selectAt(this, node, pos) : false;
        }, false),
        computeSize: (width) => [width ?? 0, vueMode() ? ROW : 2 * ROW + 2],
    };
    node.addCustomWidget(widget);
    // Nodes 2.0 redraws this row only on request: tell it when the combo changes.
    const combo = targetOf(node);
    const original = combo.callback;
    combo.callback = function (...args) {
        const result = original?.apply(this, args);
        try { widget.triggerDraw?.(); } catch { /* only a view */ }
        return result;
    };
}

app.registerExtension({
    name: "emo-nodes.emotion_target",
    nodeCreated(node) {
        if (!NODES.has(node?.comfyClass) || !targetOf(node)) return;
        try {
            addGroupsWidget(node);
            const [w, h] = node.size ?? [0, 0];
            const min = node.computeSize?.() ?? [w, h];
            node.setSize?.([Math.max(w, min[0]), Math.max(h, min[1])]);
        } catch (e) {
            console.debug?.("[emo-nodes] no emotion groups:", e);
        }
    },
});
