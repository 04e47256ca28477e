"""Training scripts for sr_models (``accelerate launch train/hat.py ...``); see README, "Training"."""
