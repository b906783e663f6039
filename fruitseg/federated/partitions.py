"""Label-skewed partitions of a labelled dataset over federated clients, deterministic by seed.

Two schemes, as in the FedNTD and FedLMD papers:

* :func:`dirichlet_partition`: for every class c, proportions ``p_c ~ Dir(alpha * 1_K)`` over the
  K clients decide how c's samples are split (small alpha: each class on few clients). Clients
  that already hold ``N / K`` samples get no more (``p_c[k] = 0``, then renormalised), and the
  draw is repeated until every client has at least ``min_size`` samples. This is the
  "latent Dirichlet allocation" split of NIID-Bench that FedNTD and FedLMD use, and what
  flwr-datasets' ``DirichletPartitioner(self_balancing=True)`` does.
* :func:`shard_partition`: every client gets exactly ``classes_per_client`` classes; each class
  is cut into equal shards, one per client holding it (needs ``clients * classes_per_client >=
  classes`` so that every class is held by someone).

flwr-datasets is not used: its partitioners work on a Hugging Face ``datasets.Dataset``, and
every flwr-datasets release requires ``datasets < 5``, hence ``huggingface_hub < 2``, which
would downgrade the app's huggingface_hub (see ``requirements-train.txt``). Both functions
take plain label arrays and a seed and return sorted, disjoint index arrays.
"""

from __future__ import annotations

import numpy as np

SCHEMES = ("dirichlet", "shards")


def _check(labels: np.ndarray, num_clients: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0 or not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise ValueError("labels must be a non-empty 1-D array of class ids >= 0")
    if num_clients < 1:
        raise ValueError(f"need at least one client, got {num_clients}")
    return labels


def dirichlet_partition(
    labels: np.ndarray, num_clients: int, alpha: float, seed: int, min_size: int = 10, max_tries: int = 1000
) -> list[np.ndarray]:
    """Split sample indices over ``num_clients`` by per-class Dirichlet(alpha) proportions."""
    labels = _check(labels, num_clients)
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    if labels.size < num_clients * min_size:
        raise ValueError(f"{labels.size} samples cannot give {num_clients} clients {min_size} each")
    rng = np.random.default_rng(seed)
    cap = labels.size / num_clients
    for _ in range(max_tries):
        parts: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
        sizes = np.zeros(num_clients)
        for c in np.unique(labels):
            idx = rng.permutation(np.flatnonzero(labels == c))
            p = rng.dirichlet(np.full(num_clients, float(alpha)))
            p = p * (sizes < cap)
            p = p / p.sum() if p.sum() > 0 else np.full(num_clients, 1 / num_clients)
            cuts = (np.cumsum(p) * idx.size).astype(int)[:-1]
            for k, chunk in enumerate(np.split(idx, cuts)):
                parts[k].append(chunk)
                sizes[k] += chunk.size
        if sizes.min() >= min_size:
            return [np.sort(np.concatenate(p)) for p in parts]
    raise ValueError(f"no Dirichlet(alpha={alpha}) split gave every client {min_size} samples in {max_tries} draws")


def shard_partition(labels: np.ndarray, num_clients: int, classes_per_client: int, seed: int) -> list[np.ndarray]:
    """Give every client ``classes_per_client`` distinct classes, each class split evenly over its holders."""
    labels = _check(labels, num_clients)
    classes = np.unique(labels)
    slots = num_clients * classes_per_client
    if classes_per_client < 1 or classes_per_client > classes.size:
        raise ValueError(f"classes_per_client must be in [1, {classes.size}], got {classes_per_client}")
    if slots < classes.size:
        raise ValueError(
            f"{num_clients} clients x {classes_per_client} classes = {slots} slots cannot hold all {classes.size} classes"
        )
    rng = np.random.default_rng(seed)
    tiled = np.resize(classes, slots)  # every class ceil or floor(slots / C) times
    for _ in range(10_000):
        order = rng.permutation(tiled).reshape(num_clients, classes_per_client)
        if all(np.unique(row).size == classes_per_client for row in order):
            break
    else:
        raise ValueError("could not give every client distinct classes")
    holders: dict[int, list[int]] = {int(c): [] for c in classes}
    for client, row in enumerate(order):
        for c in row:
            holders[int(c)].append(client)
    parts: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
    for c, clients in holders.items():
        idx = rng.permutation(np.flatnonzero(labels == c))
        for client, shard in zip(clients, np.array_split(idx, len(clients))):
            parts[client].append(shard)
    return [np.sort(np.concatenate(p)) for p in parts]


def partition(labels: np.ndarray, num_clients: int, scheme: str, seed: int, alpha: float = 0.1, classes_per_client: int = 2) -> list[np.ndarray]:
    """:func:`dirichlet_partition` or :func:`shard_partition` by name."""
    if scheme == "dirichlet":
        return dirichlet_partition(labels, num_clients, alpha, seed)
    if scheme == "shards":
        return shard_partition(labels, num_clients, classes_per_client, seed)
    raise ValueError(f"unknown partition scheme {scheme!r}; expected one of {SCHEMES}")


def label_counts(labels: np.ndarray, parts: list[np.ndarray], num_classes: int) -> np.ndarray:
    """(clients, classes) matrix of sample counts."""
    return np.stack([np.bincount(labels[p], minlength=num_classes) for p in parts])
