"""The size of the whole model is bounded before anything is allocated (issue 19, item 2).

Fields each within their bounds can still describe a model of hundreds of GB: a 736-byte
config.json built a 490 GB HAT, a 672 KB .pth implied a 122 GB one. The bytes a model
will hold are counted from its configuration (exactly: checked here against built models)
and refused over MAX_MODEL_BYTES; the refusals are checked in a child process under an
address-space cap, so that a missing check fails the test instead of taking the machine.
"""

import inspect
import json
import subprocess
import sys

import pytest
import torch

from sr_models import ESPCN, HAT
from sr_models.constants import HAT_L_BYTES, MAX_MODEL_BYTES, MODEL_SIZE_MARGIN
from sr_models.espcn import PRESETS as ESPCN_PRESETS
from sr_models.espcn import model_bytes as espcn_bytes
from sr_models.hat import PRESETS, SCALES
from sr_models.hat import model_bytes as hat_bytes

HAT_DEFAULTS = {name: p.default for name, p in inspect.signature(HAT).parameters.items()}
#: Fields that change what the model holds, beyond the presets.
HAT_VARIANTS = [dict(qkv_bias=False, patch_norm=False), dict(resi_connection="identity"),
                dict(mlp_ratio=1.5, overlap_ratio=0.25), dict(in_chans=1, compress_ratio=5, squeeze_factor=7)]
#: The bombs of the issue: each field in range, the whole far too large.
HAT_BOMB = dict(embed_dim=1024, depths=[64] * 32, num_heads=[64] * 32, mlp_ratio=16, window_size=32,
                compress_ratio=1, squeeze_factor=1)
ESPCN_BOMB = dict(channels=[1024] * 32, kernel_sizes=[15] * 33)
PTH_BOMB = dict(embed_dim=1024, depths=[64] * 8, num_heads=[16] * 8, mlp_ratio=16, window_size=16,
                compress_ratio=1, squeeze_factor=1)


