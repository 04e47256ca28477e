"""How the app answers a user's mistake: a message on the page, one line in the log.

A mistake (no image, an image too large, a value outside a control's choices) is not a
fault of the app: the user sees a ``gr.Error`` that says what is wrong, and the server's
log gets one line, not the traceback Gradio prints for other errors.
"""

from __future__ import annotations

import contextlib
import logging

import gradio as gr

from .image_io import ImageInputError

logger = logging.getLogger("sr_models.app")


def refuse(message: str) -> gr.Error:
    """The gr.Error to raise for a user's mistake, logged in one line."""
    logger.info("refused: %s", message)
    return gr.Error(message, print_exception=False)


@contextlib.contextmanager
def user_errors(path: str):
    """The library's ImageInputError as a refusal naming "the upload" (not a temporary path)."""
    try:
        yield
    except ImageInputError as err:
        raise refuse(str(err).replace(str(path), "the upload")) from err
