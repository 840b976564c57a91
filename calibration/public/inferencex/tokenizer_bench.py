"""Time a byte-level BPE fast tokenizer on InferenceX's random prompts: is tokenization the serial cap?

The InferenceX MiniMax sweep (README.md here, "Diagnosis") shows a serial cost outside the GPU of
about 30-45 us per prompt token at long prompts. The prompts reach the server as text, so the API
server tokenizes them. This script measures what a Hugging Face fast tokenizer (the Rust
``tokenizers`` library vLLM's API server calls) costs per token on prompts built the way the sweep's
client builds them (``minimax-m2.5/benchmark_serving_random.py`` ``sample_random_requests`` at
InferenceX @ 843c6254, Apache-2.0, described here, not copied): ``n`` consecutive token ids from a
random offset (modulo the vocabulary), decoded to text, re-encoded and padded with random ids or cut
until the text encodes to exactly ``n`` tokens. It then times ``encode`` of that text (CPU seconds, best of 5) and
reports microseconds per token at 1k-32k tokens.

MiniMax-M2.5's own tokenizer files were not reachable here; any byte-level BPE ``tokenizer.json``
stands in (the committed figures used GPT-2's, see ``tokenizer_bench.csv``'s header). A long run of
CJK letters (one pre-tokenized word) checks that BPE merging does not grow faster than linearly with
a word's length, the one way a 200k multilingual vocabulary's text could be slower per token.

    pip install tokenizers   # not a fleetcast dependency
    python calibration/public/inferencex/tokenizer_bench.py --tokenizer gpt2/tokenizer.json \\
        --out calibration/public/inferencex/tokenizer_bench.csv
"""

from __future__ import annotations

import argparse
import csv
import platform
import random
import statistics
import sys
import time
from pathlib import Path

LENGTHS = (1024, 2048, 4096, 8192, 16384, 32768)
PROMPTS_PER_LENGTH = 4
CJK_RUNS = (1024, 4096, 16384)


def _prompt(tok, n: int, rng: random.Random) -> str:
    """Text of exactly ``n`` tokens, built as the sweep's client builds it (module doc)."""
    vocab = tok.get_vocab_size()
    offset = rng.randrange(vocab)
    ids = [(offset + j) % vocab for j in range(n)]
    text = tok.decode(ids)
    for _ in range(10):
        ids = tok.encode(text, add_special_tokens=False).ids
        if len(ids) < n:
            ids += [rng.randrange(vocab) for _ in range(n - len(ids))]
        elif len(ids) > n:
            ids = ids[:n]
        else:
            break
        text = tok.decode(ids)
    return text


def _encode_s(tok, text: str, reps: int = 5) -> tuple[float, int]:
    """(best of ``reps`` CPU seconds of this process for one ``encode``, tokens produced). CPU time, not
    wall time: on a shared machine a wall clock also counts the time other processes held the core."""
    best, n = float("inf"), 0
    for _ in range(reps):
        t0 = time.process_time()
        n = len(tok.encode(text, add_special_tokens=False).ids)
        best = min(best, time.process_time() - t0)
    return best, n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer", required=True, type=Path, help="a byte-level BPE tokenizer.json")
    ap.add_argument("--out", type=Path, help="CSV to write (default: print only)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    try:
        from tokenizers import Tokenizer
    except ImportError:
        print("tokenizer_bench: needs the 'tokenizers' package (pip install tokenizers)", file=sys.stderr)
        return 2
    if not a.tokenizer.is_file():
        print(f"tokenizer_bench: {a.tokenizer}: no such file (give a tokenizer.json)", file=sys.stderr)
        return 2
    tok = Tokenizer.from_file(str(a.tokenizer))
    tok.no_truncation()
    tok.no_padding()
    rng = random.Random(a.seed)
    rows = []
    for n in LENGTHS:
        per_tok = []
        chars = 0.0
        for _ in range(PROMPTS_PER_LENGTH):
            text = _prompt(tok, n, rng)
            s, got = _encode_s(tok, text)
            per_tok.append(s / got * 1e6)
            chars += len(text) / got / PROMPTS_PER_LENGTH
        rows.append(("consecutive-id prompt", n, statistics.median(per_tok), min(per_tok), max(per_tok), chars))
    for n in CJK_RUNS:
        text = "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(n))
        s, got = _encode_s(tok, text)
        rows.append(("one CJK run of n chars", got, s / got * 1e6, s / got * 1e6, s / got * 1e6, n / got))
    head = ["text", "tokens", "us_per_token_median", "us_per_token_min", "us_per_token_max", "chars_per_token"]
    for r in rows:
        print(
            f"{r[0]:24s} {r[1]:6d} tokens: {r[2]:6.2f} us/token (min {r[3]:.2f}, max {r[4]:.2f}), {r[5]:.2f} chars/token"
        )
    if a.out:
        import tokenizers

        with a.out.open("w", newline="") as f:
            f.write(
                f"# tokenizer_bench.py: {a.tokenizer.name} ({tok.get_vocab_size()} tokens), tokenizers "
                f"{tokenizers.__version__}, Python {platform.python_version()}, {platform.processor() or platform.machine()}, "
                f"best of 5 encodes (CPU time), {PROMPTS_PER_LENGTH} prompts per length, seed {a.seed}\n"
            )
            w = csv.writer(f)
            w.writerow(head)
            w.writerows([r[0], r[1], f"{r[2]:.3f}", f"{r[3]:.3f}", f"{r[4]:.3f}", f"{r[5]:.2f}"] for r in rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
