"""How a stopped command line ends: SIGTERM (Docker, systemd, Spaces) as Ctrl-C does, with
the partial file of the image being written removed, one line and 128 + the signal."""

import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from sr_models import ESPCN
from sr_models.cli import main

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

#: The command line in a child whose image writes stall half-way, so that the signal comes
#: while the partial file is open (the real one is written in a moment).
STALLING_CHILD = textwrap.dedent("""
    import sys, time
    from PIL import Image
    from sr_models.cli import main

    def stalls_half_way(self, fp, format=None, **params):
        fp.write(b"\\x89PNG half")
        fp.flush()
        print("writing", flush=True)
        time.sleep(120)

    Image.Image.save = stalls_half_way
    sys.exit(main(sys.argv[1:]))
""")


@pytest.fixture
def job(tmp_path):
    ESPCN.from_preset("espcn-tiny", upscale=2).save_pretrained(tmp_path / "model")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    return ["-q", "upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--model", str(tmp_path / "model")]


@pytest.mark.parametrize("sig,code,said", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")],
                         ids=["SIGTERM", "SIGINT"])
def test_a_stopped_upscale_leaves_no_partial_file(job, tmp_path, sig, code, said):
    if signal.getsignal(sig) == signal.SIG_IGN:  # a child would inherit it (a background job's SIGINT)
        pytest.skip(f"{sig.name} is ignored in this process")
    child = subprocess.Popen([sys.executable, "-c", STALLING_CHILD, *job], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "writing\n"
        assert [p.name.startswith(".a_x2.png.partial-") for p in (tmp_path / "out").iterdir()] == [True]
        child.send_signal(sig)
        _, err = child.communicate(timeout=60)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == code and err.strip() == said
    assert list((tmp_path / "out").iterdir()) == []


def test_main_leaves_the_sigterm_handler_as_it_found_it(job):
    before = signal.getsignal(signal.SIGTERM)
    assert main(job) == 0
    assert signal.getsignal(signal.SIGTERM) is before
