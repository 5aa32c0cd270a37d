"""Small deterministic K-means (k-means++ seeding, Lloyd iterations) in torch.

A bank is built once per data set on CPU; a few hundred to a few thousand
points per emotion need no external clustering library."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import InvalidInputError


@dataclass(frozen=True)
class KMeansResult:
    centres: torch.Tensor  # [K, D]
    labels: torch.Tensor  # [N] int64, cluster of each point
    iterations: int


def _plus_plus(points: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++: each next centre drawn with probability proportional to squared distance."""
    first = int(torch.randint(points.shape[0], (1,), generator=generator))
    centres = [points[first]]
    nearest = ((points - points[first]) ** 2).sum(dim=1)
    for _ in range(1, k):
        total = float(nearest.sum())
        if total <= 0.0:  # all remaining points coincide with a centre: take any unused one
            index = int(torch.randint(points.shape[0], (1,), generator=generator))
        else:
            index = int(torch.multinomial(nearest / total, 1, generator=generator))
        centres.append(points[index])
        nearest = torch.minimum(nearest, ((points - points[index]) ** 2).sum(dim=1))
    return torch.stack(centres)


def kmeans(points: torch.Tensor, k: int, seed: int = 0, max_iter: int = 100) -> KMeansResult:
    """Cluster ``points [N, D]`` into ``min(k, N)`` clusters; same seed, same result.
    An emptied cluster is re-seeded at the point farthest from its centre."""
    if points.ndim != 2 or points.shape[0] == 0:
        raise InvalidInputError(f"k-means needs points [N>0, D], got shape {tuple(points.shape)}")
    if k < 1:
        raise InvalidInputError(f"the number of clusters must be at least 1, got {k}")
    points = points.detach().double()
    k = min(k, points.shape[0])
    generator = torch.Generator().manual_seed(seed)
    centres = _plus_plus(points, k, generator)
    labels = torch.full((points.shape[0],), -1, dtype=torch.long)
    iteration = 0
    for iteration in range(1, max_iter + 1):
        distances = torch.cdist(points, centres)
        new_labels = distances.argmin(dim=1)
        if torch.equal(new_labels, labels):
            break
        labels = new_labels
        for cluster in range(k):
            members = labels == cluster
            if members.any():
                centres[cluster] = points[members].mean(dim=0)
            else:
                farthest = int(distances.min(dim=1).values.argmax())
                centres[cluster] = points[farthest]
                labels[farthest] = cluster
    return KMeansResult(centres.float(), labels, iteration)
