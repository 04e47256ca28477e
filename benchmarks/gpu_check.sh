#!/usr/bin/env bash
# GPU check, one short run: HAT inference (fast path vs the step-by-step reference, fp32 /
# bf16 / fp16, PSNR against fp32, peak memory per forward, and which attention kernels CUDA
# picks), then the training scripts: the full `hat` preset (20.8 M parameters) for a few
# hundred steps the way the single-GPU recipe trains (bf16, gradient accumulation, gradient
# checkpointing, EMA, checkpoints, validation), its it/s and peak GPU memory, and the
# per-step benchmark with and without checkpointing.
#
#   bash benchmarks/gpu_check.sh            # STEPS=300 BATCH=4 ACCUM=2 MODEL=hat by default
#   STEPS=100 bash benchmarks/gpu_check.sh
#   DEVICE=cpu MODEL=hat-tiny STEPS=4 BATCH=2 INFER_PRESET=hat-tiny INFER_SIZES=32 REPEATS=1 \
#       bash benchmarks/gpu_check.sh        # dry run of this script on a CPU
#
# Needs torch with CUDA, accelerate and datasets (pip install -r requirements-train.txt). The
# images are generated here, so no network is needed. Takes a few minutes on one H100.
# Runs everything as modules from the project root (python -m benchmarks.X, -m sr_models.training.hat).
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS=${STEPS:-300}
BATCH=${BATCH:-4}
ACCUM=${ACCUM:-2}
MODEL=${MODEL:-hat}
DEVICE=${DEVICE:-cuda}
INFER_PRESET=${INFER_PRESET:-hat-s}
INFER_SIZES=${INFER_SIZES:-64 128 256}
REPEATS=${REPEATS:-10}
CONFIG=train/configs/$([ "$DEVICE" = cuda ] && echo single_gpu || echo cpu).yaml
if [ -z "${WORK:-}" ]; then WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT; fi  # a given WORK is kept
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1

python3 -c "import torch, accelerate, datasets; assert '$DEVICE' != 'cuda' or torch.cuda.is_available()" || {
    echo "gpu_check: needs a CUDA GPU, accelerate and datasets (pip install -r requirements-train.txt)" >&2
    exit 2
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

# Inference: every variant interleaved per size; --all adds the reference path under autocast.
# shellcheck disable=SC2086  # INFER_SIZES is a list
python3 -m benchmarks.hat_speed --device "$DEVICE" --preset "$INFER_PRESET" --sizes $INFER_SIZES \
    --repeats "$REPEATS" --all
python3 - "$DEVICE" "$INFER_PRESET" <<'EOF'
# The attention kernels each precision reaches (flash / memory-efficient / math fallback).
import sys
import torch
from sr_models import HAT

device, preset = torch.device(sys.argv[1]), sys.argv[2]
model = HAT.from_preset(preset).to(device).eval()
x = torch.rand(1, 3, 64, 64, device=device)
dtypes = (torch.float32, torch.bfloat16) + ((torch.float16,) if device.type == "cuda" else ())
for dtype in dtypes:
    with torch.profiler.profile() as prof, torch.inference_mode(), \
            torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
        out = model(x)
    kernels = sorted({e.key for e in prof.key_averages() if "attention" in e.key})
    print(f"{preset} {str(dtype)[6:]:>8}: finite output {bool(out.isfinite().all())}; attention ops {kernels}")
EOF

# 64 training and 8 validation images of 256x256: smooth colour patterns with noise and
# edges (FFHQ-sized), written as PNG.
python3 - "$WORK" <<'EOF'
import sys
from pathlib import Path
import numpy as np
from PIL import Image

work = Path(sys.argv[1])
for split, count in (("train", 64), ("val", 8)):
    (work / split).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        rng = np.random.default_rng([split == "val", i])
        y, x = np.mgrid[0:256, 0:256]
        img = np.stack([127 + 90 * np.sin(x / rng.uniform(3, 20) + y / rng.uniform(3, 20) + rng.uniform(0, 6))
                        for _ in range(3)], axis=-1)
        img[(x // rng.integers(16, 64) + y // rng.integers(16, 64)) % 2 == 0] *= 0.6
        img += rng.normal(0, 5, img.shape)
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(work / split / f"{i:03d}.png")
EOF

accelerate launch --config_file "$CONFIG" -m sr_models.training.hat \
    --model "$MODEL" --use_ema --train_data_dir "$WORK/train" --validation_data_dir "$WORK/val" \
    --train_batch_size "$BATCH" --gradient_accumulation_steps "$ACCUM" --gradient_checkpointing \
    --mixed_precision bf16 --max_train_steps "$STEPS" --checkpointing_steps 100 --checkpoints_total_limit 1 \
    --validation_steps 100 --dataloader_num_workers 8 --report_to none --output_dir "$WORK/$MODEL"

python3 - "$WORK/$MODEL/training_facts.json" <<'EOF'
import json, sys
f = json.load(open(sys.argv[1]))
print(f"{f['preset']} x4, {f['steps']} steps, batch {f['train_batch_size']} x accumulation {f['gradient_accumulation_steps']}"
      f" = {f['effective_batch_size']}, {f['precision']}, gradient checkpointing {f['gradient_checkpointing']}:")
print(f"  {f['steps_per_second']:.2f} it/s (optimizer steps, training only), "
      f"{f['steps_per_second'] * f['effective_batch_size']:.1f} patches/s")
print(f"  peak GPU memory {f['peak_gpu_memory_gib']} GiB on {f['hardware']}")
print(f"  wall time {f['wall_time_s']:.0f} s (with validation and checkpoints)")
EOF

python3 -m benchmarks.train_step --model "$MODEL" --batch_size "$BATCH" --lr_size 64 --mixed_precision bf16 \
    --checkpointing both --steps 20 --warmup 3 --device "$DEVICE"
