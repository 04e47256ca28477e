"""Publishing a saved model folder to the Hugging Face Hub as one commit, and the one way
a Hub that cannot be reached is reported (uploads here, downloads in :mod:`sr_models.hub`):
one line naming the repo, the endpoint and the way out."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi, constants, get_token
from huggingface_hub.errors import HfHubHTTPError

from .constants import CARD_FILE, CONFIG_FILE, LIBRARY_NAME, WEIGHTS_FILE

try:  # the HTTP client huggingface_hub 2.x uses; 1.x used httpx
    from httpx2 import Timeout, TransportError
except ImportError:  # pragma: no cover - depends on the installed huggingface_hub
    from httpx import Timeout, TransportError

#: What a Hub call raises when the network, not the Hub, failed (no route, refused, timed
#: out, offline mode): huggingface_hub's OfflineModeIsEnabled is a ConnectionError.
NETWORK_ERRORS = (TransportError, OSError)

#: Files a model folder must hold to be worth publishing.
REQUIRED_FILES = (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE)
#: Top-level entries of a training output folder that stay local: resumable checkpoints
#: (optimizer state, GBs for HAT), tracker logs and the per-step validation grids.
LOCAL_ONLY = ("checkpoint-*", "logs", "validation")


class PublishError(Exception):
    """A publish that cannot go ahead; the message is one line and never holds a token."""


def unreachable(action: str, err: BaseException) -> str:
    """How every Hub call of the library says the network failed: the endpoint, what was
    being done (``action``, naming the repo) and the error, in one line."""
    return (f"cannot reach the Hugging Face Hub ({constants.ENDPOINT}) {action} "
            f"({err.__class__.__name__}: {' '.join(str(err).split())})")


def require_login() -> None:
    """A one-line PublishError before any upload when no token is set (else the Hub's 401)."""
    if get_token() is None:
        raise PublishError("not logged in to the Hugging Face Hub: run `hf auth login` or set HF_TOKEN")


@contextmanager
def upload_errors(repo_id: str) -> Iterator[None]:
    """A refusal of the Hub or a network failure while publishing to ``repo_id``, as one
    PublishError line (never a traceback of the HTTP client)."""
    try:
        yield
    except HfHubHTTPError as err:
        raise PublishError(f"the Hub refused the upload to {repo_id}: {str(err).splitlines()[0]}") from err
    except NETWORK_ERRORS as err:
        raise PublishError(unreachable(f"to publish {repo_id}", err) + "; nothing was published: "
                           "check the connection (and that HF_HUB_OFFLINE is not set), then push again") from err


def _published(path: Path, folder: Path) -> bool:
    parts = path.relative_to(folder).parts
    if any(part.startswith(".") for part in parts):
        return False
    return len(parts) == 1 or not any(fnmatch.fnmatch(parts[0], pattern) for pattern in LOCAL_ONLY)


def folder_operations(folder: Path) -> list[CommitOperationAdd]:
    """One add per file of the folder (recursive), without hidden files and the training
    run's local-only folders (LOCAL_ONLY)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and _published(p, folder))
    return [CommitOperationAdd(path_in_repo=p.relative_to(folder).as_posix(), path_or_fileobj=str(p)) for p in files]


def push_folder(folder: str | Path, repo_id: str, *, private: bool = False, revision: str | None = None,
                commit_message: str | None = None, api: HfApi | None = None) -> str:
    """Create the repo if needed (``exist_ok``) and upload the whole folder in one commit.

    Returns the commit URL. Raises PublishError for a missing or incomplete folder, no
    login, or a Hub / network failure.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise PublishError(f"{folder} is not a folder")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise PublishError(f"{folder} is not a saved model folder: missing {', '.join(missing)}")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise PublishError(f"--repo-id must look like USER/NAME, got {repo_id!r}")
    require_login()
    api = api or HfApi()
    with upload_errors(repo_id):
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if revision is not None:
            api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
        info = api.create_commit(
            repo_id, folder_operations(folder), repo_type="model", revision=revision,
            commit_message=commit_message or f"Upload {folder.name} with {LIBRARY_NAME}",
        )
    return info.commit_url
