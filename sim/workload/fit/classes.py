"""Traffic classes: by a log field (``--by model|tenant|route|class``) or by
clustering (prompt, output) pairs (k-means on log lengths, ``--classes N``).

A class with fewer than ``MIN_REQUESTS`` requests cannot be fitted: such
field values are merged into one ``other`` class, with a warning that names
them and counts their requests.
"""

from __future__ import annotations

import re

import numpy as np

from sim.errors import FleetcastError
from sim.workload.fit.log import MIN_REQUESTS, RequestLog

__all__ = ["split_by_field", "split_by_clusters", "class_name"]


def class_name(value: str, taken: set[str]) -> str:
    """A valid, unique class name for a field value (letters, digits, _ . : -)."""
    name = re.sub(r"[^A-Za-z0-9_.:-]+", "-", str(value)).strip("-")[:56] or "class"
    base, i = name, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    taken.add(name)
    return name


def split_by_field(log: RequestLog, field: str, warnings: list[str]) -> list[tuple[str, np.ndarray]]:
    """(class name, row indices) per value of ``field``, largest first."""
    if field not in log.fields:
        have = ", ".join(sorted(log.fields)) or "none"
        raise FleetcastError(
            f"--by {field}: the log has no {field} column (fields found: {have}); map one with --map {field}=COLUMN"
        )
    labels = log.fields[field]
    values, inverse = labels.names, labels.codes
    counts = np.bincount(inverse, minlength=values.size)
    order = np.argsort(-counts, kind="stable")
    small = [int(i) for i in order if 0 < counts[i] < MIN_REQUESTS]
    taken: set[str] = set()
    out = [(class_name(values[i], taken), np.flatnonzero(inverse == i)) for i in order if counts[i] >= MIN_REQUESTS]
    if small:
        rows = np.flatnonzero(np.isin(inverse, small))
        listed = ", ".join(f"{values[i]!s} ({counts[i]})" for i in small[:10]) + (" ..." if len(small) > 10 else "")
        if rows.size >= MIN_REQUESTS:
            out.append((class_name("other", taken), rows))
            warnings.append(
                f"--by {field}: {len(small)} value(s) with fewer than {MIN_REQUESTS} requests each merged into "
                f"class 'other' ({rows.size:,} requests): {listed}"
            )
        else:
            warnings.append(
                f"--by {field}: {rows.size:,} request(s) of {len(small)} value(s) with too few requests to fit "
                f"(fewer than {MIN_REQUESTS} even together) dropped: {listed}"
            )
    if not out:
        raise FleetcastError(f"--by {field}: no {field} value has {MIN_REQUESTS} requests or more; nothing to fit")
    return out


def _kmeans(x: np.ndarray, k: int, rng: np.random.Generator, iters: int = 30) -> np.ndarray:
    """Labels of k-means (k-means++ start) on the rows of ``x``."""
    centers = [x[rng.integers(x.shape[0])]]
    for _ in range(1, k):
        d2 = np.min([((x - c) ** 2).sum(axis=1) for c in centers], axis=0)
        total = d2.sum()
        centers.append(x[rng.choice(x.shape[0], p=d2 / total)] if total > 0 else x[rng.integers(x.shape[0])])
    c = np.array(centers)
    labels = np.zeros(x.shape[0], dtype=np.int64)
    for _ in range(iters):
        labels = np.argmin(((x[:, None, :] - c[None, :, :]) ** 2).sum(axis=2), axis=1)
        new = np.array([x[labels == j].mean(axis=0) if (labels == j).any() else c[j] for j in range(k)])
        if np.allclose(new, c):
            break
        c = new
    return labels


def split_by_clusters(log: RequestLog, k: int, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """``k`` classes of similar (prompt, output) lengths, named by their median lengths."""
    n = len(log)
    if k * MIN_REQUESTS > n:
        raise FleetcastError(
            f"--classes {k}: the log has {n:,} requests, too few for {k} classes of at least {MIN_REQUESTS}; "
            f"ask for at most {max(n // MIN_REQUESTS, 1)}"
        )
    x = np.column_stack([np.log(log.prompt_tokens), np.log(log.output_tokens)]).astype(float)
    x = (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-9)
    fit_on = x if n <= 100_000 else x[rng.choice(n, 100_000, replace=False)]
    labels_fit = _kmeans(fit_on, k, rng)
    centers = np.array([fit_on[labels_fit == j].mean(axis=0) for j in range(k) if (labels_fit == j).any()])
    labels = np.empty(n, dtype=np.int64)
    for a in range(0, n, 1_000_000):  # chunks: n x k distances without an n x k x 2 array at once
        part = x[a : a + 1_000_000]
        labels[a : a + 1_000_000] = np.argmin(((part[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2), axis=1)
    out: list[tuple[str, np.ndarray]] = []
    taken: set[str] = set()
    for j in np.argsort(centers[:, 0] + centers[:, 1]):
        rows = np.flatnonzero(labels == j)
        if rows.size < MIN_REQUESTS:
            raise FleetcastError(
                f"--classes {k}: a cluster has only {rows.size} requests (fewer than {MIN_REQUESTS}); ask for fewer classes"
            )
        p, o = int(np.median(log.prompt_tokens[rows])), int(np.median(log.output_tokens[rows]))
        out.append((class_name(f"p{p}-o{o}", taken), rows))
    return out
