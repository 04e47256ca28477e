"""Train HAT (Hybrid Attention Transformer) for face super-resolution with 🤗 Accelerate.

One 24 GB GPU, bf16 (HAT x4 from scratch on FFHQ-256 streamed from the Hub; the official
effective batch of 32 and schedule; see docs/training.md for the memory table), from the
project root:

    accelerate launch --config_file train/configs/single_gpu.yaml train/hat.py \\
        --model hat --use_ema --train_batch_size 8 --gradient_accumulation_steps 4 \\
        --mixed_precision bf16 --gradient_checkpointing --max_train_steps 500000 \\
        --checkpointing_steps 2000 --checkpoints_total_limit 3 --validation_steps 5000 \\
        --output_dir outputs/hat-x4 --resume_from_checkpoint latest

Fine-tune the official ImageNet-pretrained HAT on 10 FFHQ images, as the study did:

    accelerate launch --config_file train/configs/single_gpu.yaml -m sr_models.training.hat \\
        --pretrained_model_name_or_path HAT_SRx4_ImageNet-pretrain.pth --max_train_samples 10 \\
        --learning_rate 1e-5 --use_ema --max_train_steps 5000 --output_dir outputs/hat-ffhq10-x4

``train/hat.py`` (a checkout) and ``-m sr_models.training.hat`` (any folder) are the same
script; ``python -m sr_models.training.hat ...`` runs one process without the launcher. Several GPUs: --config_file train/configs/multi_gpu.yaml
(set num_processes in it or pass --num_processes N). On a CPU: --config_file
train/configs/cpu.yaml --model hat-small.
"""

from __future__ import annotations

from sr_models import HAT
from sr_models.training.args import build_parser
from sr_models.training.args import parse_args as check_args
from sr_models.training.errors import run
from sr_models.training.trainer import train

#: Flags that override the preset's architecture (depth, width, window, as the study varied).
ARCHITECTURE = {
    "embed_dim": {"type": int, "help": "channels (width)"},
    "depths": {"type": int, "nargs": "+", "help": "HABs per residual group, e.g. 6 6 6 6 6 6"},
    "num_heads": {"type": int, "nargs": "+", "help": "attention heads per group (as many as --depths)"},
    "window_size": {"type": int, "help": "attention window (the LR patch must be a multiple)"},
    "mlp_ratio": {"type": float},
    "compress_ratio": {"type": int},
    "squeeze_factor": {"type": int},
    "drop_path_rate": {"type": float},
}
#: The official recipe (options/train/train_HAT_SRx4_from_scratch.yml): Adam 2e-4, betas
#: (0.9, 0.99), L1, LR halved at 50/80/90/95 % of the run.
RECIPE = {"learning_rate": 2e-4, "loss": "l1", "lr_scheduler": "multistep"}


def parse_args(argv: list[str] | None = None):
    return check_args(build_parser(__doc__, HAT, "hat", architecture=ARCHITECTURE, recipe=RECIPE), argv)


def main(args) -> None:
    train(args, HAT)


def cli() -> None:
    """The command line: parse, train; a usage error is one line and exit code 2."""
    run(main, parse_args)


if __name__ == "__main__":
    cli()
