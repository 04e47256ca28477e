"""The training code: ``hat`` and ``espcn`` (the scripts: ``accelerate launch -m
sr_models.training.hat ...``, or ``accelerate launch train/hat.py ...`` from a checkout) over
the shared modules ``args`` (command line), ``trainer`` (the loop), ``ema`` (the averaged
weights), ``checkpoints`` (checkpoint folders), ``resume`` (resuming from one),
``validation`` (held-out scoring), ``report`` (facts, card, publishing), ``public`` (how
published files name local things), ``data`` (streams), ``pairs`` (patch pairs) and
``errors``. Needs the
``[train]`` extra (Accelerate, 🤗 datasets). Nothing in the rest of the library imports it.
See docs/training.md.
"""
