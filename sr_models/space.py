"""Deploy the Gradio app as a Hugging Face Space in one commit (``sr-models space deploy``).

The Space gets exactly what the app needs, taken from a source checkout: the entry point
``app.py``, the package's Python files, the bundled weights folders, the example images, a
``requirements.txt`` and a ``README.md`` whose front matter configures the Space. The
front matter is the checkout's own README.md front matter (the one place the Space's
title, emoji, colours and licence are said), with the installed gradio as ``sdk_version``.
Binary files (weights, images) go to the Hub's large-file storage (Xet / LFS) by
themselves: ``create_commit`` uploads each file the way the Hub asks for it, no
``.gitattributes`` needed. Files of an earlier deploy that are no longer part of the Space
are deleted in the same commit, so the Space mirrors the checkout.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
from huggingface_hub.errors import HFValidationError
from huggingface_hub.repocard import SpaceCard
from huggingface_hub.repocard_data import SpaceCardData
from huggingface_hub.utils import validate_repo_id

from .bundled import BUNDLED
from .constants import LIBRARY_NAME, PROJECT_URL
from .publish import PublishError, require_login, upload_errors

#: The checkout a deploy reads (the folder holding app.py, sr_models/, weights/, examples/).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
APP_FILE, CARD_FILE, REQUIREMENTS_FILE = "app.py", "README.md", "requirements.txt"
SPACE_SDK = "gradio"
#: Kept in the Space whatever the checkout holds: the Hub writes it when it creates a repo.
KEPT_IN_SPACE = (".gitattributes",)
#: A Space runs on a CPU unless paid hardware is chosen: PyTorch's CPU wheels (0.19 GB)
#: instead of PyPI's, which pull 2.2 GB of CUDA libraries on Linux x86_64. An extra index:
#: pip takes torch==X as X+cpu from it (the higher version), everything else from PyPI.
CPU_TORCH_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"
#: What the Hub accepts in a Space's front matter (huggingface.co/docs/hub/spaces-config-reference).
SPACE_COLORS = ("red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray")
SHORT_DESCRIPTION_MAX = 60
REQUIRED_KEYS = ("title", "emoji", "colorFrom", "colorTo", "license", "short_description")


def _is_shipped(path: Path, folder: Path) -> bool:
    """Not hidden, not a bytecode cache (what a checkout holds beside the sources)."""
    return path.is_file() and not any(part.startswith(".") or part == "__pycache__"
                                      for part in path.relative_to(folder).parts)


def space_files(root: Path = PROJECT_ROOT) -> dict[str, Path]:
    """The checkout's files the Space runs, by their path in the Space.

    Args:
        root: the source checkout.

    Returns:
        ``{path in the Space: local file}``, sorted: app.py, requirements.txt, every
        ``sr_models/**/*.py``, every file of the bundled weights folders and of examples/.

    Raises:
        PublishError: when ``root`` is not a source checkout holding all of them.
    """
    package = root / "sr_models"
    data_folders = [root / "examples", *(root / "weights" / entry.folder for entry in BUNDLED.values())]
    needed = [root / APP_FILE, root / REQUIREMENTS_FILE, root / CARD_FILE, package, *data_folders]
    missing = [path for path in needed if not path.exists()]
    if missing:
        raise PublishError(f"{root} is not a source checkout of {LIBRARY_NAME} (missing "
                           f"{', '.join(str(p.relative_to(root)) for p in missing)}): deploy from a clone of "
                           f"{PROJECT_URL}")
    files = [root / APP_FILE, root / REQUIREMENTS_FILE, *package.rglob("*.py")]  # no .pyi stub, no bytecode
    for folder in data_folders:
        files += folder.rglob("*")
    return {p.relative_to(root).as_posix(): p for p in sorted(files) if _is_shipped(p, root)}


def gradio_version() -> str:
    """The installed gradio's version: the Space's ``sdk_version``, the one the app was run with.

    Raises:
        PublishError: without gradio (the ``[app]`` extra).
    """
    try:
        return metadata.version("gradio")
    except metadata.PackageNotFoundError:
        raise PublishError("deploying a Space needs gradio installed (pip install 'sr-models[app]'): its version "
                           "is the Space's sdk_version") from None


def space_requirements(root: Path, sdk_version: str) -> str:
    """The Space's requirements.txt: the checkout's, behind PyTorch's CPU index (CPU_TORCH_INDEX).

    Args:
        root: the source checkout.
        sdk_version: the gradio version the Space runs (its ``sdk_version``).

    Returns:
        The file's text.

    Raises:
        PublishError: when requirements.txt pins another gradio (the Space would install
            sdk_version, then pip replace it by the pin).
    """
    text = (root / REQUIREMENTS_FILE).read_text()
    pinned = re.search(r"^gradio==(\S+)", text, re.MULTILINE)
    if pinned and pinned.group(1) != sdk_version:
        raise PublishError(f"{REQUIREMENTS_FILE} pins gradio=={pinned.group(1)}, but gradio {sdk_version} is "
                           "installed (the Space's sdk_version): install the pinned version, or update the pin")
    return (f"# The Space's copy of {REQUIREMENTS_FILE}, with PyTorch's CPU wheels (a Space runs on a CPU)\n"
            f"{CPU_TORCH_INDEX}\n{text}")


def space_card(root: Path, sdk_version: str) -> SpaceCard:
    """The Space's README.md: the checkout's README.md front matter (gradio at ``sdk_version``,
    app.py as the app) and a short text pointing to the project.

    Args:
        root: the source checkout.
        sdk_version: the gradio version the Space runs.

    Returns:
        The card; ``str(card)`` is the file.

    Raises:
        PublishError: when the front matter lacks a key a Space needs or holds a value the Hub refuses.
    """
    fields = SpaceCard.load(root / CARD_FILE).data.to_dict()
    fields.update(sdk=SPACE_SDK, sdk_version=sdk_version, app_file=APP_FILE)
    _check_front_matter(fields, root / CARD_FILE)
    data = SpaceCardData(**fields)
    body = (f"# {fields['title']}\n\n{fields['short_description']}.\n\n"
            f"The Gradio app of [{LIBRARY_NAME}]({PROJECT_URL}): the models, the study, the command line and the "
            f"training code are there. Deployed with `{LIBRARY_NAME} space deploy`.\n")
    return SpaceCard(f"---\n{data.to_yaml()}\n---\n\n{body}")


def _check_front_matter(fields: dict, source: Path) -> None:
    missing = [key for key in REQUIRED_KEYS if not fields.get(key)]
    if missing:
        raise PublishError(f"{source}: the front matter lacks {', '.join(missing)}, which the Space's README needs")
    for key in ("colorFrom", "colorTo"):
        if fields[key] not in SPACE_COLORS:
            raise PublishError(f"{source}: {key}={fields[key]!r} is not a Space colour ({', '.join(SPACE_COLORS)})")
    if len(fields["short_description"]) > SHORT_DESCRIPTION_MAX:
        raise PublishError(f"{source}: short_description has {len(fields['short_description'])} characters, over "
                           f"the Hub's {SHORT_DESCRIPTION_MAX}")


def space_operations(root: Path = PROJECT_ROOT) -> list[CommitOperationAdd]:
    """One add per file of the Space: the checkout's files (:func:`space_files`), the
    Space's requirements.txt and README.md in place of the checkout's."""
    sdk_version = gradio_version()
    files = space_files(root)
    generated = {REQUIREMENTS_FILE: space_requirements(root, sdk_version), CARD_FILE: str(space_card(root, sdk_version))}
    operations = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=str(local))
                  for path, local in files.items() if path not in generated]
    operations += [CommitOperationAdd(path_in_repo=path, path_or_fileobj=text.encode())
                   for path, text in generated.items()]
    return sorted(operations, key=lambda op: op.path_in_repo)


def deploy_space(repo_id: str, *, private: bool = False, token: str | None = None, root: Path = PROJECT_ROOT,
                 api: HfApi | None = None) -> tuple[str, int]:
    """Create the Gradio Space ``repo_id`` if needed and upload the app to it in one commit.

    Args:
        repo_id: ``USER/NAME`` of the Space.
        private: create it as private (an existing Space keeps its visibility).
        token: a Hub token with write access (default: the login of ``hf auth login`` or HF_TOKEN).
        root: the source checkout to deploy.
        api: the Hub client (a stand-in in tests).

    Returns:
        (the Space's URL, how many files it holds now).

    Raises:
        PublishError: for a bad repo id, no login, a checkout that lacks a file, or a Hub
            that refuses or cannot be reached (one line, as ``sr-models push``).
    """
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise PublishError(f"--repo-id must look like USER/NAME: {err}") from None
    if repo_id.count("/") != 1:
        raise PublishError(f"--repo-id must look like USER/NAME, got {repo_id!r}")
    operations = space_operations(root)  # every local check before the first request
    if token is None:
        require_login()
    api = api or HfApi(token=token)
    with upload_errors(repo_id):
        # None, not False, unless asked: an organisation's default visibility then applies
        url = api.create_repo(repo_id, repo_type="space", space_sdk=SPACE_SDK, private=private or None,
                              exist_ok=True)
        uploaded = {op.path_in_repo for op in operations}
        stale = sorted(set(api.list_repo_files(repo_id, repo_type="space")) - uploaded - set(KEPT_IN_SPACE))
        api.create_commit(repo_id, [*operations, *(CommitOperationDelete(path_in_repo=p) for p in stale)],
                          repo_type="space", commit_message=f"Deploy the {LIBRARY_NAME} app")
    return str(url), len(operations)
