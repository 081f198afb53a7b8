"""How emo-nodes validates node inputs, and the checks themselves: queue-time schema checks of literal values (used
by the on-prompt hook, nodes/shared/prompt_hook.py, and by the nodes' validate_inputs) and run-time checks of
linked values, tensors and weights.

What ComfyUI 0.3.75 checks by itself (execution.py validate_inputs), and what it leaves to us:

* It converts every literal input with int()/float()/str()/bool() and reports a failure once, on that input.
* It checks a schema min/max only for inputs that the node's validate_inputs does NOT name (and only when the
  function has no **kwargs); `val < min` is False for NaN, so NaN passes every FLOAT input; JSON from aiohttp
  accepts NaN and Infinity. It never checks a V3 combo's options, nor an INT's step.
* A validate_inputs error string is attached to EVERY input the function names, so a function naming n inputs
  shows each problem n times. Linked inputs arrive there as None placeholders, never as values.

So emo-nodes checks in two places, both against the node's own schema (nothing to keep in step by hand):

1. refuse_bad_literals, an on-prompt hook (nodes/shared/prompt_hook.py), sees every posted prompt before
   validation. For each literal INT, FLOAT and BOOLEAN input of an EmoNodes_* node it checks finiteness, min/max,
   an INT's step and whole-number values, normalises "true"/"false" strings (the host's bool("false") is True),
   and runs the node's own rules (`literal_rules`, e.g. V-A outside [-3, 3] without 'extrapolate', or a STRING
   output file name). A refused value is replaced by a Refused marker whose int()/float()/bool() (RefusedText:
   str()) raises our message, so the host reports it once, on that input, at queue time (HTTP 400). Linked values
   are checked when the node runs (check_number and friends, below).
2. validate_inputs, only for what the hook cannot report: combo options (the host never converts a V3 combo,
   so no marker can carry a message) and file lists. It names as few inputs as possible (no **kwargs, which
   would also switch the host's range checks off) and checks them with check_inputs, the same schema check.
   Every message starts with the input it is about; with n named inputs the host still shows it n times.
"""

import math

import folder_paths
import torch

from ...emo_core.checks import finite_number
from ...emo_core.weights import first_non_finite

# --- queue-time checks (literal values against the node's schema) -------------------------------------------------

BOOL_WORDS = {"true": True, "false": False}


class Refused(str):
    """A literal input value refused before the host validates it: the host's type conversion raises our message
    (reported as that input's only error); formatted, it shows the value that was sent. A str, so that the host can
    put it in its JSON answer (received_value)."""

    def __new__(cls, value, message: str):
        refused = super().__new__(cls, repr(value))
        refused.value, refused.message = value, message
        return refused

    def _refuse(self, *_):
        raise ValueError(self.message)

    __float__ = __int__ = __index__ = __bool__ = _refuse

    def __format__(self, spec: str = "") -> str:
        return repr(self.value)

    __repr__ = __format__


class RefusedText(Refused):
    """A refused literal STRING: the host converts strings with str(), so that is what raises our message."""

    __str__ = Refused._refuse


def input_specs(cls) -> dict[str, tuple[str, dict]]:
    """{input name: (type, options)} from the node's own schema, required and optional."""
    types = cls.INPUT_TYPES(include_hidden=False)
    return {name: (spec[0], spec[1] if len(spec) > 1 else {})
            for group in ("required", "optional") for name, spec in types.get(group, {}).items()}


def _limits(options: dict) -> str:
    low, high = options.get("min"), options.get("max")
    if low is not None and high is not None:
        return f"allowed {low} to {high}"
    return f"at least {low}" if low is not None else f"at most {high}" if high is not None else "any value"


def _exact_int(value) -> int | float:
    """An INT literal as a Python int when it is one (ints, and strings of digits: no float rounding, so seeds up to
    2**64 - 1 compare exactly); other values as float (fractions and non-finite values are refused as such)."""
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    return float(value)


