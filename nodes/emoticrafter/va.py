"""Valence-arousal nodes: single points or lists, grids, straight paths, and the contact sheet of a rendered batch."""

from comfy_api.latest import io

from ...emo_core.emoticrafter.va import VA_MAX, VA_MIN, VAPoints, va_problem
from ...emo_core.plots.sheet import contact_sheet
from ..shared.sockets import CATEGORY, VA
from ..shared.validation import check_number

# The widgets allow more than the trained range so that 'extrapolate' can reach it; validation guards the rest.
WIDGET_LIMIT = 10.0
EXTRAPOLATE_TIP = "Allow values outside [-3, 3]; the networks were never trained there."


def va_input(name: str, default: float, tip: str) -> io.Float.Input:
    return io.Float.Input(name, default=default, min=-WIDGET_LIMIT, max=WIDGET_LIMIT, step=0.05, tooltip=tip)


def va_rules(*names: str):
    """literal_rules for the queue-time hook (nodes/shared/prompt_hook.py): each literal V-A value outside the
    trained range while a literal 'extrapolate' is off is refused on its own input. The schema's [-10, 10] and
    finiteness are checked by the hook itself; a linked value (or a linked 'extrapolate') is checked when the node
    runs."""

    def rules(values: dict) -> dict[str, str]:
        if "extrapolate" not in values:
            return {}
        problems = {name: va_problem(name, values[name], values["extrapolate"]) for name in names if name in values}
        return {name: problem for name, problem in problems.items() if problem}

    return classmethod(lambda cls, values: rules(values))


def check_va_inputs(extrapolate, **values) -> None:
    """Run-time check of (possibly linked) V-A inputs, each error naming its input."""
    for name, value in values.items():
        problem = va_problem(name, value, bool(extrapolate))
        if problem:
            raise ValueError(problem)


class ValenceArousal(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="EmoNodes_ValenceArousal",
            display_name="Valence-Arousal",
            category=CATEGORY,
            description=f"Emotion coordinates on EmotiCrafter's trained scale [{VA_MIN:g}, {VA_MAX:g}]: valence "
                        "(unpleasant to pleasant) and arousal (calm to excited). Lists of values make a batch.",
            is_input_list=True,
            inputs=[
                va_input("valence", 0.0, "Valence: -3 very unpleasant, 0 neutral, +3 very pleasant."),
                va_input("arousal", 0.0, "Arousal: -3 very calm, 0 neutral, +3 very excited."),
                io.Boolean.Input("extrapolate", default=False, tooltip=EXTRAPOLATE_TIP),
            ],
            outputs=[VA.Output(display_name="va")],
        )

    # No validate_inputs: naming an input there would switch off the host's own range check for it, and links
    # arrive there as placeholders. Literal values are checked at queue time by the hook; linked ones here.
    literal_rules = va_rules("valence", "arousal")

    @classmethod
    def execute(cls, valence, arousal, extrapolate) -> io.NodeOutput:
        return io.NodeOutput(VAPoints.from_lists(valence, arousal, extrapolate=any(map(bool, extrapolate))))


class EmotionGrid(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="EmoNodes_EmotionGrid",
            display_name="Emotion Grid (V x A)",
            category=CATEGORY,
            description="A rows x columns batch of V-A points: columns step valence, rows step arousal. Render it "
                        "with one KSampler and a fixed seed, then lay it out with Emotion Contact Sheet.",
            inputs=[
                va_input("valence_from", -3.0, "Valence of the first column."),
                va_input("valence_to", 3.0, "Valence of the last column."),
                io.Int.Input("columns", default=5, min=1, max=16),
                va_input("arousal_from", 3.0, "Arousal of the top row."),
                va_input("arousal_to", -3.0, "Arousal of the bottom row."),
                io.Int.Input("rows", default=5, min=1, max=16),
                io.Boolean.Input("extrapolate", default=False, tooltip=EXTRAPOLATE_TIP),
            ],
            outputs=[VA.Output(display_name="va"), io.Int.Output(display_name="count")],
        )

    literal_rules = va_rules("valence_from", "valence_to", "arousal_from", "arousal_to")

    @classmethod
    def execute(cls, valence_from, valence_to, columns, arousal_from, arousal_to, rows,
                extrapolate) -> io.NodeOutput:
        check_va_inputs(extrapolate, valence_from=valence_from, valence_to=valence_to, arousal_from=arousal_from,
                        arousal_to=arousal_to)
        columns, rows = int(check_number("columns", columns, 1, 16)), int(check_number("rows", rows, 1, 16))
        points = VAPoints.make_grid((valence_from, valence_to), (arousal_from, arousal_to), columns, rows,
                                    extrapolate)
        return io.NodeOutput(points, len(points))


class EmotionPath(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="EmoNodes_EmotionPath",
            display_name="Emotion Path (A to B)",
            category=CATEGORY,
            description="Evenly spaced V-A points on the straight line between two emotions, both ends included.",
            inputs=[
                va_input("valence_start", -2.0, "Valence at the start."),
                va_input("arousal_start", -2.0, "Arousal at the start."),
                va_input("valence_end", 2.0, "Valence at the end."),
                va_input("arousal_end", 2.0, "Arousal at the end."),
                io.Int.Input("steps", default=5, min=1, max=64),
                io.Boolean.Input("extrapolate", default=False, tooltip=EXTRAPOLATE_TIP),
            ],
            outputs=[VA.Output(display_name="va"), io.Int.Output(display_name="count")],
        )

    literal_rules = va_rules("valence_start", "arousal_start", "valence_end", "arousal_end")

    @classmethod
    def execute(cls, valence_start, arousal_start, valence_end, arousal_end, steps, extrapolate) -> io.NodeOutput:
        check_va_inputs(extrapolate, valence_start=valence_start, arousal_start=arousal_start,
                        valence_end=valence_end, arousal_end=arousal_end)
        steps = int(check_number("steps", steps, 1, 64))
        points = VAPoints.make_path((valence_start, arousal_start), (valence_end, arousal_end), steps, extrapolate)
        return io.NodeOutput(points, len(points))


class EmotionContactSheet(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="EmoNodes_EmotionContactSheet",
            display_name="Emotion Contact Sheet",
            category=CATEGORY,
            description="Lays out a decoded batch (one image per V-A point) with valence and arousal labels.",
            inputs=[
                io.Image.Input("images"),
                VA.Input("va", tooltip="The V-A batch that conditioned these images."),
                io.Int.Input("columns", default=0, min=0, max=64,
                             tooltip="0 = the grid's own columns (or one row for other batches)."),
            ],
            outputs=[io.Image.Output(display_name="sheet")],
        )

    @classmethod
    def execute(cls, images, va, columns) -> io.NodeOutput:
        return io.NodeOutput(contact_sheet(images, va, int(check_number("columns", columns, 0, 64)) or None))
