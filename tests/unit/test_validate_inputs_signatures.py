"""Repo check: no node's validate_inputs takes **kwargs. In ComfyUI 0.3.75 a validate_inputs with **kwargs switches
the host's own min/max checks off for every input of the node (and one naming an input, for that input)."""

import ast

from paths import ROOT


def validate_functions():
    for path in sorted((ROOT / "nodes").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef) and node.name in ("validate_inputs", "VALIDATE_INPUTS"):
                yield str(path.relative_to(ROOT)), node


def test_no_validate_inputs_takes_kwargs():
    found = list(validate_functions())
    assert found, "expected validate_inputs methods in nodes/"
    offenders = [f"{name}:{fn.lineno}" for name, fn in found if fn.args.kwarg is not None]
    assert not offenders, f"validate_inputs with **kwargs: {offenders}"


def test_validate_inputs_names_few_inputs():
    """Every named input repeats a validate_inputs error once in the host's answer: keep the lists short."""
    for name, fn in validate_functions():
        named = [a.arg for a in fn.args.args if a.arg != "cls"]
        assert 1 <= len(named) <= 3, f"{name}:{fn.lineno} names {named}"
