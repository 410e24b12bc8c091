"""Does a setting's value have its dataclass field's type? (TOML, checkpoint JSON and Python all give
settings; a string "no" for a bool or `true` for a count must be refused, not taken as truthy.)

Annotations are read as written (`int`, `float | None`, `bool`, `str`, `dict`): float accepts an int,
and bool is never an int.
"""
from __future__ import annotations

from dataclasses import fields

_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string", "dict": "a table"}


def _fits(name: str, v) -> bool:
    if name == "None":
        return v is None
    if name == "bool":
        return isinstance(v, bool)
    if name == "int":
        return isinstance(v, int) and not isinstance(v, bool)
    if name == "float":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if name == "str":
        return isinstance(v, str)
    if name == "dict":
        return isinstance(v, dict)
    return True  # an annotation this checker does not know: not checked


def _names(annotation) -> list:
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    return [t.strip() for t in text.split("|")]


def expected(annotation, none: bool = True) -> str:
    """'an integer', 'a number (or unset)', ...; none=False leaves unset out (TOML has no null)."""
    names = _names(annotation)
    words = " or ".join(_WORDS.get(t, t) for t in names if t != "None")
    return words + (" (or unset)" if none and "None" in names else "")


def kind_of(v) -> str:
    """The value's type in the words of TOML/JSON: 'a string', 'a boolean', 'an array', ..."""
    if isinstance(v, bool):
        return "a boolean"
    return {int: "an integer", float: "a number", str: "a string", list: "an array", tuple: "an array",
            dict: "a table", type(None): "null"}.get(type(v), f"a {type(v).__name__}")


def type_problem(annotation, v, none: bool = True) -> str | None:
    """None when v fits the annotation, else 'must be <expected>, got <v> (<kind>)'."""
    if not any(_fits(t, v) for t in _names(annotation)):
        return f"must be {expected(annotation, none)}, got {v!r} ({kind_of(v)})"
    return None


def field_types(cls) -> dict:
    """{field name: annotation} of a dataclass."""
    return {f.name: f.type for f in fields(cls)}
