"""The app as ``python -m sr_models.app`` serves it (main()): what clients may send, and
how it stops. One server process for the module, stopped by the last test."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import gradio_client_scratch

ROOT = Path(__file__).resolve().parent.parent
SERVER_START_TIMEOUT_S = 180
#: Docker gives a container 10 s between SIGTERM and SIGKILL.
SERVER_STOP_TIMEOUT_S = 10


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_serving(server: subprocess.Popen, url: str, log: Path) -> None:
    import httpx

    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the app exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    pytest.fail(f"the app did not answer on {url} within {SERVER_START_TIMEOUT_S} s")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(server process, url, its TMPDIR, its Gradio cache): the app with the bundled
    weights, on loopback, with temp and cache folders of its own."""
    root = tmp_path_factory.mktemp("served")
    tmp, cache = root / "tmp", root / "gradio"
    tmp.mkdir()
    port = _free_port()
    env = {**os.environ, "TMPDIR": str(tmp), "GRADIO_TEMP_DIR": str(cache), "GRADIO_ANALYTICS_ENABLED": "False",
           "HF_HUB_OFFLINE": "1"}
    log = root / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen([sys.executable, "-m", "sr_models.app", "--host", "127.0.0.1", "--port", str(port)],
                                  cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_until_serving(server, url, log)
        yield server, url, tmp, cache
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_uploads_over_the_file_size_limit_are_refused(served):
    import httpx

    from sr_models.app import MAX_UPLOAD_FILE_SIZE

    _, url, _, cache = served
    limit = int(MAX_UPLOAD_FILE_SIZE.removesuffix("mb")) * 1024**2
    answer = httpx.post(f"{url}gradio_api/upload", files={"files": ("big.png", b"\0" * (limit + 1))}, timeout=120)
    assert answer.status_code == 413
    assert not list(cache.rglob("big.png"))


def test_the_log_says_where_the_app_serves_and_refusals_in_one_line_each(served, tmp_path):
    from gradio_client import Client, handle_file

    _, url, tmp, _ = served
    log = tmp.parent / "server.log"
    assert f"sr-models app: serving on {url} (add --share for a public link)" in log.read_text()
    assert "share=True" not in log.read_text()  # Gradio's hint, in words this command does not take
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("not an image")
    with pytest.raises(Exception, match="not a readable image"), gradio_client_scratch(tmp_path):
        Client(url, verbose=False).predict(handle_file(str(not_an_image)), "Clean downscale", "Upscale",
                                           api_name="/compare")
    text = log.read_text()
    assert "sr_models.app: refused: The upload is not a readable image" in text and "Traceback" not in text


def test_sigterm_removes_the_apps_files_as_ctrl_c_does(served, tmp_path):
    """Docker, systemd and Spaces stop a process with SIGTERM."""
    from gradio_client import Client, handle_file

    server, url, tmp, cache = served
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 28, 3), dtype=np.uint8)).save(photo)
    with gradio_client_scratch(tmp_path):
        Client(url, verbose=False).predict(handle_file(str(photo)), "Clean downscale", "Upscale", api_name="/compare")
    assert list(tmp.glob("sr-models-app-*")) and list(cache.rglob("photo.png"))  # the request left files

    server.send_signal(signal.SIGTERM)
    assert server.wait(SERVER_STOP_TIMEOUT_S) == 0
    examples = {path.name for path in (ROOT / "examples").iterdir()}
    assert not list(tmp.glob("sr-models-app-*"))
    assert {path.name for path in cache.rglob("*") if path.is_file()} <= examples  # only the cached examples
