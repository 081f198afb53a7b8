// Drawing and coordinate helpers for the valence-arousal pad (no ComfyUI imports: pure canvas code).

export const VA_LIMIT = 3; // EmotiCrafter's trained range, also the pad's visible range
export const VA_STEP = 0.05; // the widgets' step: arrow keys nudge by this
export const SNAP_STEP = 0.5; // Shift snaps to this

// Russell's circumplex, clockwise from the pleasant-aroused quadrant, evenly spaced (22.5 degrees apart).
const EMOTIONS = ["excited", "delighted", "happy", "content", "serene", "calm", "relaxed", "tired",
    "bored", "depressed", "sad", "upset", "stressed", "nervous", "tense", "alert"];
const FIRST_ANGLE = 67.5; // degrees counter-clockwise from +valence: "excited" sits top-right

export const EMOTION_ANGLES = EMOTIONS.map((name, i) => ({ name, deg: FIRST_ANGLE - 22.5 * i }));

const MARGIN_X = 10;
const MARGIN_Y = 4;

// Read the theme at draw time so light/dark palettes both work; fall back to dark defaults.
function theme() {
    const lg = globalThis.LiteGraph ?? {};
    return {
        bg: lg.WIDGET_BGCOLOR ?? "#222",
        outline: lg.WIDGET_OUTLINE_COLOR ?? "#666",
        text: lg.WIDGET_TEXT_COLOR ?? "#ddd",
        dim: lg.WIDGET_SECONDARY_TEXT_COLOR ?? "#999",
    };
}

/** The square pad inside a widget box: centred, as large as both width and height allow. */
export function padLayout(width, y, height) {
    const size = Math.max(0, Math.min(width - 2 * MARGIN_X, height - 2 * MARGIN_Y));
    return { x: (width - size) / 2, y: y + MARGIN_Y, size };
}

export function toPx(layout, v, a) {
    const unit = layout.size / (2 * VA_LIMIT);
    return [layout.x + (v + VA_LIMIT) * unit, layout.y + (VA_LIMIT - a) * unit];
}

export function fromPx(layout, px, py) {
    const unit = layout.size / (2 * VA_LIMIT) || 1;
    return [(px - layout.x) / unit - VA_LIMIT, VA_LIMIT - (py - layout.y) / unit];
}

export function inside(layout, px, py) {
    return px >= layout.x && px <= layout.x + layout.size && py >= layout.y && py <= layout.y + layout.size;
}

export const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
export const roundTo = (v, step) => Number((Math.round(v / step) * step).toFixed(2));

// Points outside the visible range are drawn on its edge (the widgets still hold the real value).
function toPxClamped(layout, v, a) {
    return toPx(layout, clamp(v, -VA_LIMIT, VA_LIMIT), clamp(a, -VA_LIMIT, VA_LIMIT));
}

function isOutside(v, a) {
    return Math.abs(v) > VA_LIMIT || Math.abs(a) > VA_LIMIT;
}

function drawGrid(ctx, layout, t) {
    ctx.lineWidth = 1;
    for (let i = -VA_LIMIT; i <= VA_LIMIT; i++) {
        ctx.strokeStyle = i === 0 ? t.dim : t.outline;
        ctx.globalAlpha = i === 0 ? 0.9 : 0.35;
        const [x0, y0] = toPx(layout, i, -VA_LIMIT);
        const [, y1] = toPx(layout, i, VA_LIMIT);
        const [xa, ya] = toPx(layout, -VA_LIMIT, i);
        const [xb] = toPx(layout, VA_LIMIT, i);
        ctx.beginPath();
        ctx.moveTo(x0, y0);
        ctx.lineTo(x0, y1);
        ctx.moveTo(xa, ya);
        ctx.lineTo(xb, ya);
        ctx.stroke();
    }
    ctx.globalAlpha = 1;
}

function drawCircumplex(ctx, layout, t) {
    const [cx, cy] = toPx(layout, 0, 0);
    const r = layout.size / 2;
    ctx.strokeStyle = t.dim;
    ctx.globalAlpha = 0.6;
    ctx.beginPath();
    ctx.arc(cx, cy, r, 0, 2 * Math.PI);
    ctx.stroke();
    ctx.globalAlpha = 1;
    if (layout.size < 140) return; // too small for readable names
    ctx.font = `${Math.max(8, Math.round(layout.size / 30))}px sans-serif`;
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    for (const { name, deg } of EMOTION_ANGLES) {
        const rad = (deg * Math.PI) / 180;
        ctx.fillStyle = t.dim;
        ctx.beginPath();
        ctx.arc(cx + r * Math.cos(rad), cy - r * Math.sin(rad), 2, 0, 2 * Math.PI);
        ctx.fill();
        ctx.fillStyle = t.text;
        ctx.globalAlpha = 0.75;
        ctx.fillText(name, cx + 0.8 * r * Math.cos(rad), cy - 0.8 * r * Math.sin(rad));
        ctx.globalAlpha = 1;
    }
}

