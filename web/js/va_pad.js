// Valence-arousal pads on the emo-nodes V-A nodes: a point, a grid region, a path.

import { app } from "../../../scripts/app.js";
import { drawDot, drawRegion, drawSegment, linspace } from "./va_pad_core.js";
import { addPadWidget, fitNodeToPad } from "./va_pad_widget.js";

const num = (node, name) => {
    const v = Number(node.widgets?.find((w) => w.name === name)?.value);
    return Number.isFinite(v) ? v : 0;
};
const count = (node, name) => Math.max(1, Math.round(num(node, name)));

const SMALL_DOT = { color: "#ffd27a", radius: 3 };

function drawGridCells(ctx, layout, node) {
    const from = [num(node, "valence_from"), num(node, "arousal_from")];
    const to = [num(node, "valence_to"), num(node, "arousal_to")];
    drawRegion(ctx, layout, from, to);
    for (const a of linspace(from[1], to[1], count(node, "rows"))) {
        for (const v of linspace(from[0], to[0], count(node, "columns"))) drawDot(ctx, layout, v, a, SMALL_DOT);
    }
}

function drawPathSteps(ctx, layout, node) {
    const start = [num(node, "valence_start"), num(node, "arousal_start")];
    const end = [num(node, "valence_end"), num(node, "arousal_end")];
    drawSegment(ctx, layout, start, end);
    const n = count(node, "steps");
    const vs = linspace(start[0], end[0], n);
    const as = linspace(start[1], end[1], n);
    vs.forEach((v, i) => drawDot(ctx, layout, v, as[i], SMALL_DOT));
}

const PADS = {
    EmoNodes_ValenceArousal: {
        handles: [{ v: "valence", a: "arousal", label: "point" }],
    },
    EmoNodes_EmotionGrid: {
        handles: [
            { v: "valence_from", a: "arousal_from", label: "first cell", color: "#59c3ff" },
            { v: "valence_to", a: "arousal_to", label: "last cell", color: "#ff8c2a" },
        ],
        drawExtras: drawGridCells,
        watch: ["columns", "rows"],
    },
    EmoNodes_VAToEmotions: {
        handles: [{ v: "valence", a: "arousal", label: "point" }],
    },
    EmoNodes_EmotionPath: {
        handles: [
            { v: "valence_start", a: "arousal_start", label: "start", color: "#59c3ff" },
            { v: "valence_end", a: "arousal_end", label: "end", color: "#ff8c2a" },
        ],
        drawExtras: drawPathSteps,
        watch: ["steps"],
    },
};

app.registerExtension({
    name: "emo-nodes.va_pad",
    nodeCreated(node) {
        const spec = PADS[node?.comfyClass];
        if (!spec) return;
        try {
            // Without its widgets (e.g. converted to inputs on an old frontend) the node keeps its plain form.
            const names = spec.handles.flatMap((h) => [h.v, h.a]);
            if (!names.every((n) => node.widgets?.some((w) => w.name === n))) return;
            addPadWidget(node, spec);
            fitNodeToPad(node);
        } catch (e) {
            console.debug?.("[emo-nodes] no pad:", e); // the plain widgets still work
        }
    },
});
