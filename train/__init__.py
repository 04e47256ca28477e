"""Training scripts for sr_models, as a package: ``train/hat.py`` and ``train/espcn.py``
(``accelerate launch train/hat.py ...`` or ``accelerate launch -m train.hat ...``) over the
shared modules ``args`` (command line), ``trainer`` (the loop, checkpoints, EMA, resume),
``checkpoints`` (checkpoint folders), ``validation`` (held-out scoring), ``report`` (facts,
card, publishing), ``data`` (streams and patch pairs) and ``errors``. See docs/training.md.
"""
