"""The training code: ``hat`` and ``espcn`` (the scripts: ``accelerate launch -m
sr_models.training.hat ...``, or ``accelerate launch train/hat.py ...`` from a checkout) over
the shared modules ``args`` (command line), ``trainer`` (the loop, checkpoints, EMA, resume),
``checkpoints`` (checkpoint folders), ``validation`` (held-out scoring), ``report`` (facts,
card, publishing), ``data`` (streams), ``pairs`` (patch pairs) and ``errors``. Needs the
``[train]`` extra (Accelerate, 🤗 datasets). Nothing in the rest of the library imports it.
See docs/training.md.
"""
