"""Output files of the command line: the folder checked before any work, each image written
whole under a hidden temporary name, then given its real name without ever replacing a
file that appeared meanwhile (unless told to). Standard library only (see sr_models.cli)."""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from .cli_errors import CommandError, OutputExists

#: Marks the temporary file an output is written to before it gets its name (after a
#: hidden dot: ``.a_x4.png.partial-1f2e3d4c``); neither hidden names nor this suffix are inputs.
PARTIAL_MARK = ".partial-"
#: NAME_MAX of Linux, macOS and Windows file systems, for where os.pathconf cannot say.
DEFAULT_NAME_MAX = 255


def check_output_folder(folder: Path, option: str) -> None:
    """A usage error unless ``folder`` is a folder, or can be made one, that files can be
    created in: said before any model is loaded, rather than once per image after the work.
    Nothing is left behind (the folder itself is made only when the first file is written)."""
    existing = folder
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = ("a file" if existing.is_file() else "a broken symbolic link" if existing.is_symlink()
                else "a special file")
        subject = f"{option} {folder}" if existing == folder else f"{option} {folder}: {existing}"
        raise CommandError(f"{subject} is {what}, not a folder")
    try:
        tempfile.TemporaryDirectory(dir=existing, prefix=".sr-models-check-").cleanup()
    except OSError as err:
        raise CommandError(f"{option} {folder}: cannot create files in {existing} ({err.strerror or err})") from err


def name_max(folder: Path) -> int:
    """The longest file name, in bytes, that ``folder``'s file system takes."""
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):  # no pathconf (Windows), or it cannot say
        return DEFAULT_NAME_MAX


def name_too_long(path: Path) -> str | None:
    """Why ``path``'s name cannot be created in its (existing or future) folder, or None."""
    existing = path.parent
    while not existing.is_dir() and existing != existing.parent:
        existing = existing.parent
    size, limit = len(os.fsencode(path.name)), name_max(existing)
    return f"its name is {size} bytes, over the file system's {limit}" if size > limit else None


def partial_path(path: Path) -> Path:
    """The hidden name ``path`` is written under first: ``.NAME.partial-XXXXXXXX``, with NAME
    shortened as needed so that the whole fits the file system's limit (a name that fits
    must never fail on its temporary name). The folder must exist."""
    mark = f"{PARTIAL_MARK}{secrets.token_hex(4)}"
    room = name_max(path.parent) - len(os.fsencode(f".{mark}"))
    name = path.name
    while len(os.fsencode(name)) > room:  # by characters: a multi-byte character is never split
        name = name[:-1]
    return path.with_name(f".{name}{mark}")


def save_atomically(image, path: Path, image_format: str, *, overwrite: bool) -> None:
    """Write ``image`` to a hidden partial file beside ``path``, which takes the name ``path``
    once complete: a killed run leaves no half-written image under a real name, and what it
    leaves is never read as an input. Without ``overwrite``, a file that took the name
    meanwhile (another run) is kept: OutputExists. The file mode is the usual one (0666
    less the umask), as for any file the user creates."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path)
    try:
        with open(tmp, "xb") as f:
            image.save(f, format=image_format)
        if overwrite:
            os.replace(tmp, path)
        else:
            _publish_new(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _publish_new(tmp: Path, path: Path) -> None:
    """Give ``tmp``'s file the name ``path`` only if no file has it, atomically (``os.replace``
    would replace it): OutputExists otherwise."""
    try:
        if _hard_link(tmp, path):
            return
        with open(path, "xb"):  # no hard links: claim the name, held by an empty file until the rename
            pass
    except FileExistsError as err:
        raise OutputExists(f"{path} appeared while this run worked (another run?); kept it, and this output is "
                           "not written (--overwrite replaces it)") from err
    try:
        os.replace(tmp, path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _hard_link(tmp: Path, path: Path) -> bool:
    """Link ``path`` to ``tmp``'s file (FileExistsError if the name exists); False where the
    file system has no hard links (FAT, exFAT, some network and FUSE file systems)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:
        return False
    return True
