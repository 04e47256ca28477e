"""Train ESPCN (sub-pixel CNN) for face super-resolution with 🤗 Accelerate.

One GPU (ESPCN is tiny: a larger batch keeps the GPU busy), from the project root:

    accelerate launch --config_file train/configs/single_gpu.yaml train/espcn.py \\
        --model espcn --train_batch_size 64 --max_train_steps 100000 \\
        --checkpointing_steps 2000 --checkpoints_total_limit 3 --validation_steps 5000 \\
        --output_dir outputs/espcn-x4 --resume_from_checkpoint latest

The same as a module (also from the project root):

    accelerate launch --config_file train/configs/single_gpu.yaml -m sr_models.training.espcn --model espcn ...

One process without the launcher: ``python -m sr_models.training.espcn ...`` or ``python train/espcn.py ...``.
On a CPU: --config_file train/configs/cpu.yaml. Several GPUs: train/configs/multi_gpu.yaml.
"""

from __future__ import annotations

from sr_models import ESPCN
from sr_models.training.args import build_parser
from sr_models.training.args import parse_args as check_args
from sr_models.training.errors import run
from sr_models.training.trainer import train

#: Flags that override the preset's architecture.
ARCHITECTURE = {
    "channels": {"type": int, "nargs": "+", "help": "widths of the hidden conv layers, e.g. 64 64 32"},
    "kernel_sizes": {"type": int, "nargs": "+", "help": "one odd size per conv layer (one more than --channels)"},
    "activation": {"choices": ("relu", "tanh")},
}
#: A small CNN tolerates a larger LR than HAT; cosine decay to 0 over the run.
RECIPE = {"learning_rate": 1e-3, "loss": "l1", "lr_scheduler": "cosine"}


def parse_args(argv: list[str] | None = None):
    parser = build_parser(__doc__, ESPCN, "espcn", architecture=ARCHITECTURE, recipe=RECIPE)
    return check_args(parser, argv)


def main(args) -> None:
    train(args, ESPCN)


def cli() -> None:
    """The command line: parse, train; a usage error is one line and exit code 2."""
    run(main, parse_args)


if __name__ == "__main__":
    cli()