// Axis names and range go in the corners, which the circle and its emotion names leave free.
function drawAxisLabels(ctx, layout, t) {
    const fs = Math.max(8, Math.round(layout.size / 28));
    const { x, y, size } = layout;
    ctx.font = `${fs}px sans-serif`;
    ctx.fillStyle = t.dim;
    ctx.textBaseline = "alphabetic";
    ctx.textAlign = "left";
    ctx.fillText("\u2191 arousal", x + 3, y + fs + 1);
    ctx.fillText(`-${VA_LIMIT}`, x + 3, y + size - 3);
    ctx.textAlign = "right";
    ctx.fillText("valence \u2192", x + size - 3, y + size - 3);
    ctx.fillText(`+${VA_LIMIT}`, x + size - 3, y + fs + 1);
}

/** Grid, axes, circumplex circle with its emotion names (no text at low zoom); `focused` outlines the pad. */
export function drawBackground(ctx, layout, { focused = false, lowQuality = false } = {}) {
    const t = theme();
    ctx.save();
    ctx.fillStyle = t.bg;
    ctx.fillRect(layout.x, layout.y, layout.size, layout.size);
    drawGrid(ctx, layout, t);
    if (!lowQuality) {
        drawCircumplex(ctx, layout, t);
        drawAxisLabels(ctx, layout, t);
    }
    ctx.strokeStyle = focused ? "#4a9eff" : t.outline;
    ctx.lineWidth = focused ? 2 : 1;
    ctx.strokeRect(layout.x, layout.y, layout.size, layout.size);
    ctx.restore();
}

/** The named emotion nearest to (v, a) by angle, or "neutral" near the centre. */
export function nearestEmotion(v, a) {
    if (Math.hypot(v, a) < 0.5) return "neutral";
    const deg = (Math.atan2(a, v) * 180) / Math.PI;
    const gap = (e) => Math.abs(((deg - e.deg + 540) % 360) - 180);
    return EMOTION_ANGLES.reduce((best, e) => (gap(e) < gap(best) ? e : best)).name;
}

/** One line of text where a pad does not fit (a frontend that gives custom widgets a single row). */
export function drawSummary(ctx, width, y, height, text) {
    const t = theme();
    ctx.save();
    ctx.font = "11px sans-serif";
    ctx.fillStyle = t.dim;
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    ctx.fillText(text, MARGIN_X + 5, y + height / 2, width - 2 * MARGIN_X - 10);
    ctx.restore();
}

/** A point; hollow when its value lies outside the visible range (extrapolation). */
export function drawDot(ctx, layout, v, a, { color = "#ff8c2a", radius = 6, active = false } = {}) {
    const [x, y] = toPxClamped(layout, v, a);
    ctx.save();
    ctx.beginPath();
    ctx.arc(x, y, radius, 0, 2 * Math.PI);
    ctx.lineWidth = active ? 3 : 1.5;
    ctx.strokeStyle = active ? "#fff" : "#000";
    if (isOutside(v, a)) {
        ctx.strokeStyle = color;
    } else {
        ctx.fillStyle = color;
        ctx.fill();
    }
    ctx.stroke();
    ctx.restore();
}

export function drawSegment(ctx, layout, [v0, a0], [v1, a1], color = "#ff8c2a") {
    ctx.save();
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.moveTo(...toPxClamped(layout, v0, a0));
    ctx.lineTo(...toPxClamped(layout, v1, a1));
    ctx.stroke();
    ctx.restore();
}

export function drawRegion(ctx, layout, [v0, a0], [v1, a1], color = "#ff8c2a") {
    const [x0, y0] = toPxClamped(layout, v0, a0);
    const [x1, y1] = toPxClamped(layout, v1, a1);
    ctx.save();
    ctx.fillStyle = color;
    ctx.globalAlpha = 0.15;
    ctx.fillRect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0));
    ctx.globalAlpha = 1;
    ctx.strokeStyle = color;
    ctx.setLineDash([4, 3]);
    ctx.strokeRect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0));
    ctx.restore();
}

/** n evenly spaced values from a to b, both ends included (as the Python nodes compute them). */
export function linspace(a, b, n) {
    if (n <= 1) return [a];
    return Array.from({ length: n }, (_, i) => a + ((b - a) * i) / (n - 1));
}
