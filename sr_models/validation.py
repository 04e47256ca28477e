"""Validation in one style: rules as data, checked before anything is built.

A *rule* is ``(check, expected)``: a predicate and, in words, what it accepts. Each
configuration keeps a table of them, one per field (``CONFIG_RULES`` of HAT and ESPCN,
the rules of a degradation ``Stage``), checked by :func:`check_fields`; the builders here
(:func:`int_in`, :func:`number_in`, ...) state each bound once, for the check and the
message alike. Rules that combine fields stay beside their table and raise
:func:`invalid`. Also the argparse types of the command line and the training scripts.

Standard library only (and the package's constants): ``sr-models COMMAND --help``
imports it without torch.
"""

from __future__ import annotations

import argparse
import math
import reprlib
from collections.abc import Callable, Collection, Mapping

from .constants import MAX_MODEL_BYTES, MODEL_SIZE_MARGIN

#: Upscaling factors every architecture builds: the study's 2, 3, 4, and 8, the pixel-shuffle
#: upsampler's choices upstream (HAT's option files).
SCALES = (2, 3, 4, 8)

#: (check, what it accepts in words)
Rule = tuple[Callable[[object], bool], str]

#: How a bad field is said: "HAT: depths=[100000, 3] is invalid: expected ...".
FIELD_ERROR = "{owner}: {name}={value} is invalid: {rule}"


def is_int(value) -> bool:
    """An int, not a bool (JSON's true is no width)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A finite int or float, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def int_in(lo: int, hi: int) -> Rule:
    """An integer in [lo, hi]."""
    return (lambda v: is_int(v) and lo <= v <= hi), f"expected an integer in [{lo}, {hi}]"


def int_list(max_len: int, hi: int) -> Rule:
    """A list of 1 to ``max_len`` integers, each in [1, hi]."""
    def check(v) -> bool:
        return isinstance(v, (list, tuple)) and 0 < len(v) <= max_len and all(is_int(i) and 1 <= i <= hi for i in v)
    return check, f"expected a list of 1 to {max_len} integers, each in [1, {hi}]"


def number_in(lo: float, hi: float, *, open_low: bool = False, open_high: bool = False) -> Rule:
    """A finite number between ``lo`` and ``hi``, each end included unless said open."""
    def check(v) -> bool:
        return is_number(v) and (lo < v if open_low else lo <= v) and (v < hi if open_high else v <= hi)
    interval = f"{'(' if open_low else '['}{lo:g}, {hi:g}{')' if open_high else ']'}"
    return check, f"expected a number in {interval}"


def one_of(choices: Collection) -> Rule:
    """One of ``choices`` (compared by equality, so that an unhashable value fails, not raises)."""
    choices = tuple(choices)
    return (lambda v: any(type(v) is type(c) and v == c for c in choices)), f"expected one of {choices}"


BOOL: Rule = (lambda v: isinstance(v, bool)), "expected true or false"
SCALE: Rule = (lambda v: is_int(v) and v in SCALES), f"expected an integer, one of {SCALES}"


def invalid(owner: str, name: str, value, rule: str, template: str = FIELD_ERROR) -> ValueError:
    """The error for field ``name`` of ``owner``: one line, the value shortened by reprlib."""
    return ValueError(template.format(owner=owner, name=name, value=reprlib.repr(value), rule=rule))


def require_int(value, name: str, lowest: int) -> int:
    """A function's integer argument, checked: the library's arguments (a scale, a border) say
    what is wrong in one line, whatever the caller passed.

    Args:
        value: the argument as given.
        name: its name, for the message.
        lowest: the smallest value accepted.

    Returns:
        ``value`` as an int.

    Raises:
        TypeError: not an int (a bool or a float is refused too).
        ValueError: below ``lowest``.
    """
    if not is_int(value):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < lowest:
        raise ValueError(f"{name} must be >= {lowest}, got {value}")
    return int(value)


def check_fields(owner: str, rules: Mapping[str, Rule], values: Mapping, template: str = FIELD_ERROR) -> None:
    """Check each of ``values`` by its rule in ``rules``.

    Args:
        owner: who the fields belong to, for the message ("HAT", "degradation config").
        rules: field name -> rule; every name of ``values`` must have one.
        values: field name -> value.
        template: the message, with {owner}, {name}, {value} and {rule}.

    Raises:
        ValueError: for the first field that breaks its rule, naming it, its value and the rule.
    """
    for name, value in values.items():
        check, rule = rules[name]
        if not check(value):
            raise invalid(owner, name, value, rule, template)


def check_model_size(architecture: str, n_bytes: int) -> None:
    """Refuse, before anything is allocated, a configuration whose model would be too large.

    Args:
        architecture: the class name, for the message.
        n_bytes: what the model would hold (each architecture counts it from its configuration).

    Raises:
        ValueError: over MAX_MODEL_BYTES.
    """
    if n_bytes > MAX_MODEL_BYTES:
        raise ValueError(f"{architecture}: this configuration describes a model of {n_bytes / 1e9:,.1f} GB "
                         f"(parameters and buffers), over the limit of {MAX_MODEL_BYTES / 1e9:.1f} GB "
                         f"({MODEL_SIZE_MARGIN}x HAT-L, the largest published model)")


# --------------------------------------------------------------------------- argparse types


def _parsed(text: str, kind: type, what: str):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None


def _int_at_least(text: str, lowest: int) -> int:
    value = _parsed(text, int, "an integer")
    if value < lowest:
        raise argparse.ArgumentTypeError(f"must be >= {lowest}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _int_at_least(text, 0)


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = _parsed(text, float, "a number")
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    value = _parsed(text, float, "a number")
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def int_between(lo: int, hi: int) -> Callable[[str], int]:
    """argparse type factory: an integer in [lo, hi] (a seed of numpy's 32 bits).

    Args:
        lo: the smallest value accepted.
        hi: the largest value accepted.

    Returns:
        The type function, raising ArgumentTypeError with the bounds.
    """
    def parse(text: str) -> int:
        value = _parsed(text, int, "an integer")
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be in [{lo}, {hi}], got {value}")
        return value
    return parse


def fraction(text: str) -> float:
    """argparse type: a number in [0, 1) (a decay, an Adam beta)."""
    value = _parsed(text, float, "a number")
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value
