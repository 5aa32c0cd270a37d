"""MC-Diffusion prompt bank: per-emotion clusters of caption features (text centres)
paired with the mean image features of each cluster (visual centres), so a text
prompt can retrieve emotion-specific visual prompt tokens without any images."""

from .kmeans import kmeans
from .store import BANK_KIND, PromptBank, load_bank

__all__ = ["BANK_KIND", "PromptBank", "kmeans", "load_bank"]
