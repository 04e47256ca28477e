"""Train ESPCN from a checkout: ``accelerate launch train/espcn.py ...`` (the launch commands
and every flag: ``sr_models/training/espcn.py``, ``--help``, docs/training.md).

A file, not a package: the training code ships inside the library as
``sr_models.training``, so an installed copy runs the same script as
``accelerate launch -m sr_models.training.espcn ...`` from any folder.
"""

from sr_models.training.espcn import cli

if __name__ == "__main__":
    cli()