def number_problem(name: str, kind: str, options: dict, value) -> str | None:
    """Why a literal INT/FLOAT value breaks its schema (min, max, finite, INT whole and on its step), or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None if isinstance(value, bool) else f"{name}: {value!r} is not a number"
    try:
        number = _exact_int(value) if kind == "INT" else float(value)
    except ValueError:
        return None  # not a number at all: the host's own conversion names it
    if isinstance(number, float) and (math.isnan(number) or math.isinf(number)):
        return f"{name}: {value} is not a finite number ({_limits(options)})"
    if kind == "INT" and isinstance(number, float):  # a fraction: compared as the float it is, then refused
        number = number if number != int(number) else int(number)
    low, high = options.get("min"), options.get("max")
    if low is not None and number < low:  # Python compares int with int (and int with float) exactly
        return f"{name}: {value} is below the minimum {low} ({_limits(options)})"
    if high is not None and number > high:
        return f"{name}: {value} is above the maximum {high} ({_limits(options)})"
    if kind == "INT":
        if isinstance(number, float):
            return f"{name}: {value} is not a whole number"
        step = options.get("step") or 1
        if step > 1 and (number - (low or 0)) % step:
            base = f"{low} + " if low else ""
            return f"{name}: {value} is not on the input's step of {step} (allowed {base}a multiple of {step})"
    return None


def bool_value(name: str, value) -> tuple[bool | None, str | None]:
    """(normalised value, problem) for a literal BOOLEAN: true/false, 0/1 and the strings 'true'/'false'."""
    if isinstance(value, bool):
        return value, None
    if isinstance(value, str) and value.strip().lower() in BOOL_WORDS:
        return BOOL_WORDS[value.strip().lower()], None
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value), None
    return None, f"{name}: {value!r} is not a boolean (use true or false)"


def value_problem(name: str, kind: str, options: dict, value) -> str | None:
    """The schema check of one literal value: numbers (number_problem), booleans, combo options."""
    if value is None or isinstance(value, Refused):
        return None  # a link (checked when the node runs), or already refused by the hook
    if kind in ("INT", "FLOAT"):
        return number_problem(name, kind, options, value)
    if kind == "BOOLEAN":
        return bool_value(name, value)[1]
    if kind == "COMBO" and "options" in options and value not in options["options"]:
        listed = options["options"]
        shown = ", ".join(map(str, listed)) if len(listed) <= 40 else f"{len(listed)} options"
        return f"{name}: '{value}' is not one of {shown}" if listed else f"{name}: '{value}' (no options exist)"
    return None


def check_inputs(cls, **values) -> bool | str:
    """validate_inputs helper: the named values against the node's own schema. Lists (input-list nodes) are checked
    item by item; None is a link. True, or every problem, each starting with its input's name."""
    specs = input_specs(cls)
    problems = []
    for name, value in values.items():
        kind, options = specs[name]
        for item in value if isinstance(value, (list, tuple)) else [value]:
            problem = value_problem(name, kind, options, item)
            if problem:
                problems.append(problem)
                break
    return "; ".join(problems) or True


def combo_error(name: str, value, options) -> str | None:
    if value is None or isinstance(value, Refused) or value in options:
        return None
    return f"{name}: '{value}' is not one of {', '.join(map(str, options))}"


def file_error(input_name: str, folder: str, name, extra=None) -> str | None:
    """None when ``name`` is a file of the model folder, or one of ``extra()`` when given (listed entries that are
    not files, e.g. a Hugging Face folder); else the error naming the input and the folder's paths."""
    if (name is None or isinstance(name, Refused) or name in folder_paths.get_filename_list(folder)
            or (extra is not None and name in extra())):
        return None
    return (f"{input_name}: '{name}' is not in the {folder} model folder(s): "
            f"{', '.join(folder_paths.get_folder_paths(folder))}")


def first_error(*errors: str | bool | None) -> bool | str:
    """True, or every problem found (check_inputs results and *_error strings), joined."""
    problems = [e for e in errors if isinstance(e, str) and e]
    return "; ".join(problems) or True


# --- queue-time checks above; run-time checks (linked values, tensors, results) ----------------------------------


def check_number(name: str, value, low: float | None = None, high: float | None = None) -> float:
    """A value that arrived through a link: finite and within [low, high], or a ValueError naming it."""
    if isinstance(value, Refused):
        raise ValueError(value.message)
    number = finite_number(name, value)
    if (low is not None and number < low) or (high is not None and number > high):
        raise ValueError(f"{name}: {value} is outside the allowed range {low:g} to {high:g}")
    return number


def check_finite(what: str, tensor: torch.Tensor) -> None:
    """Refuse NaN/inf in a tensor, saying what held them and how many."""
    bad = (~torch.isfinite(tensor)).sum().item() if tensor.is_floating_point() else 0
    if bad:
        raise ValueError(f"{what} contains {bad} non-finite value(s) (NaN or infinity) out of {tensor.numel()}")


def check_finite_weights(network: torch.nn.Module, source: str) -> None:
    """Refuse a network whose weights hold NaN/inf (one handed over in memory; files are checked when read)."""
    key = first_non_finite(network.state_dict())
    if key is not None:
        raise ValueError(f"{source}: weight '{key}' contains NaN or infinity; the file is damaged or the "
                         "training diverged, and every output would be NaN (a black image)")
