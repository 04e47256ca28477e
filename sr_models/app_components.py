"""The app's controls, checked as the page sends them and as an API client may not.

Each class is its Gradio parent with the same front end (``is_template``) and a stricter
``preprocess``: an upload that is not a readable image, a value outside a control's
choices or range, a call with too few inputs, each gets a message that names the control
and repeats at most a short excerpt of what was sent (Gradio's own messages repeat it
whole: an API client that sends 1 MB gets 1 MB back).
"""

from __future__ import annotations

import math
import reprlib

import gradio as gr
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from PIL import Image, UnidentifiedImageError

from .app_errors import refuse
from .app_limits import MAX_BENCHMARK_PIXELS, MAX_INPUT_PIXELS


class UploadedImage(gr.Image):
    """gr.Image whose unreadable or oversized uploads are refused with a message (gr.Image
    raises a bare exception, which the user sees as Gradio's generic error)."""

    is_template = True  # same front end as gr.Image

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise refuse(f"The upload is too large to open: {err} The app takes up to {MAX_INPUT_PIXELS:,} "
                         f"pixels to upscale, {MAX_BENCHMARK_PIXELS:,} to benchmark.") from err
        except (UnidentifiedImageError, OSError, ValueError) as err:
            raise refuse(f"The upload is not a readable image ({type(err).__name__}).") from err


def check_choice(component: gr.Radio | gr.Dropdown, payload):
    """``payload`` if it is one of the component's choices, else a refusal that names the control."""
    choices = [value for _, value in component.choices]
    if payload not in choices:  # None, a list, an unknown string
        raise refuse(f"{component.label}: choose one of {', '.join(map(repr, choices))}; "
                     f"got {reprlib.repr(payload)}.")
    return payload


class ChoiceRadio(gr.Radio):
    """gr.Radio that refuses a value outside its choices with :func:`check_choice`."""

    is_template = True  # same front end as gr.Radio

    def preprocess(self, payload):
        return super().preprocess(check_choice(self, payload))


class ChoiceDropdown(gr.Dropdown):
    """gr.Dropdown that refuses a value outside its choices with :func:`check_choice`."""

    is_template = True  # same front end as gr.Dropdown

    def preprocess(self, payload):
        return super().preprocess(check_choice(self, payload))


class FlagCheckbox(gr.Checkbox):
    """gr.Checkbox that refuses anything but true or false (gr.Checkbox passes any value on)."""

    is_template = True  # same front end as gr.Checkbox

    def preprocess(self, payload):
        if not isinstance(payload, bool):
            raise refuse(f"{self.label}: true or false; got {reprlib.repr(payload)}.")
        return payload


class RangeSlider(gr.Slider):
    """gr.Slider that refuses anything but a finite number within its range (gr.Slider
    compares whatever it gets, and a string fails with a TypeError)."""

    is_template = True  # same front end as gr.Slider

    def preprocess(self, payload):
        number = isinstance(payload, (int, float)) and not isinstance(payload, bool)
        if not (number and math.isfinite(payload) and self.minimum <= payload <= self.maximum):
            raise refuse(f"{self.label}: a number from {self.minimum:g} to {self.maximum:g}; "
                         f"got {reprlib.repr(payload)}.")
        return super().preprocess(payload)


class AppBlocks(gr.Blocks):
    """gr.Blocks whose API answers a call with too few inputs with a message that names
    them: Gradio raises a ValueError there, which the caller sees as ``"error": null``
    (and whose text would repeat every value received)."""

    def validate_inputs(self, block_fn, inputs):
        expected = block_fn.inputs
        if len(inputs) < len(expected):
            names = ", ".join(getattr(block, "label", None) or type(block).__name__ for block in expected)
            raise refuse(f"The call sent {len(inputs)} of the {len(expected)} inputs; send all of them, "
                         f"in this order: {names}.")
        super().validate_inputs(block_fn, inputs)


def short_validation_error(request, error: RequestValidationError) -> JSONResponse:
    """FastAPI's answer to a malformed API request (422) without the ``input`` it repeats
    whole (a 1 MB body comes back as 1 MB)."""
    details = [{key: value for key, value in item.items() if key in ("type", "loc", "msg")} for item in error.errors()]
    return JSONResponse({"detail": details}, status_code=422)
