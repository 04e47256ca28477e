"""Peak memory of the Gradio app for the largest requests it accepts, one and two at once.

Each case starts the app afresh as a Space runs it (``python -m sr_models.app``: models
loaded at start, the server's limits) in a child process on 127.0.0.1 with its own
TMPDIR and GRADIO_TEMP_DIR, sends its requests through gradio_client (at once when a
case has two) and reads the server's VmHWM (peak RSS of the whole app, /proc/<pid>/status)
once they are answered. Uploads are random noise: the work does not depend on the
content, and noise makes the largest files. The refused case checks that oversized
uploads are refused from their header, without decoding them.

    python -m benchmarks.app_memory                       # every case (~1.5 h on 2 shared cores)
    python -m benchmarks.app_memory --cases idle upscale-256 benchmark-real
"""

from __future__ import annotations

import argparse
import concurrent.futures
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from .app_soak import connect, free_port, proc_status_mb, start_server, stop_server
from .machine import describe
from .outputs import scratch_folder

UPSCALE, BENCHMARK = "Upscale", "Benchmark"
CLEAN, REAL = "Clean downscale", "Real photo"


class Request(NamedTuple):
    width: int
    height: int
    mode: str
    kind: str = CLEAN
    noise: bool = True  # False: one colour (a small file: the refused sizes)


#: name -> (what it shows, the requests sent at once; several cases send them one by one).
CASES = {
    "idle": ("started, models loaded, no request", []),
    "upscale-256": ("Upscale 256x256: the largest untiled input", [Request(256, 256, UPSCALE)]),
    "upscale-512": ("Upscale 512x512: tiled (nine 184-px tiles)", [Request(512, 512, UPSCALE)]),
    "benchmark-1024": ("Benchmark 1024x1024, clean downscale", [Request(1024, 1024, BENCHMARK)]),
    "two-512-and-1024": ("Upscale 512x512 and Benchmark 1024x1024 at once",
                         [Request(512, 512, UPSCALE), Request(1024, 1024, BENCHMARK)]),
    "upscale-65000x1": ("Upscale 65000x1: padded to 65000x8, now tiled", [Request(65000, 1, UPSCALE)]),
    "upscale-1024": ("Upscale 1024x1024: the largest input", [Request(1024, 1024, UPSCALE)]),
    "benchmark-clean": ("Benchmark 2048x2048, clean downscale: the largest original",
                        [Request(2048, 2048, BENCHMARK)]),
    "benchmark-real": ("Benchmark 2048x2048, real photo (realistic degradation)",
                       [Request(2048, 2048, BENCHMARK, REAL)]),
    "two-upscale-256": ("two Upscale 256x256 at once (two untiled HAT passes)", [Request(256, 256, UPSCALE)] * 2),
    "two-upscale-1024": ("two Upscale 1024x1024 at once", [Request(1024, 1024, UPSCALE)] * 2),
    "two-benchmark-real": ("two Benchmark 2048x2048 real photo at once", [Request(2048, 2048, BENCHMARK, REAL)] * 2),
    "two-mixed": ("Upscale 1024x1024 and Benchmark 2048x2048 real photo at once",
                  [Request(1024, 1024, UPSCALE), Request(2048, 2048, BENCHMARK, REAL)]),
    "refused": ("refused sizes, one by one: Benchmark 4096x4096, Upscale 1025x1024, Upscale 1x140000",
                [Request(4096, 4096, BENCHMARK, noise=False), Request(1025, 1024, UPSCALE, noise=False),
                 Request(1, 140_000, UPSCALE, noise=False)]),
}
#: Cases whose requests go one after the other (each is refused at once).
SEQUENTIAL = {"refused"}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES), help="cases to run")
    parser.add_argument("--keep", action="store_true", help="keep the run's folder (server logs)")
    return parser.parse_args(argv)


def make_upload(request: Request, folder: Path, index: int) -> Path:
    path = folder / f"upload{index}-{request.width}x{request.height}.png"
    shape = (request.height, request.width, 3)
    pixels = (np.random.default_rng(index).integers(0, 256, shape, dtype=np.uint8) if request.noise
              else np.full(shape, 128, dtype=np.uint8))
    Image.fromarray(pixels).save(path)
    return path


def send(client, path: Path, request: Request) -> str:
    """'ok' or the app's message, shortened."""
    from gradio_client import handle_file

    try:
        client.predict(handle_file(str(path)), request.kind, request.mode, api_name="/compare")
        return "ok"
    except Exception as err:  # noqa: BLE001 -- the app's refusals are part of the result
        return f"refused: {str(err)[:90]}"


def run_case(name: str, root: Path) -> dict:
    """Start the app, send the case's requests, read its peak RSS, stop it."""
    folder = root / name
    folder.mkdir()
    requests = CASES[name][1]
    uploads = [make_upload(request, folder, i) for i, request in enumerate(requests)]
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    server = start_server(folder, ["-m", "sr_models.app", "--host", "127.0.0.1", "--port", str(port)])
    try:
        client = connect(server, url, folder / "server.log")
        start = time.monotonic()
        workers = 1 if name in SEQUENTIAL else max(len(requests), 1)
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            answers = list(pool.map(lambda pair: send(client, *pair), zip(uploads, requests)))
        seconds = time.monotonic() - start
        status = proc_status_mb(server.pid)
    finally:
        stop_server(server)
    return {"case": name, "seconds": seconds, "VmHWM MB": status["VmHWM"], "VmRSS MB": status["VmRSS"],
            "answers": answers}


def main(argv=None) -> None:
    args = parse_args(argv)
    print(describe())
    print(f"{'case':<20} {'seconds':>8} {'VmHWM MB':>9} {'VmRSS MB':>9}  answers / what")
    with scratch_folder("app-memory-", args.keep) as root:
        for name in args.cases:
            row = run_case(name, root)
            print(f"{name:<20} {row['seconds']:>8.0f} {row['VmHWM MB']:>9.0f} {row['VmRSS MB']:>9.0f}  "
                  f"{row['answers']} / {CASES[name][0]}", flush=True)


if __name__ == "__main__":
    main()
