"""Microbenchmark of vLLM 0.8.5's chat-request intake in the API server, for a model family's chat template.

What vLLM 0.8.5 does per ``/v1/chat/completions`` request before the engine sees it, on the API
server's asyncio loop (``vllm/entrypoints/openai/serving_engine.py`` ``_preprocess_chat``, read in the
v0.8.5 wheel; calibration/README.md, "vLLM 0.8.5's chat intake"):

1. ``resolve_chat_template_content_format``: with ``--chat-template-content-format auto`` (the
   default) it re-parses the chat template into a Jinja AST and walks it
   (``_detect_content_format`` -> ``_try_extract_ast``: ``environment.parse(chat_template)``) on
   **every request**; v0.9.2 caches it (``@lru_cache`` on ``_detect_content_format``, vLLM PR #20065);
2. ``apply_hf_chat_template``: renders the (compiled, cached) template over the messages;
3. tokenization of the rendered prompt (a one-worker thread pool, ``_tokenize_prompt_input_async``).

A text-only prompt does not reach the multimodal processor in 0.8.5: ``_preprocess_chat`` sets
``multi_modal_data`` only when the messages held media (``all_mm_data`` returns None otherwise), and
``InputPreprocessor`` calls ``_process_multimodal`` only when ``multi_modal_data`` is not None.

This times each part on this machine's CPU (``time.thread_time``, so other processes on the shared
cores do not count), running **vLLM 0.8.5's own detection functions**, loaded from the file given
(``vllm/entrypoints/chat_utils.py`` of the v0.8.5 wheel, ``pip download vllm==0.8.5 --no-deps``; only its
pure-Python AST walk is executed, nothing of it is copied here), on the Llama 4 chat template that
transformers ships with ``Llama4Processor`` (``transformers.models.llama4.processing_llama4.chat_template``,
the template of Llama-4-Scout's processor; the model hub is not reachable here). Tokenization uses a
stand-in fast tokenizer (``--tokenizer``: the CPU testbed's byte-level BPE, 8k vocabulary), not Llama
4's 202k-vocabulary one, so its per-token figure is reported, not used.

Another model family's template is timed from a file (``--template-file``, with ``--family`` the catalog
family it is charged to and ``--template-source`` where the text comes from): the template a tokenizer
carries (its ``tokenizer_config.json`` ``chat_template``), which is what vLLM 0.8.5 resolves when the server
names no ``--chat-template``. ``--out`` keeps the other families already in the file (``families``).

Run with the testbed venv (transformers, jinja2; not in the main venv)::

    PYTHONPATH=. .testbed-venv/bin/python -m calibration.chat_intake_bench \\
        --vllm-chat-utils /tmp/vllm-0.8.5/vllm/entrypoints/chat_utils.py --tokenizer /tmp/cpuside/tiny \\
        --out calibration/public/llm-d/chat_intake.json
    PYTHONPATH=. .testbed-venv/bin/python -m calibration.chat_intake_bench \\
        --vllm-chat-utils /tmp/vllm-0.8.5/vllm/entrypoints/chat_utils.py --tokenizer /tmp/cpuside/tiny \\
        --family llama-3.1 --template-file llama3.1_chat_template_hf.jinja --template-source "..." \\
        --out calibration/public/llm-d/chat_intake.json
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.metadata
import json
import platform
import statistics
import time
import typing
from collections import deque
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

__all__ = ["load_detector", "main"]

# vLLM 0.8.5's functions that make up the content-format detection (chat_utils.py, in call order)
DETECT_FUNCS = (
    "_is_var_access",
    "_is_attr_access",
    "_is_var_or_elems_access",
    "_iter_nodes_assign_var_or_elems",
    "_iter_nodes_assign_messages_item",
    "_iter_nodes_assign_content_item",
    "_try_extract_ast",
    "_detect_content_format",
)
SIZES_CHARS = (1_000, 5_000, 10_000)  # prompt text lengths (exp-4's turns: ~5,000 characters)
LLAMA4_TEMPLATE = "transformers.models.llama4.processing_llama4.chat_template"
WHAT = (
    "vLLM 0.8.5 chat intake per request, thread CPU seconds, by catalog model family (calibration/chat_intake_bench.py)"
)


class _NullLog:
    def exception(self, *a: Any, **k: Any) -> None:
        raise RuntimeError("vLLM 0.8.5's detection failed on the template")


def load_detector(chat_utils_path: Path) -> Callable[..., str]:
    """vLLM 0.8.5's ``_detect_content_format``, executed from its own source file: only the listed
    function definitions are taken (by name, from the module's AST) and run with jinja2 and
    transformers' ``chat_template_utils`` as that module imports them."""
    import jinja2.nodes  # type: ignore[import-not-found]  # testbed venv only
    import transformers.utils.chat_template_utils as hf_chat_utils

    tree = ast.parse(chat_utils_path.read_text(), filename=str(chat_utils_path))
    defs: list[ast.stmt] = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in DETECT_FUNCS]
    missing = set(DETECT_FUNCS) - {n.name for n in defs if isinstance(n, ast.FunctionDef)}
    if missing:
        raise SystemExit(f"{chat_utils_path}: no {sorted(missing)} (is it vLLM 0.8.5's chat_utils.py?)")
    ns: dict[str, Any] = {
        "jinja2": jinja2,
        "hf_chat_utils": hf_chat_utils,
        "deque": deque,
        "logger": _NullLog(),
        "_ChatTemplateContentFormat": str,
    }
    ns.update({k: getattr(typing, k) for k in ("Optional", "Union", "Any", "Literal")})
    exec(compile(ast.Module(body=defs, type_ignores=[]), str(chat_utils_path), "exec"), ns)  # noqa: S102
    detect: Callable[..., str] = ns["_detect_content_format"]
    return detect


