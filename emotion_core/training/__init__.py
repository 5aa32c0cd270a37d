"""Negative-visual Diffusion-DPO training of visual prompt adapters (``train-dpo``)."""

from .dpo import DPOTerms, diffusion_dpo_loss
from .trainer import TrainConfig, TrainResult, train_dpo

__all__ = ["DPOTerms", "TrainConfig", "TrainResult", "diffusion_dpo_loss", "train_dpo"]
