"""calibration/public/inferencex/prefix_hash_bench.py: the block-hash chain it times is the one vLLM's
default ``sha256`` prefix-caching algorithm describes (SHA-256 over the pickled parent hash, the
block's 16 token ids and the extra keys), one hash per full block."""

from __future__ import annotations

import hashlib
import importlib.util
import pickle
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "calibration" / "public" / "inferencex" / "prefix_hash_bench.py"


def _bench():
    spec = importlib.util.spec_from_file_location("prefix_hash_bench", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _h(parent: bytes, ids: range) -> bytes:
    return hashlib.sha256(pickle.dumps((parent, tuple(ids), None), protocol=pickle.HIGHEST_PROTOCOL)).digest()


def test_one_hash_per_full_block_chained_to_its_parent():
    got = _bench().block_hashes(list(range(40)))  # 2 full blocks of 16; the last 8 ids are not hashed
    first = _h(bytes(32), range(0, 16))
    assert got == [first, _h(first, range(16, 32))]


def test_a_changed_early_token_changes_every_later_hash():
    b = _bench()
    ids = list(range(48))
    other = [7] + ids[1:]
    assert all(x != y for x, y in zip(b.block_hashes(ids), b.block_hashes(other), strict=True))


def test_shorter_than_a_block_hashes_nothing():
    assert _bench().block_hashes(list(range(15))) == []
