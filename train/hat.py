"""Train HAT (Hybrid Attention Transformer) for face super-resolution with 🤗 Accelerate.

One 24 GB GPU, bf16 (HAT x4 from scratch on FFHQ-256 streamed from the Hub; the official
effective batch of 32 and schedule; see README, "Training", for the memory table):

    accelerate launch --config_file train/configs/single_gpu.yaml train/hat.py \\
        --model hat --use_ema --train_batch_size 8 --gradient_accumulation_steps 4 \\
        --mixed_precision bf16 --gradient_checkpointing --max_train_steps 500000 \\
        --checkpointing_steps 2000 --checkpoints_total_limit 3 --validation_steps 5000 \\
        --output_dir outputs/hat-x4 --resume_from_checkpoint latest

Fine-tune the official ImageNet-pretrained HAT on 10 FFHQ images, as the study did:

    accelerate launch --config_file train/configs/single_gpu.yaml train/hat.py \\
        --pretrained_model_name_or_path HAT_SRx4_ImageNet-pretrain.pth --max_train_samples 10 \\
        --learning_rate 1e-5 --use_ema --max_train_steps 5000 --output_dir outputs/hat-ffhq10-x4

Several GPUs: --config_file train/configs/multi_gpu.yaml (set num_processes in it or pass
--num_processes N). On a CPU: --config_file train/configs/cpu.yaml --model hat-small.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file (accelerate launch train/hat.py): make `train` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sr_models import HAT  # noqa: E402
from train import common  # noqa: E402

#: Architecture fields that may override the preset (depth, width, window, as the study varied).
ARCH_ARGS = ("embed_dim", "depths", "num_heads", "window_size", "mlp_ratio", "compress_ratio", "squeeze_factor",
             "drop_path_rate")


def parse_args(argv: list[str] | None = None):
    parser = common.build_parser(__doc__, HAT, default_model="hat")
    g = parser.add_argument_group("HAT architecture (overrides of the preset)")
    g.add_argument("--embed_dim", type=int, help="channels (width)")
    g.add_argument("--depths", type=int, nargs="+", help="HABs per residual group, e.g. 6 6 6 6 6 6")
    g.add_argument("--num_heads", type=int, nargs="+", help="attention heads per group (as many as --depths)")
    g.add_argument("--window_size", type=int, help="attention window (the LR patch must be a multiple)")
    g.add_argument("--mlp_ratio", type=float)
    g.add_argument("--compress_ratio", type=int)
    g.add_argument("--squeeze_factor", type=int)
    g.add_argument("--drop_path_rate", type=float)
    # The official recipe (options/train/train_HAT_SRx4_from_scratch.yml): Adam 2e-4, betas
    # (0.9, 0.99), L1, LR halved at 50/80/90/95 % of the run.
    parser.set_defaults(arch_args=ARCH_ARGS, learning_rate=2e-4, loss="l1", lr_scheduler="multistep")
    return common.parse_args(parser, argv)


def main(args) -> None:
    common.train(args, HAT)


if __name__ == "__main__":
    common.run(main, parse_args)
