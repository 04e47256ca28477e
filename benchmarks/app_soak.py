"""Soak the Gradio app: server memory, temporary folders and Gradio's cache over many requests.

Launches the app in a child process on 127.0.0.1 (loopback only) with its own TMPDIR and
GRADIO_TEMP_DIR, sends ``--requests`` requests through gradio_client (a different small
random image each time, so Gradio's content-hash cache cannot hide growth; upscale and
benchmark mode alternate), and every ``--every`` requests samples the server's VmRSS /
VmHWM (/proc/<pid>/status), the ``sr-models-*`` folders in its temp dir and the size of
Gradio's cache. Stops by itself after ``--requests`` or ``--max-seconds``, interrupts the
server (so its exit clean-up runs), reports what is left on disk and removes the soak folder.

    python -m benchmarks.app_soak --requests 300
    python -m benchmarks.app_soak --requests 300 --cache-max-age 60   # a short cache age
    cd /tmp/old-checkout && python -m benchmarks.app_soak --app app  # another version's app.py
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from .outputs import scratch_folder

#: Runs in the child (``-c``: the current folder is importable): build the app, serve it
#: on loopback.
SERVE = """
import importlib, sys
module, port, max_age = importlib.import_module(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
demo = module.build_demo(cache_max_age_s=float(max_age)) if max_age else module.demo
demo.launch(server_name="127.0.0.1", server_port=port, quiet=True, show_error=True)
"""
SERVER_START_TIMEOUT_S = 180
SERVER_STOP_TIMEOUT_S = 30
MODES = ("Upscale", "Benchmark")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--app", default="sr_models.app", help="module with build_demo() / demo (the current folder is importable)")
    parser.add_argument("--requests", type=int, default=300, help="requests to send")
    parser.add_argument("--every", type=int, default=25, help="sample every this many requests")
    parser.add_argument("--max-seconds", type=float, default=480, help="wall-time cap for the requests")
    parser.add_argument("--size", type=int, default=64, help="side of the uploaded images (px)")
    parser.add_argument("--cache-max-age", type=float, metavar="SECONDS",
                        help="build_demo(cache_max_age_s=SECONDS) instead of the app's default")
    parser.add_argument("--keep", action="store_true", help="keep the soak folder (logs, caches)")
    return parser.parse_args(argv)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def proc_status_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a live process, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def folder_usage(folder: Path) -> tuple[int, float]:
    """(files, MB) under ``folder``."""
    sizes = [p.stat().st_size for p in folder.rglob("*") if p.is_file()]
    return len(sizes), sum(sizes) / 1e6


def disk_state(tmp: Path, cache: Path) -> dict[str, float]:
    cache_files, cache_mb = folder_usage(cache)
    return {"sr-models dirs": len(list(tmp.glob("sr-models-*"))), "tmp MB": folder_usage(tmp)[1],
            "cache files": cache_files, "cache MB": cache_mb}


def start_server(root: Path, argv: list[str]) -> subprocess.Popen:
    """``python <argv>`` (a server on loopback) with its own TMPDIR and GRADIO_TEMP_DIR under
    ``root``, offline, its output in root/server.log."""
    env = {**os.environ, "TMPDIR": str(root / "tmp"), "GRADIO_TEMP_DIR": str(root / "gradio"),
           "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    (root / "tmp").mkdir()
    with (root / "server.log").open("w") as log:
        return subprocess.Popen([sys.executable, *argv], env=env, stdout=log, stderr=subprocess.STDOUT)


def connect(server: subprocess.Popen, url: str, log: Path):
    from gradio_client import Client

    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the app exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            return Client(url, verbose=False, download_files=False)
        except Exception:  # not listening yet  # noqa: BLE001
            time.sleep(1)
    raise SystemExit(f"the app did not answer on {url} within {SERVER_START_TIMEOUT_S} s")


def stop_server(server: subprocess.Popen) -> None:
    """Ctrl-C, as a user would (Gradio closes and the app's exit handlers run); kill if stuck."""
    server.send_signal(signal.SIGINT)
    try:
        server.wait(SERVER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def print_row(row: dict, header: bool = False) -> None:
    if header:
        print(" ".join(f"{key:>14}" for key in row))
    print(" ".join(f"{value:>14.1f}" if isinstance(value, float) else f"{value:>14}" for value in row.values()),
          flush=True)


def soak(args, root: Path) -> None:
    from gradio_client import handle_file

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    server = start_server(root, ["-c", SERVE, args.app, str(port), str(args.cache_max_age or "")])
    try:
        client = connect(server, url, root / "server.log")
        rng = np.random.default_rng(0)
        image_path = root / "upload.png"
        start = time.monotonic()
        for i in range(args.requests + 1):
            if i % args.every == 0 or i == args.requests:
                row = {"requests": i, "seconds": round(time.monotonic() - start)}
                row.update(proc_status_mb(server.pid))
                row.update(disk_state(root / "tmp", root / "gradio"))
                print_row(row, header=i == 0)
            if i == args.requests or time.monotonic() - start > args.max_seconds:
                break
            Image.fromarray(rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)).save(image_path)
            client.predict(handle_file(str(image_path)), "Clean downscale", MODES[i % 2], api_name="/compare")
    finally:
        stop_server(server)
    print("after the server exited:", disk_state(root / "tmp", root / "gradio"))


def main(argv=None) -> None:
    args = parse_args(argv)
    with scratch_folder("app-soak-", args.keep) as root:
        print(f"app {args.app}, {args.requests} requests of {args.size}x{args.size} px, soak folder {root}")
        soak(args, root)


if __name__ == "__main__":
    main()
