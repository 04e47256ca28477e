"""How the command line's commands fail: the exceptions they raise and the one line each
failure is said in. Standard library only (see sr_models.cli)."""

from __future__ import annotations

from pathlib import Path


class CommandError(Exception):
    """A user mistake: printed as one line, exit code 2."""


class SkippedImage(Exception):
    """One image of a batch that is not written (the message names it); the run goes on."""


class OutputExists(SkippedImage):
    """The output file exists (from an earlier run, or written meanwhile by another one): it
    is kept. A failure, unless the run was told to skip existing outputs."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (how Docker, systemd and Spaces stop a process). A KeyboardInterrupt, so that
    everything that cleans up after Ctrl-C (partial files, progress bars) does the same."""


def out_of_memory(err: BaseException) -> bool:
    return isinstance(err, MemoryError) or "out of memory" in str(err).lower()


def describe_failure(src: Path, err: Exception) -> str:
    """One line naming the image and what went wrong (with a hint for out of memory)."""
    text = " ".join(str(err).split()) or type(err).__name__
    if not isinstance(err, (ValueError, OSError, SkippedImage)):
        text = f"{type(err).__name__}: {text}"
    if str(src) not in text:
        text = f"{src}: {text}"
    if out_of_memory(err):
        text += " (out of memory: try a smaller --tile, e.g. --tile 256)"
    return text
