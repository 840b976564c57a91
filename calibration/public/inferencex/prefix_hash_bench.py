"""Time vLLM's default prefix-cache block hashing per prompt token: is it InferenceX's serial cap?

vLLM V1 hashes every full KV block of a prompt when the engine core takes a request in (automatic
prefix caching is on by default; the server in the InferenceX MiniMax sweep sets no
``--prefix-caching-hash-algo``). The default algorithm is ``sha256``: each block's hash is SHA-256
over the pickled tuple (parent block's hash, the block's token ids, extra keys) -- vLLM's
``CacheConfig.prefix_caching_hash_algo`` docstring ("sha256 uses Pickle for object serialization
before hashing"; vllm/config/cache.py, Apache-2.0). This script rebuilds that chain with the standard
library (block size 16, no extra keys, ids drawn from MiniMax-M2.5's 200,064-token vocabulary) and
reports CPU microseconds per prompt token, best of 5, at 1k-32k tokens. Written here from that
description, not copied.

    python calibration/public/inferencex/prefix_hash_bench.py
"""

from __future__ import annotations

import hashlib
import pickle
import random
import time

LENGTHS = (1024, 8192, 32768)
BLOCK_TOKENS = 16
VOCAB = 200064
REPEATS = 5


def block_hashes(token_ids: list[int]) -> list[bytes]:
    """The prompt's full-block hashes, each SHA-256 over the pickled (parent hash, the block's ids,
    no extra keys); the first block's parent is 32 zero bytes (a stand-in for vLLM's seed hash,
    which costs the same); a trailing partial block is not hashed."""
    out: list[bytes] = []
    parent = bytes(32)
    full = len(token_ids) - len(token_ids) % BLOCK_TOKENS
    for i in range(0, full, BLOCK_TOKENS):
        key = (parent, tuple(token_ids[i : i + BLOCK_TOKENS]), None)
        parent = hashlib.sha256(pickle.dumps(key, protocol=pickle.HIGHEST_PROTOCOL)).digest()
        out.append(parent)
    return out


def chain_s(token_ids: list[int]) -> float:
    """CPU seconds ``block_hashes`` takes on ``token_ids``."""
    t0 = time.process_time()
    block_hashes(token_ids)
    return time.process_time() - t0


def main() -> int:
    rng = random.Random(0)
    print("tokens,us_per_token,ms_per_prompt")
    for n in LENGTHS:
        ids = [rng.randrange(VOCAB) for _ in range(n)]
        best = min(chain_s(ids) for _ in range(REPEATS))
        print(f"{n},{best * 1e6 / n:.3f},{best * 1e3:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
