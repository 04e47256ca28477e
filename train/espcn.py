"""Train ESPCN (sub-pixel CNN) for face super-resolution with 🤗 Accelerate.

One GPU (ESPCN is tiny: a larger batch keeps the GPU busy):

    accelerate launch --config_file train/configs/single_gpu.yaml train/espcn.py \\
        --model espcn --train_batch_size 64 --max_train_steps 100000 \\
        --checkpointing_steps 2000 --checkpoints_total_limit 3 --validation_steps 5000 \\
        --output_dir outputs/espcn-x4 --resume_from_checkpoint latest

On a CPU: --config_file train/configs/cpu.yaml. Several GPUs: train/configs/multi_gpu.yaml.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file (accelerate launch train/espcn.py): make `train` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sr_models import ESPCN  # noqa: E402
from train import common  # noqa: E402

ARCH_ARGS = ("channels", "kernel_sizes", "activation")


def parse_args(argv: list[str] | None = None):
    parser = common.build_parser(__doc__, ESPCN, default_model="espcn")
    g = parser.add_argument_group("ESPCN architecture (overrides of the preset)")
    g.add_argument("--channels", type=int, nargs="+", help="widths of the hidden conv layers, e.g. 64 64 32")
    g.add_argument("--kernel_sizes", type=int, nargs="+", help="one odd size per conv layer (one more than --channels)")
    g.add_argument("--activation", choices=("relu", "tanh"))
    # A small CNN tolerates a larger LR than HAT; cosine decay to 0 over the run.
    parser.set_defaults(arch_args=ARCH_ARGS, learning_rate=1e-3, loss="l1", lr_scheduler="cosine")
    return common.parse_args(parser, argv)


def main(args) -> None:
    common.train(args, ESPCN)


if __name__ == "__main__":
    common.run(main, parse_args)
