"""MC-Diffusion prompt bank: per-emotion clusters of caption features (text centres)
paired with the mean image features of each cluster (visual centres), so a text
prompt can retrieve emotion-specific visual prompt tokens without any images.

A bank records what it was built for (``built_for``, a ``store.BankKind``): ``ip-adapter``
(pooled ``image_embeds`` in ``visual_centres.<emotion>``, base adapters), ``ip-adapter-plus``
(also ``visual_hidden_centres.<emotion>``, mean CLIP vision hidden states for Resampler
adapters), ``flux-redux`` (SigLIP sequences for Flux Redux). Every kind keeps the original
tensors (``counts``, ``text_centres``, ``visual_centres``), so ``load_bank`` reads banks built
before kinds existed (as ``ip-adapter``). Adding a feature space is one ``BankKind`` entry in
``store.BANK_KINDS`` plus one image encoder class in ``feature_encoders`` (``image_size``,
``features(pixels) -> {feature name: tensor}`` with ``image_embeds`` and the kind's feature,
``describe()``); ``build`` sums every feature the encoder gives per cluster.

Modules: ``build`` (the build: caption checks, clustering, cached sharded extraction via
``extract``, accelerate processes), ``kmeans`` (scikit-learn), ``store`` (file format,
retrieval), ``retrieval`` (bank -> VISUAL_PROMPT roles), ``confusion`` (a critic's most
confused emotion, for DPO data), ``dataset`` (plain emotion folders; EmoSet-118K is
``emotion_core.datasets.emoset``)."""

from .kmeans import kmeans
from .store import BANK_KIND, PromptBank, load_bank

__all__ = ["BANK_KIND", "PromptBank", "kmeans", "load_bank"]
