"""HAT's attention dispatch: the model chooses the path, one AttentionContext per forward
pass carries the choice and its geometry to every attention block, and the fast path's
functions work on tensors alone."""

import pytest
import torch

from sr_models import HAT
from sr_models.hat import HAB, OCAB
from sr_models.hat_attention import AttentionContext, PlanCache, overlapping_cross_attention


@pytest.mark.parametrize("attn_impl", ["sdpa", "math"])
def test_one_context_per_forward_reaches_every_block_with_the_chosen_geometry(attn_impl):
    model = HAT.from_preset("hat-tiny", attn_impl=attn_impl).eval()
    seen = []
    for module in model.modules():
        if isinstance(module, (HAB, OCAB)):
            module.register_forward_pre_hook(lambda block, args: seen.append(args[1]))
    with torch.no_grad():
        model(torch.rand(1, 3, 16, 24))
    assert len(seen) == 2 * 3 and len({id(ctx) for ctx in seen}) == 1  # 2 groups of 2 HABs + 1 OCAB
    ctx = seen[0]
    assert isinstance(ctx, AttentionContext) and ctx.attn_impl == attn_impl and ctx.x_size == (16, 24)
    assert ctx.rpi_sa is model.relative_position_index_SA and ctx.rpi_oca is model.relative_position_index_OCA
    assert (ctx.plan is not None, ctx.shift_mask is not None) == (attn_impl == "sdpa", attn_impl == "math")


def test_the_fast_cross_attention_is_a_function_of_tensors():
    """Given the projected tokens and the bias, no module is needed: the OCAB's own
    reference steps give the same result."""
    model = HAT.from_preset("hat-tiny").eval()
    ocab = model.layers[0].residual_group.overlap_attn
    b, h, w, c = 2, 16, 24, 24
    x = torch.rand(b, h * w, c, generator=torch.Generator().manual_seed(0))
    plan = PlanCache(ocab.window_size, ocab.overlap_win_size).get(b, h, w, x.device)
    with torch.no_grad():
        bias = ocab.cached_bias(model.relative_position_index_OCA)
        fast = overlapping_cross_attention(ocab.qkv(x).view(-1, 3 * c), bias, plan, ocab.window_size,
                                           ocab.overlap_win_size, ocab.num_heads)
        reference = ocab._cross_attention(x, (h, w), model.relative_position_index_OCA)
    torch.testing.assert_close(fast.view(b, h, w, c), reference, rtol=1e-5, atol=1e-6)