def _filler(chars: int) -> str:
    """English-like text of ``chars`` characters (the standard library's module docstrings)."""
    parts: list[str] = []
    for name in ("argparse", "asyncio", "collections", "json", "pathlib", "subprocess", "typing", "unittest"):
        doc = __import__(name).__doc__ or ""
        parts.append(doc)
    text = " ".join(" ".join(parts).split())
    while len(text) < chars:
        text += " " + text
    return text[:chars]


def _cpu_per_call(fn: Callable[[], Any], n: int, repeats: int = 5) -> float:
    """Median over ``repeats`` of the thread CPU seconds per call of ``n`` calls."""
    fn()  # warm
    per = []
    for _ in range(repeats):
        t0 = time.thread_time()
        for _ in range(n):
            fn()
        per.append((time.thread_time() - t0) / n)
    return statistics.median(per)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vllm-chat-utils", type=Path, required=True, help="vLLM 0.8.5's vllm/entrypoints/chat_utils.py")
    ap.add_argument("--tokenizer", type=Path, required=True, help="a stand-in fast tokenizer's folder")
    ap.add_argument("--out", type=Path, help="write the figures here (JSON)")
    ap.add_argument("-n", type=int, default=200, help="calls per timing")
    ap.add_argument("--family", default="llama-4", help="catalog model family the figure is for (default llama-4)")
    ap.add_argument("--template-file", type=Path, help="a chat template's text (default: transformers' Llama 4 one)")
    ap.add_argument("--template-source", default="", help="where --template-file's text comes from (cited)")
    args = ap.parse_args(argv)

    from transformers import AutoTokenizer

    if args.template_file is not None:
        template: str = args.template_file.read_text()
        template_label = args.template_source or str(args.template_file)
    else:
        from transformers.models.llama4 import processing_llama4

        template = processing_llama4.chat_template
        template_label = LLAMA4_TEMPLATE
    detect = load_detector(args.vllm_chat_utils)
    tok = AutoTokenizer.from_pretrained(str(args.tokenizer))
    fmt = detect(template, default="string")
    rows = []
    t_detect = _cpu_per_call(lambda: detect(template, default="string"), args.n)
    for chars in SIZES_CHARS:
        conv = [{"role": "user", "content": _filler(chars)}]

        def render(conv: list[dict[str, str]] = conv) -> str:
            out = tok.apply_chat_template(conv, chat_template=template, tokenize=False, add_generation_prompt=True)
            return str(out)

        prompt = render()
        n_tok = len(tok(prompt, add_special_tokens=False).input_ids)
        rows.append(
            {
                "chars": chars,
                "stand_in_tokens": n_tok,
                "render_s": _cpu_per_call(render, args.n),
                "tokenize_s": _cpu_per_call(partial(tok, prompt, add_special_tokens=False), args.n),
            }
        )
        print(
            f"{chars:>6} chars ({n_tok} stand-in tokens): detect {t_detect * 1e3:.3f} ms, render "
            f"{rows[-1]['render_s'] * 1e3:.3f} ms, tokenize {rows[-1]['tokenize_s'] * 1e3:.3f} ms"
        )
    result = {
        "detect_content_format_s": t_detect,
        "detected_format": fmt,
        "template": template_label,
        "template_chars": len(template),
        "template_sha256": hashlib.sha256(template.encode()).hexdigest(),
        "vllm_chat_utils_sha256": hashlib.sha256(args.vllm_chat_utils.read_bytes()).hexdigest(),
        "rows": rows,
        "host": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "processor": platform.processor(),
            "transformers": importlib.metadata.version("transformers"),
            "jinja2": importlib.metadata.version("jinja2"),
            "tokenizers": importlib.metadata.version("tokenizers"),
        },
    }
    print(f"{args.family}: detected format {fmt!r}; detection {t_detect * 1e3:.3f} ms per request")
    if args.out:
        doc = json.loads(args.out.read_text()) if args.out.exists() else {}
        families = dict(doc.get("families", {}))
        families[args.family] = result
        doc = {"what": WHAT, "families": dict(sorted(families.items()))}
        args.out.write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