def _held_bytes(model: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


@pytest.mark.parametrize("config", [PRESETS[name] for name in PRESETS]
                         + [{**PRESETS["hat-tiny"], "upscale": s} for s in SCALES]
                         + [{**PRESETS["hat-tiny"], **variant} for variant in HAT_VARIANTS])
def test_hat_bytes_are_counted_exactly_from_the_config(config):
    config = {**HAT_DEFAULTS, **config}
    with torch.device("meta"):  # shapes without memory
        model = HAT(**config)
    assert hat_bytes(config) == _held_bytes(model)


@pytest.mark.parametrize("preset", list(ESPCN_PRESETS))
@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_espcn_bytes_are_counted_exactly_from_the_config(preset, scale):
    model = ESPCN.from_preset(preset, upscale=scale)
    config = model.config
    assert espcn_bytes(scale, config["in_chans"], config["channels"], config["kernel_sizes"]) == _held_bytes(model)


def test_the_limit_is_a_stated_multiple_of_hat_l_and_admits_much_larger_models():
    largest = max(hat_bytes({**HAT_DEFAULTS, **PRESETS["hat-l"], "upscale": s}) for s in SCALES)
    assert HAT_L_BYTES == largest and MAX_MODEL_BYTES == MODEL_SIZE_MARGIN * HAT_L_BYTES
    # twice HAT-L's width and four times its depth: still a model
    assert hat_bytes({**HAT_DEFAULTS, "embed_dim": 360, "depths": [24] * 12, "num_heads": [6] * 12,
                      "upscale": 8}) < MAX_MODEL_BYTES


@pytest.mark.parametrize("build,match", [
    (lambda: HAT(**HAT_BOMB), r"HAT: this configuration describes a model of 489\.5 GB"),
    (lambda: ESPCN(**ESPCN_BOMB), r"ESPCN: this configuration describes a model of 29\.3 GB"),
])
def test_a_model_over_the_limit_is_a_value_error_before_any_tensor(build, match, monkeypatch):
    def refuse(self, name, *args, **kwargs):
        raise AssertionError(f"{name} was allocated before the size was checked")

    monkeypatch.setattr(torch.nn.Module, "register_parameter", refuse)
    monkeypatch.setattr(torch.nn.Module, "register_buffer", refuse)
    with pytest.raises(ValueError, match=match + r" .*over the limit of 2\.7 GB \(16x HAT-L"):
        build()


def _official_bomb(path, config):
    """A .pth of the keys that official-checkpoint import reads, each a zero-stride view of
    one number: a file of a few KB whose shapes describe ``config``."""
    dim, ws, hidden = config["embed_dim"], config["window_size"], config["embed_dim"] * config["mlp_ratio"]
    ows = ws + ws // 2

    def fake(*shape):
        return torch.zeros(1).expand(*shape)

    state = {"conv_first.weight": fake(dim, 3, 3, 3), "upsample.0.weight": fake(256, 64, 3, 3),
             "upsample.2.weight": fake(256, 64, 3, 3), "layers.0.conv.weight": fake(dim, dim, 3, 3),
             "patch_embed.norm.weight": fake(dim),
             "layers.0.residual_group.overlap_attn.relative_position_bias_table": fake((ws + ows - 1) ** 2, 16)}
    for i, (depth, heads) in enumerate(zip(config["depths"], config["num_heads"])):
        for j in range(depth):
            state[f"layers.{i}.residual_group.blocks.{j}.attn.relative_position_bias_table"] = fake((2 * ws - 1) ** 2,
                                                                                                   heads)
    block = "layers.0.residual_group.blocks.0."
    state.update({block + "attn.qkv.bias": fake(3 * dim), block + "mlp.fc1.weight": fake(hidden, dim),
                  block + "conv_block.cab.0.weight": fake(dim // config["compress_ratio"], dim, 3, 3),
                  block + "conv_block.cab.3.attention.1.weight": fake(dim // config["squeeze_factor"], dim, 1, 1)})
    torch.save({"params_ema": state}, path)
    return path


#: Runs in a child process: the address space is capped at what the process holds now plus
#: CAP_HEADROOM, then each source is loaded; one JSON line per source says how it ended.
_CHILD = """
import json, resource, sys
from sr_models import load_model
vm = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (vm + int(sys.argv[1]), resource.RLIM_INFINITY))
for source in sys.argv[2:]:
    try:
        load_model(source)
        print(json.dumps([source, "loaded", ""]))
    except Exception as err:
        print(json.dumps([source, type(err).__name__, str(err), isinstance(err, ValueError)]))
"""
#: Room for the loading itself (reading a config.json, unpickling a few KB), far below any bomb.
CAP_HEADROOM = 1_500_000_000


def test_memory_bombs_are_usage_errors_before_allocating_under_a_memory_cap(tmp_path):
    sources = []
    for name, cls, config in [("hat-bomb", HAT, HAT_BOMB), ("espcn-bomb", ESPCN, ESPCN_BOMB)]:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({**config, "architecture": cls.__name__}))
        sources.append(str(folder))
    pth = _official_bomb(tmp_path / "bomb.pth", PTH_BOMB)
    assert pth.stat().st_size < 1_000_000 and hat_bytes({**HAT_DEFAULTS, **PTH_BOMB}) > 100e9
    sources.append(str(pth))

    child = subprocess.run([sys.executable, "-c", _CHILD, str(CAP_HEADROOM), *sources],
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr[-2000:]
    results = [json.loads(line) for line in child.stdout.splitlines()]
    assert [r[0] for r in results] == sources
    for source, kind, message, is_value_error in results:
        assert is_value_error, (source, kind, message)  # a usage error (CLI exit 2), not MemoryError
        assert "over the limit of 2.7 GB" in message and source in message, message
        assert "\n" not in message
