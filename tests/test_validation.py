"""The shared validators: rule builders, the field check and its message, the argparse
types of the command line (and, through them, the training scripts)."""

import argparse
import subprocess
import sys

import numpy as np
import pytest

import sr_models.hub as hub
from sr_models import validation
from sr_models.__main__ import main
from sr_models.validation import (BOOL, SCALE, SCALES, check_fields, fraction, int_in, int_list, non_negative_float,
                                  non_negative_int, number_in, one_of, positive_float, positive_int)


@pytest.mark.parametrize("rule,good,bad,text", [
    (int_in(1, 16), [1, 16], [0, 17, 3.0, True, "3"], "expected an integer in [1, 16]"),
    (int_list(2, 9), [[1], (9, 9)], [[], [1, 2, 3], [0], [10], [True], 5], "expected a list of 1 to 2 integers, each in [1, 9]"),
    (number_in(-100.0, 100.0), [-100, 0.5, 100], [101, float("nan"), float("inf"), True, "1"],
     "expected a number in [-100, 100]"),
    (number_in(0, 1, open_high=True), [0, 0.99], [1, -0.1], "expected a number in [0, 1)"),
    (number_in(0, 16, open_low=True), [16, 1e-9], [0], "expected a number in (0, 16]"),
    (one_of(("relu", "tanh")), ["relu"], [["relu"], np.array(["relu"]), None, 1], "expected one of ('relu', 'tanh')"),
    (BOOL, [True, False], [0, 1, "true", None], "expected true or false"),
    (SCALE, list(SCALES), [1, 5, 16, 4.0, True], "expected an integer, one of (2, 3, 4, 8)"),
])
def test_rules_accept_and_refuse_and_say_what_they_expect(rule, good, bad, text):
    check, expected = rule
    assert expected == text
    assert all(check(v) for v in good) and not any(check(v) for v in bad)


def test_check_fields_names_the_first_bad_field_its_value_and_rule():
    rules = {"a": int_in(1, 2), "b": BOOL}
    check_fields("M", rules, {"a": 1, "b": True})
    with pytest.raises(ValueError, match=r"^M: a=3 is invalid: expected an integer in \[1, 2\]$"):
        check_fields("M", rules, {"a": 3, "b": "x"})
    with pytest.raises(ValueError, match=r"^M b='x' \(expected true or false\)$"):
        check_fields("M", rules, {"b": "x"}, template="{owner} {name}={value} ({rule})")
    with pytest.raises(ValueError, match=r"a=\[1, 1, 1, 1, 1, 1, \.\.\.\] is invalid"):  # long values shortened
        check_fields("M", {"a": BOOL}, {"a": [1] * 10**6})


@pytest.mark.parametrize("parse,text,message", [
    (positive_int, "0", "must be >= 1, got 0"),
    (positive_int, "x", "must be an integer, got 'x'"),
    (non_negative_int, "-1", "must be >= 0, got -1"),
    (positive_float, "inf", "must be a number > 0, got inf"),
    (positive_float, "nan", "must be a number > 0, got nan"),
    (non_negative_float, "-1", "must be a number >= 0, got -1"),
    (fraction, "1", "must be in [0, 1), got 1"),
    (fraction, "one", "must be a number, got 'one'"),
])
def test_argparse_types_refuse_in_one_line(parse, text, message):
    with pytest.raises(argparse.ArgumentTypeError) as err:
        parse(text)
    assert str(err.value) == message


def test_argparse_types_accept():
    assert (positive_int("3"), non_negative_int("0"), positive_float("2e-4"), non_negative_float("0"),
            fraction("0.999")) == (3, 0, 2e-4, 0.0, 0.999)


def test_the_command_line_uses_the_shared_types(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--hr", str(tmp_path), "--limit", "0"])
    assert exit_info.value.code == 2 and "--limit: must be >= 1, got 0" in capsys.readouterr().err


def test_the_size_check_keeps_its_old_home():
    assert hub.check_model_size is validation.check_model_size


def test_the_validators_and_name_tables_import_without_torch():
    code = ("import sys\nimport sr_models.validation, sr_models.bundled, sr_models.hat_config\n"
            "print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip() == "False", proc.stderr
