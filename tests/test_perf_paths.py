"""Correctness of the fast paths (no timings: benchmarks/ measures speed).

HAT's ``attn_impl="sdpa"`` path (gather plans, grouped shift masks, cached bias, fused
SDPA kernel, channels_last views) against the step-by-step reference path; the bias
cache's invalidation; ESPCN's channels_last CPU path against plain convolutions.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from sr_models import ESPCN, HAT
from sr_models.hat_attention import MAX_CACHED_PLANS, WindowPlan, shifted_window_mask


def _tiny(**overrides):
    torch.manual_seed(0)
    return HAT.from_preset("hat-tiny", **overrides).eval()


def _both(model, x, grad=False):
    """(fast, reference) outputs of the same model."""
    outs = []
    for impl in ("sdpa", "math"):
        model.set_attn_impl(impl)
        with torch.set_grad_enabled(grad):
            outs.append(model(x))
    model.set_attn_impl("sdpa")
    return outs


# Single window rows / columns, non-square, batches: every shift-mask class layout.
@pytest.mark.parametrize("b,h,w", [(1, 8, 8), (1, 8, 32), (1, 32, 8), (2, 16, 24), (3, 24, 16), (1, 40, 32)])
@pytest.mark.parametrize("scale", [2, 3])
def test_fast_path_matches_reference(b, h, w, scale):
    model = _tiny(upscale=scale)
    fast, ref = _both(model, torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(1)))
    assert fast.shape == ref.shape == (b, 3, scale * h, scale * w)
    assert fast.is_contiguous()
    assert (fast - ref).abs().max().item() < 1e-5


@pytest.mark.parametrize("checkpointing", [False, True])
def test_fast_path_gradients_match_reference(checkpointing):
    model = _tiny(upscale=2, drop_path_rate=0.0).train()
    model.set_gradient_checkpointing(checkpointing)
    x, y = torch.rand(2, 3, 16, 24), torch.rand(2, 3, 32, 48)

    def grads(impl):
        model.zero_grad()
        model.set_attn_impl(impl)
        F.l1_loss(model(x), y).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    fast, ref = grads("sdpa"), grads("math")
    assert fast.keys() == ref.keys()
    for name in ref:
        torch.testing.assert_close(fast[name], ref[name], rtol=1e-4, atol=1e-7, msg=name)
    assert fast["layers.0.residual_group.blocks.1.attn.relative_position_bias_table"].abs().sum() > 0


def _window_of(token: int, h: int, w: int, ws: int, shift: int) -> tuple[int, int]:
    """Window (row, col) of the rolled image whose first token is image token ``token``."""
    y, x = divmod(token % (h * w), w)
    return ((y - shift) % h) // ws, ((x - shift) % w) // ws


@pytest.mark.parametrize("b,h,w", [(1, 8, 8), (2, 8, 24), (1, 24, 8), (2, 24, 40)])
def test_plan_orders_and_class_masks_reproduce_roll_partition_and_the_full_mask(b, h, w):
    ws, shift, n = 8, 4, 64
    plan = WindowPlan(b, h, w, ws, 12, shifted_window_mask(2 * ws, 2 * ws, ws, shift), torch.device("cpu"))
    x = torch.randn(b, h, w, 5)
    for s, (order, inverse, groups) in plan.orders.items():
        assert torch.equal(order.sort().values, torch.arange(b * h * w))
        assert torch.equal(inverse[order], torch.arange(b * h * w))
        assert sum(count for count, _ in groups) * n == b * h * w
        rolled = torch.roll(x, shifts=(-s, -s), dims=(1, 2)) if s else x
        expected = rolled.view(b, h // ws, ws, w // ws, ws, 5).permute(0, 1, 3, 2, 4, 5).reshape(-1, n, 5)
        got = x.reshape(-1, 5)[order].view(-1, n, 5)
        # same set of windows (grouped by class, not row-major when shifted)
        assert sorted(map(tuple, got.flatten(1).tolist())) == sorted(map(tuple, expected.flatten(1).tolist()))
    order, _, groups = plan.orders[shift]
    full = shifted_window_mask(h, w, ws, shift)  # (nW, N, N), row-major windows
    start = 0
    for count, cls in groups:
        for k in range(start, start + count):
            i, j = _window_of(order[k * n].item(), h, w, ws, shift)
            want = full[i * (w // ws) + j]
            got = torch.zeros(n, n) if cls == 0 else plan.class_masks[cls]
            assert torch.equal(got, want), (k, cls, i, j)
        start += count


@pytest.mark.parametrize("b,h,w", [(1, 8, 8), (2, 16, 24)])
def test_oca_index_reproduces_unfold(b, h, w):
    ws, ows, c = 8, 12, 3
    plan = WindowPlan(b, h, w, ws, ows, shifted_window_mask(2 * ws, 2 * ws, ws, ws // 2), torch.device("cpu"))
    kv = torch.randn(b, h, w, 2 * c)
    rows = torch.cat([kv.reshape(-1, 2 * c), kv.new_zeros(1, 2 * c)])
    got = rows[plan.kv_index].view(-1, ows * ows, 2 * c)
    unfolded = F.unfold(kv.permute(0, 3, 1, 2), kernel_size=ows, stride=ws, padding=(ows - ws) // 2)
    expected = unfolded.view(b, 2 * c, ows * ows, -1).permute(0, 3, 2, 1).reshape(-1, ows * ows, 2 * c)
    assert torch.equal(got, expected)


def test_inference_uses_the_fused_sdpa_kernel():
    """A 3-D or 5-D mask would silently send SDPA to its math fallback."""
    model = _tiny()
    with torch.profiler.profile() as prof, torch.inference_mode():
        model(torch.rand(1, 3, 16, 16))
    ops = {event.key for event in prof.key_averages()}
    assert "aten::_scaled_dot_product_flash_attention_for_cpu" in ops
    assert "aten::_scaled_dot_product_attention_math" not in ops


def test_cached_bias_follows_in_place_updates_and_load_state_dict():
    model = _tiny(upscale=2)
    x = torch.rand(1, 3, 16, 16)
    table = model.layers[0].residual_group.blocks[1].attn.relative_position_bias_table
    with torch.inference_mode():
        model(x)
    assert model.layers[0].residual_group.blocks[1].attn.bias_cache.entry is not None
    with torch.no_grad():
        table.add_(0.5)  # an optimizer-like in-place write: bumps the version counter
    fast, ref = _both(model, x)
    assert (fast - ref).abs().max() < 1e-5

    other = _tiny(upscale=2)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.load_state_dict(other.state_dict())
    with torch.inference_mode():
        assert (model(x) - other(x)).abs().max() < 1e-6


def test_cached_bias_follows_optimizer_steps_and_dtype_changes():
    model = _tiny(upscale=2)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        model(x)  # fills the caches
    opt = torch.optim.SGD(model.parameters(), lr=10.0)
    model.train()
    F.l1_loss(model(x), torch.rand(1, 3, 32, 32)).backward()
    opt.step()
    model.eval()
    fast, ref = _both(model, x)
    assert (fast - ref).abs().max() < 1e-5
    model.double()
    fast, ref = _both(model, x.double())
    assert fast.dtype == torch.float64 and (fast - ref).abs().max() < 1e-10


def test_writes_through_data_are_picked_up_after_eval():
    """``.data`` writes skip version counting; ``eval()`` / ``train()`` clear the cache."""
    model = _tiny(upscale=2)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        model(x)
    for module in model.modules():
        if hasattr(module, "relative_position_bias_table"):
            module.relative_position_bias_table.data.mul_(3.0)
    model.eval()
    fast, ref = _both(model, x)
    assert (fast - ref).abs().max() < 1e-5


def test_training_forward_does_not_cache_the_bias():
    model = _tiny(upscale=2).train()
    model(torch.rand(1, 3, 8, 8)).mean().backward()
    assert all(m.bias_cache.entry is None for m in model.modules() if hasattr(m, "bias_cache"))


def test_plan_cache_is_bounded():
    model = _tiny(upscale=2)
    with torch.inference_mode():
        for k in range(MAX_CACHED_PLANS + 3):
            model(torch.rand(1, 3, 8, 8 * (k + 1)))
    assert len(model._plans) == MAX_CACHED_PLANS


def test_bf16_autocast_fast_path_stays_close_to_float32():
    model = _tiny(upscale=4)
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x).float()
    mse = (out.clamp(0, 1) - ref.clamp(0, 1)).pow(2).mean().item()
    assert 10 * math.log10(1 / mse) >= 45


@pytest.mark.parametrize("grad", [False, True])
def test_espcn_cpu_path_equals_plain_convolutions(grad):
    torch.manual_seed(0)
    model = ESPCN(upscale=3)
    x = torch.rand(2, 3, 9, 13)
    with torch.set_grad_enabled(grad):
        out = model(x)
        y = x
        for layer in model.body:
            y = F.conv2d(y, layer.weight, layer.bias, padding=layer.padding) if isinstance(layer, torch.nn.Conv2d) \
                else layer(y)
        expected = F.pixel_shuffle(y, 3)
    assert out.is_contiguous() and out.shape == (2, 3, 27, 39)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
