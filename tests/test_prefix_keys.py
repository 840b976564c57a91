"""Prefix-cache block keys (sim.engine.prefix_keys): block i of a chain is keyed
``(key of the chunk holding its last token) * M + i`` modulo 2**64, and identical chains
share one list object (the KV cache counts whole-chain holders by that object)."""

from __future__ import annotations

import numpy as np

from sim.engine.prefix_keys import PrefixKeys
from sim.workload.generate import Workload

M = 0x9E3779B97F4A7C1  # the multiplier the module documents
K1, K2 = 123_456_789_012_345, -987_654_321_098_765  # a negative int64 key wraps modulo 2**64


def _key(chunk_key: int, i: int) -> int:
    return (chunk_key * M + i) % 2**64


def _workload(chains: list[list[tuple[int, int]]], end_dtype=np.int32) -> Workload:
    n = len(chains)
    offsets = np.cumsum([0] + [len(c) for c in chains])
    keys = [k for c in chains for k, _ in c]
    ends = [e for c in chains for _, e in c]
    return Workload(
        arrival_s=np.arange(n, dtype=np.float64),
        class_idx=np.zeros(n, dtype=np.int16),
        prompt_tokens=np.full(n, 200, dtype=np.int32),
        output_tokens=np.full(n, 10, dtype=np.int32),
        prefix_offsets=np.asarray(offsets, dtype=np.int64),
        prefix_keys=np.asarray(keys, dtype=np.int64),
        prefix_end_tok=np.asarray(ends, dtype=end_dtype),
        class_names=["c"],
    )


def test_one_chunk_chains_share_keys_and_one_list_per_chain():
    # 0 and 2: the same chain (100 tokens: 6 full blocks of 16); 1: the same chunk key ending at
    # token 50 (3 blocks); 3: 10 tokens (no full block); 4: no prefix; 5: the other key
    pk = PrefixKeys(_workload([[(K1, 100)], [(K1, 50)], [(K1, 100)], [(K1, 10)], [], [(K2, 40)]]))
    full = pk.block_keys(0, 16)
    assert full == [_key(K1, i) for i in range(6)]
    short = pk.block_keys(1, 16)
    assert short == [_key(K1, i) for i in range(3)]
    assert pk.block_keys(2, 16) is full  # one list per chain
    assert short is not full
    assert pk.block_keys(3, 16) is None
    assert pk.block_keys(4, 16) is None
    assert pk.block_keys(5, 16) == [_key(K2, 0), _key(K2, 1)]
    # another block size: its own keys (100 // 32 = 3 blocks), its own list
    assert pk.block_keys(0, 32) == [_key(K1, i) for i in range(3)]
    assert pk.first_key(0) == K1 and pk.first_key(4) is None


def test_two_chunk_chain_keys_each_block_by_the_chunk_of_its_last_token():
    # chunk K1 covers tokens [0, 32), K2 [0, 64): blocks 0-1 end inside K1, blocks 2-3 in K2
    pk = PrefixKeys(_workload([[(K1, 32), (K2, 64)], [(K1, 32), (K2, 64)]], end_dtype=np.int64))
    keys = pk.block_keys(0, 16)
    assert keys == [_key(K1, 0), _key(K1, 1), _key(K2, 2), _key(K2, 3)]
    assert pk.block_keys(1, 16) is keys
