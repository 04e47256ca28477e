"""An unreachable Hub fails at once, in one line (issue 20, item 6).

huggingface_hub retries a file that is not in the cache five times with backoff: offline,
``load_model("you/x")`` took 23 s and printed five retry lines, ``HAT.from_pretrained``
46 s and ended in a raw LocalEntryNotFoundError, ``push_to_hub`` in a bare ConnectError.
Here the Hub is a closed port on this machine (HF_ENDPOINT is read when huggingface_hub
is imported: a child process), and the child counts the HTTP requests each call makes.
"""

import json
import os
import socket
import subprocess
import sys

import pytest

#: Each call of the child, by name; every one must fail.
_CHILD = """
import contextlib, io, json, sys
import httpx2
from sr_models import ESPCN, HAT, load_model
from sr_models.cli import main

# Requests for the repo; huggingface_hub's own first request of a process (its agent
# registry) is left out: it is made once, whichever call comes first.
requests = []
send = httpx2.Client.send
httpx2.Client.send = lambda self, request, **kw: (
    "agent-harnesses" in str(request.url) or requests.append(str(request.url))) or send(self, request, **kw)

def cli_info():
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["info", "you/x"])
    raise SystemExit(f"exit {code}: {err.getvalue().strip()}")

calls = {"load_model": lambda: load_model("you/x"), "from_pretrained": lambda: HAT.from_pretrained("you/x"),
         "push_to_hub": lambda: ESPCN.from_preset("espcn-tiny").push_to_hub("you/x"), "cli_info": cli_info}
for name, call in calls.items():
    requests.clear()
    try:
        call()
        print(json.dumps([name, "no error", "", requests]))
    except BaseException as err:
        print(json.dumps([name, type(err).__name__, str(err), requests]))
"""


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def unreachable(tmp_path_factory):
    """What each call of _CHILD did against a Hub that refuses connections: {name: (error
    type, message, requests)}, and the child's stderr."""
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HUB_CACHE": str(tmp_path_factory.mktemp("cache")),
           "HF_TOKEN": "hf_fake_token", "HF_HUB_DISABLE_TELEMETRY": "1"}
    env.pop("HF_HUB_OFFLINE", None)
    child = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, child.stderr[-3000:]
    results = {name: (kind, message, requests) for name, kind, message, requests in map(json.loads,
                                                                                         child.stdout.splitlines())}
    return endpoint, results, child.stderr


@pytest.mark.parametrize("call", ["load_model", "from_pretrained", "cli_info"])
def test_loading_from_an_unreachable_hub_is_one_attempt_and_one_line(unreachable, call):
    endpoint, results, _ = unreachable
    kind, message, requests = results[call]
    assert len(requests) == 1, requests  # huggingface_hub alone makes 6 (1 + 5 retries with backoff)
    if call == "cli_info":
        assert message.startswith("exit 2: error: ") and len(message.splitlines()) == 1
    else:
        assert kind == "HubUnavailableError"
    for part in (f"cannot reach the Hugging Face Hub ({endpoint}) to download 'you/x'", "ConnectError",
                 "not in the local cache", "HF_HUB_OFFLINE=1", "local model folder"):
        assert part in message, message


def test_pushing_to_an_unreachable_hub_is_one_line_naming_the_repo(unreachable):
    endpoint, results, _ = unreachable
    kind, message, requests = results["push_to_hub"]
    assert kind == "PublishError" and len(requests) == 1, (kind, requests)
    assert f"cannot reach the Hugging Face Hub ({endpoint}) to publish you/x (ConnectError" in message
    assert "nothing was published" in message and "\n" not in message and "hf_fake_token" not in message


def test_no_retry_lines_are_printed(unreachable):
    assert "Retrying in" not in unreachable[2] and "thrown while requesting" not in unreachable[2]
