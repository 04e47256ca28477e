"""The app's files on disk (sr_models/app_cache.py): result folders, the cache sweeper
(age, byte budget, oldest first) and the timer that drives it."""

import os
import threading
import time
from pathlib import Path

import gradio as gr
import pytest

from sr_models.app_cache import CacheSweeper, ResultFolders, repeat_in_background

#: Gap between cached files made in a test: Linux stamps ctimes at the kernel tick
#: (up to 10 ms), so files made closer together may share one.
CTIME_TICK_S = 0.02


@pytest.fixture
def blocks(tmp_path, monkeypatch):
    """Blocks whose cache is ``tmp_path``, with one example component."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    with gr.Blocks() as blocks:
        gr.Image()
    return blocks


def _cached_files(blocks, root: Path, sizes: list[int]) -> list[Path]:
    """Files of ``sizes`` bytes, oldest first, in Gradio's layout (a folder per content
    hash), registered as the app's."""
    paths = []
    for i, size in enumerate(sizes):
        time.sleep(CTIME_TICK_S)
        path = root / f"hash{i}" / "result.png"
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x" * size)
        paths.append(path)
    blocks.upload_file_set.update(str(p) for p in paths)
    return paths


def _example(blocks) -> gr.Image:
    return next(block for block in blocks.blocks.values() if isinstance(block, gr.Image))


def test_sweeper_deletes_cached_files_once_old_and_keeps_examples(blocks, tmp_path):
    paths = _cached_files(blocks, tmp_path, [3, 3, 3])
    _example(blocks).keep_in_cache.add(str(paths[0]))
    sweeper = CacheSweeper(blocks, max_age_s=3600, max_bytes=1e9)
    assert sweeper.sweep_due() == 0 and all(p.exists() for p in paths)  # younger than the limit
    assert sweeper.sweep(max_age_s=-1) == 2  # what the exit sweep does
    assert paths[0].exists() and not paths[1].exists() and not paths[1].parent.exists()
    assert blocks.upload_file_set == {str(paths[0])} and tmp_path.is_dir()


def test_sweeper_deletes_the_oldest_files_while_over_the_byte_budget(blocks, tmp_path):
    paths = _cached_files(blocks, tmp_path, [400, 100, 300, 200])
    sweeper = CacheSweeper(blocks, max_age_s=3600, max_bytes=500)
    assert sweeper.sweep_due() == 2  # 1000 bytes: the oldest two go, 500 remain
    assert [p.exists() for p in paths] == [False, False, True, True]
    assert sweeper.sweep_due() == 0
    assert blocks.upload_file_set == {str(paths[2]), str(paths[3])}


def test_the_byte_budget_never_deletes_examples(blocks, tmp_path):
    paths = _cached_files(blocks, tmp_path, [400, 100])
    _example(blocks).keep_in_cache.add(str(paths[0]))
    assert CacheSweeper(blocks, max_age_s=3600, max_bytes=10).sweep_due() == 1
    assert paths[0].exists() and not paths[1].exists()


def test_sweeper_forgets_files_that_are_already_gone(blocks, tmp_path):
    paths = _cached_files(blocks, tmp_path, [5, 5])
    paths[0].unlink()
    assert CacheSweeper(blocks, max_age_s=3600, max_bytes=1e9).sweep_due() == 0
    assert blocks.upload_file_set == {str(paths[1])}


def test_sweeper_survives_requests_adding_files_while_it_runs(tmp_path):
    """Gradio's own delete_cache sweep dies here ("Set changed size during iteration")."""
    with gr.Blocks() as blocks:
        pass
    blocks.upload_file_set.update(str(tmp_path / f"gone{i}.png") for i in range(5_000))
    stop = threading.Event()

    def add_uploads():
        # Bounded: every path added here is also swept again by the exit hook.
        for i in range(20_000):
            if stop.is_set():
                return
            blocks.upload_file_set.add(str(tmp_path / f"new{i}.png"))

    adder = threading.Thread(target=add_uploads)
    adder.start()
    try:
        CacheSweeper(blocks, max_age_s=-1, max_bytes=0).sweep_due()
    finally:
        stop.set()
        adder.join()
    assert not [path for path in blocks.upload_file_set if Path(path).name.startswith("gone")]


def test_background_tasks_repeat_and_survive_a_failing_task():
    runs, ran_twice = [], threading.Event()

    def failing():
        raise OSError("disk gone")

    def counting():
        runs.append(1)
        if len(runs) >= 2:
            ran_twice.set()

    stop = repeat_in_background(0.01, failing, counting)
    try:
        assert ran_twice.wait(5), "the tasks did not repeat"
    finally:
        stop.set()


def test_result_folders_are_pruned_by_age(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    folders = ResultFolders(max_age_s=3600)
    folders.prune()  # nothing made yet: nothing to do
    first = folders.new()
    folders.prune()
    assert first.is_dir()
    old = time.time() - 7200
    os.utime(first, (old, old))
    second = folders.new()  # a new folder prunes too
    assert not first.exists() and second.is_dir()
    os.utime(second, (old, old))
    folders.prune()
    assert not second.exists()


def test_a_held_folder_is_not_pruned_until_released(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    folders = ResultFolders(max_age_s=-1)  # every folder is old
    with folders.held() as folder:
        folders.prune()
        assert folder.is_dir()
    folders.prune()
    assert not folder.exists()


def test_an_upload_flood_is_swept_to_the_budget_without_any_request(tmp_path, monkeypatch):
    """Uploads (POST /gradio_api/upload) come without requests: the app's timer sweeps them."""
    import httpx

    from sr_models import app

    budget, upload_bytes = 100_000, 40_000
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    monkeypatch.setattr(app, "CACHE_SWEEP_EVERY_S", 0.05)
    timers = []
    monkeypatch.setattr(app, "repeat_in_background",  # keeps the timer's stop event, to end it after the test
                        lambda *args: timers.append(repeat_in_background(*args)) or timers[-1])
    demo = app.build_demo(cache_max_bytes=budget)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, **app.server_options())
    try:
        for i in range(6):  # 240 kB
            httpx.post(f"{demo.local_url}gradio_api/upload", timeout=30,
                       files={"files": (f"flood{i}.png", bytes([i]) * upload_bytes)}).raise_for_status()
        deadline = time.monotonic() + 5
        while sum(p.stat().st_size for p in tmp_path.rglob("flood*")) > budget and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(p.name for p in tmp_path.rglob("flood*")) == ["flood4.png", "flood5.png"]  # the newest
    finally:
        demo.close()
        timers[0].set()


def test_examples_are_cached_in_a_folder_of_the_process_unless_the_user_names_one(tmp_path, monkeypatch):
    """Gradio's default, .gradio/cached_examples in the working directory, outlives the process:
    a later run with other weights would show the old results."""
    from sr_models.app_cache import examples_cache

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    monkeypatch.delenv("GRADIO_EXAMPLES_CACHE", raising=False)
    with examples_cache():
        folder = Path(os.environ["GRADIO_EXAMPLES_CACHE"])
    assert folder.parent == tmp_path and folder.name.startswith("sr-models-") and folder.is_dir()
    assert "GRADIO_EXAMPLES_CACHE" not in os.environ
    monkeypatch.setenv("GRADIO_EXAMPLES_CACHE", str(tmp_path / "mine"))
    with examples_cache():
        assert os.environ["GRADIO_EXAMPLES_CACHE"] == str(tmp_path / "mine")
