"""The serving process's CPU side: vLLM's own work per engine step and per request.

A vLLM server does CPU work the GPU does not see (docs/design.md, "CPU side"):

- **Per engine step**, in the engine-core process: scheduling, input preparation (building
  the step's token, position and block-table tensors), sampling bookkeeping and updating
  every request with its new token. It grows with the running requests and the new tokens::

      t_cpu_step = t_step_s + t_seq_s · (decodes + prefill chunks) + t_prefill_tok_s · prefill tokens

  (a decode's one new token is in its ``t_seq_s``). These are the ``PerfCoefficients`` of the
  same names; ``PerfModel.step_time_s`` adds them to the GPU's time, or overlaps them with it
  where vLLM schedules asynchronously (below).
- **Per request**, in the API-server process: HTTP parsing, chat template, admission and
  hand-off to the engine core (``fe_request_s``), tokenization per prompt token
  (``fe_prompt_tok_s``), and per output token the
  detokenization and the streamed chunk (``fe_token_s``). One API-server process is one
  server: ``sim.engine.front_end.FrontEnd`` runs it as a FIFO service centre in front of
  each replica, so it has its own throughput limit,
  ``1 / (fe_request_s + fe_prompt_tok_s · prompt + fe_token_s · output)`` requests per second,
  and a step's outputs are processed as one batch when the step ends: a new request's first token
  waits for the whole batch from 0.8 (V1 lists new requests last), only for the step's first
  tokens before (V0 lists prefills first; ``first_tokens_last``).

vLLM's structure by version (``cpu_side_for``):

- From 0.8.0 (V1 engine by default, vLLM PR #13726, v0.8.0 release notes) the API server
  (tokenization, detokenization, streaming) and the engine core (scheduling, execution) are
  separate processes, so the front end's work runs beside the steps, not inside them. Before
  0.8 (V0) detokenization ran in the engine's step loop: ``fe_token_s`` is charged per
  sequence per step there instead (``t_seq_s``), and the front end keeps the rest.
- From 0.6.0 the V0 engine processes step n's outputs (detokenization, stop checks, request
  outputs: ``_process_model_outputs``) while the GPU runs step n+1 (asynchronous output
  processor, vLLM PR #7049, RFC #6913, in v0.6.0; on by default with CUDA graphs, off with
  pipeline parallelism or speculative decoding). So from 0.6 to 0.8 the per-token output work
  is off the step's critical path: not in ``t_seq_s``. That holds while it is shorter than the
  GPU's step (RFC #6913: 3.4 ms at batch 32 against a 25 ms step, Llama-3-70B on 4 H100); a step
  it outlasts is taken as the GPU's, a lower bound there. The API server, a separate process from
  0.5.4 (vLLM PR #6883), keeps its per-token streaming work (``fe_token_s``), as in V1.
- From 0.14.0 async scheduling is on by default (v0.14.0 release notes, "Async scheduling is
  now enabled by default", PR #27614; not on the CPU backend; with speculative decoding only for
  EAGLE-type proposers, see ``cpu_side_for``): the engine core schedules step
  n+1 while the GPU runs step n, so a step takes ``max(CPU, GPU)`` rather than their sum.
  fleetcast overlaps the CPU work with the step's GPU time *except decode attention over the
  cached context* (``max(t_cpu, t_gpu - ctx·b) + ctx·b``): that keeps a decode run affine in
  its context, so fast-forward stays exact, at the price of an upper bound that is off by at
  most the decode attention when the CPU is the longer part.
  Before 0.14 it is vLLM's ``--async-scheduling`` switch (experimental from 0.9.2, PR #19970):
  ``engine.async_scheduling`` (a scenario's engine, a run log's sidecar) turns it on or off
  whatever the version's default.
- From 0.9.0 a server can run several API-server processes (``--api-server-count N``, vLLM PR
  #17546; ``engine.api_server_count``): the front end is then N service centres sharing one
  listening socket (``sim.engine.front_end``), N times the one server's throughput limit.

The constants were measured on the CPU testbed with the same vLLM code (``CPU_SIDE_TESTBED``,
``calibration/README.md``, "CPU side") and scaled to a GPU host's CPU by ``HOST_CPU_SPEEDUP``, except
a V1 GPU host's API-server cost per output token, fitted (``FE_TOKEN_V1_GPU_HOST_S``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = [
    "CpuSide",
    "CPU_SIDE_TESTBED",
    "CPU_SIDE_GPU_HOST",
    "HOST_CPU_SPEEDUP",
    "V1_SINCE",
    "ASYNC_SCHEDULING_SINCE",
    "ASYNC_OUTPUT_PROC_SINCE",
    "V0_TP_STEP_S",
    "T_SEQ_UNIPROC_S",
    "FE_TOKEN_V1_GPU_HOST_S",
    "CHAT_FORMAT_UNCACHED",
    "FE_CHAT_FORMAT_DETECT_S",
    "cpu_side_for",
    "with_chat_intake",
    "is_v0",
    "with_tensor_parallel",
    "step_cpu_s",
]

V1_SINCE = (0, 8, 0)
"""First vLLM release whose default engine is V1 (API server and engine core in separate processes)."""
ASYNC_SCHEDULING_SINCE = (0, 14, 0)
"""First vLLM release with async scheduling on by default (GPU backends)."""
ASYNC_OUTPUT_PROC_SINCE = (0, 6, 0)
"""First vLLM release whose V0 engine overlaps output processing with the next step (PR #7049)."""

V0_TP_STEP_S = (0.90e-3, 0.29e-3)
"""V0 (before 0.8) with tensor parallelism: the engine's step adds ``a + b·(tp - 1)`` seconds, the
driver worker's hand-off of each step's inputs to the other ranks (V0's
``LocalOrDistributedWorkerBase.execute_model``: ``broadcast_tensor_dict`` of the model input,
metadata over the CPU group and each tensor over the device group, every step; V1 sends the
scheduler's output once and each worker keeps its own batch). Its size is not documented: fitted
by ``calibration/v0_tp_fit.py`` on a declared training split of the public corpus (the batch-1 rows
of LLM-Inference-Bench's Llama-3-8B at TP2 and TP4 on H100, vLLM 0.6.1; calibration/README.md,
"LLM-Inference-Bench"), reported on the rest."""

T_SEQ_UNIPROC_S = 5.5e-6
"""V1 (0.8 on) with one GPU per engine (tensor parallel size 1): the engine core's CPU per scheduled
sequence per step, in place of the testbed's 29.0 µs. Why the testbed's figure does not carry over:
at world size 1 vLLM runs the model runner in the engine core's own thread (``ParallelConfig``:
``distributed_executor_backend`` "uni" when ``world_size == 1``, vllm/config/parallel.py), a plain
call; the CPU backend forces the multiprocess executor instead ("OMP requires the MP executor",
vllm/platforms/cpu.py ``check_and_update_config``), so the testbed's engine-core thread also paid,
per request, the pickled ``SchedulerOutput`` broadcast to the worker and the ``ModelRunnerOutput``
sent back over the shared-memory queue, and its busy-wait (``sched_yield`` spin) on the worker's
forward pass (vllm/distributed/device_communicators/shm_broadcast.py, ``acquire_read``; all three files
read in vLLM 0.32.0, the testbed's build). The share of
those in the 27.1 µs was not separable from the probe's thread CPU, so the per-sequence figure is
fitted: by ``calibration/uniproc_seq_fit.py`` on a declared training split (the 7 entries of
inference-perf's ``vllm`` configuration, Llama-3.1-8B on one H100, vLLM 0.11; calibration/README.md,
Protocol item 2), reported on the rest: 5.5 µs, refitted after V1 steps past the largest captured CUDA graph
(that set's prefill-heavy steps: 375-555 tokens against 256) were given their kernel launches
(``sim.perf.eager``, 2026-12-08; 14.5 µs before, which had stood in for them; 12.5 µs before that, with the
capped stages' clients all starting at once; 10.0 µs on evenly spaced rate stages). The fit is weakly
identified: its score is within 0.1 point from 2.5 to 9.5 µs (calibration/README.md, "inference-perf's
prefix-caching set and V1 steps past the largest CUDA graph"). TP > 1 keeps the testbed's
figure (the multiprocess executor and its hand-off are what a GPU host runs there too)."""

FE_TOKEN_V1_GPU_HOST_S = 5.9e-6
"""V1 (0.8 on) on a GPU host: the API server's CPU per output token (``fe_token_s``: output processing,
detokenization, the streamed chunk), in place of the testbed's 84.2 µs. No documented rule carries the
testbed's figure to a GPU host: by single-thread speed the two CPUs are one class (``HOST_CPU_SPEEDUP``
= 1.0). The public runs say it is much smaller there: vLLM 0.11 stamps its server-side TTFT when the API
server's ``output_handler`` takes a step's outputs, before processing them, and a new request's first
token is sent after the whole batch (``first_tokens_last``), so the client's TTFT less the server's
grows by ``fe_token_s`` per running request; on inference-perf's H100 runs that gap is flat with load.
**Fitted** by ``calibration/fe_token_fit.py`` on a declared training split (stages 1-3 of inference-perf's
``vllm`` configuration, the stages that already set its ``client_overhead_s``; calibration/README.md,
Protocol item 2): the least-squares slope of that gap (less the API server's admission work) on the
running requests (Little's law), reported on the held-out configurations. Before 0.8 (V0) the testbed's
figure is kept: no run of the corpus separates it there."""

CHAT_FORMAT_UNCACHED = ((0, 8, 2), (0, 9, 2))
"""vLLM releases ``[first, end)`` whose chat endpoint re-detects the chat template's content format on
every request. ``_preprocess_chat`` (vllm/entrypoints/openai/serving_engine.py) calls
``resolve_chat_template_content_format``, which with ``--chat-template-content-format auto`` (the
default) re-parses the template into a Jinja AST and walks it (``_detect_content_format`` ->
``_try_extract_ast``: ``environment.parse(chat_template)``). Up to 0.8.1 that function was
``@lru_cache``d; 0.8.2 added its ``tools`` argument (a list, unhashable) and moved the cache to the log
call, so every request paid it; 0.9.2 caches ``_detect_content_format`` again (vLLM PR #20065: "called on
each prompt to v1/chat/completions", 6-8 s for 1,000 prompts). Read in the 0.8.0-0.8.5, 0.9.1 and 0.9.2
wheels' ``vllm/entrypoints/chat_utils.py`` (calibration/README.md, "vLLM 0.8.5's chat intake")."""

FE_CHAT_FORMAT_DETECT_S = {"llama-4": 4.92e-3, "llama-3.1": 4.41e-3}
"""The API server's CPU per chat request for that detection, by catalog model family (the name's
prefix): **measured**, not fitted, by ``calibration/chat_intake_bench.py`` (vLLM 0.8.5's own detection
functions; thread CPU on the CPU testbed's host; ``calibration/public/llm-d/chat_intake.json``,
``families``), scaled to a GPU host by ``HOST_CPU_SPEEDUP``. It depends on the template only (not on the
prompt). ``llama-4``: the chat template transformers ships with ``Llama4Processor`` (4,926 characters).
``llama-3.1``: the ``chat_template`` of meta-llama/Llama-3.1-8B-Instruct's ``tokenizer_config.json``
(4,614 characters, sha256 ``e10ca381...``, as vendored by two public repositories that agree byte for byte;
calibration/README.md, "Llama 3.1's chat template"), taken to be the 70B's and the 405B's (one
release's Instruct tokenizers). Only templates measured here are listed: other models of those releases
(Llama 3, 3.2, 3.3, ...) pay their own template's parse, not modelled."""


@dataclass(frozen=True)
class CpuSide:
    """vLLM's CPU work of one server, in seconds of the CPU it runs on."""

    t_step_s: float  # engine core, per step that runs the model
    t_seq_s: float  # engine core, per scheduled sequence in the step (decode or prefill chunk)
    t_prefill_tok_s: float  # engine core, per prefill token in the step
    fe_request_s: float  # API server, per request: HTTP, chat template, admission, hand-off
    fe_prompt_tok_s: float  # API server, per prompt token: tokenization
    fe_token_s: float  # API server, per output token: detokenization, output processing, SSE chunk
    async_scheduling: bool  # the engine core overlaps its CPU work with the GPU's step
    source: str  # where the numbers come from (one line)
    first_tokens_last: bool = True  # a step's new requests come last in its outputs (V1), else first (V0)

    def scaled(self, speedup: float, why: str) -> CpuSide:
        """The same work on a CPU ``speedup`` times faster (every time divided by it)."""
        return replace(
            self,
            t_step_s=self.t_step_s / speedup,
            t_seq_s=self.t_seq_s / speedup,
            t_prefill_tok_s=self.t_prefill_tok_s / speedup,
            fe_request_s=self.fe_request_s / speedup,
            fe_prompt_tok_s=self.fe_prompt_tok_s / speedup,
            fe_token_s=self.fe_token_s / speedup,
            source=f"{self.source}; {why}",
        )


# Measured on the CPU testbed (vLLM 0.32.0 CPU build, the testbed's 7.6M-parameter tiny model, 1,024
# sequences / 8,192 batched tokens, 10 bursts of 100-1,000 streamed chat requests, 128-512 prompt
# and 4-32 output tokens; thread / process CPU seconds, fitted by calibration/cpu_side_fit.py; the
# commands, raw files and fit are in calibration/cpu_side/ and calibration/README.md, "CPU side").
CPU_SIDE_TESTBED = CpuSide(
    t_step_s=3.85e-3,  # engine-core thread 1.68 ms + worker input preparation 2.17 ms
    t_seq_s=40.4e-6,  # per request 27.1 + 11.5 µs, plus the decode's one token 1.9 µs
    t_prefill_tok_s=1.90e-6,  # per token 1.54 + 0.36 µs
    fe_request_s=1.40e-3,  # API-server process CPU per request (10 bursts, max error 7.8%)
    fe_prompt_tok_s=2.65e-6,  # per prompt token (chat template + tokenization)
    fe_token_s=84.2e-6,  # per streamed output token (detokenize, output processing, SSE chunk)
    async_scheduling=False,
    source="measured on the CPU testbed (vLLM 0.32.0 CPU, tiny model, bursts of 100-1,000 requests; "
    "calibration/README.md, 'CPU side')",
)

# What of it runs on a GPU host. The engine-core thread (scheduler, update from the model's output)
# is the same code on every backend; the worker's input preparation measured above is the CPU
# backend's model runner (vllm/v1/worker/cpu_model_runner.py: CPU attention metadata, tensors built
# for the CPU kernels), not the GPU model runner a GPU host runs (persistent batch, pinned buffers
# copied to the GPU, CUDA graphs), so it is left out there. The engine-core figures are an upper
# bound of their own: they include the thread's wait on the worker's result (calibration/README.md).
# Evidence that the whole 3.85 ms does not carry over: on the public inference-perf runs (Llama-3.1-8B,
# one H100, vLLM 0.11, 1 req/s) charging it serially made E2E p50 30% slow (calibration/README.md,
# "CPU side"); the split itself follows which code runs where, not that figure.
CPU_SIDE_GPU_HOST = replace(
    CPU_SIDE_TESTBED,
    t_step_s=1.68e-3,  # engine-core thread only
    t_seq_s=29.0e-6,  # engine-core per request 27.1 µs + the decode's one token 1.9 µs
    t_prefill_tok_s=1.54e-6,  # engine-core per prefill token
    source="engine-core part of the CPU testbed's measurement (vLLM 0.32.0 CPU, tiny model, bursts of "
    "100-1,000 requests; the CPU backend's input preparation left out; calibration/README.md, 'CPU side')",
)

HOST_CPU_SPEEDUP = 1.0
"""How much faster one core of a GPU host runs vLLM's Python than one testbed core. Rule: the
single-thread ratio, taken as the clock ratio between cores of the same generation. The testbed's
vCPU is a Golden-Cove-or-later Xeon (AMX, AVX512-FP16 in /proc/cpuinfo) whose measured clock is
2.9-3.5 GHz (a dependent add chain, calibration/README.md); a DGX H100's host CPU is the Xeon
Platinum 8480C (Sapphire Rapids, Golden Cove; NVIDIA DGX H100 user guide), 3.8 GHz single-core /
~3.0 GHz all-core turbo (Intel ARK): 3.0-3.8 over 2.9-3.5 brackets 1.0 (0.86-1.31)."""


def is_v0(vllm_version: tuple[int, ...] | None, engine_core: str | None = None) -> bool:
    """Whether the server runs vLLM's V0 engine: before 0.8.0 by default, or where it was named
    (``engine.engine_core`` v0, ``VLLM_USE_V1=0`` on 0.8-0.10); ``engine_core`` v1 is V1 at any version."""
    if engine_core is not None:
        return engine_core == "v0"
    return vllm_version is not None and tuple(vllm_version) < V1_SINCE


def cpu_side_for(
    vllm_version: tuple[int, ...] | None,
    speculative_method: str | None = None,
    async_scheduling: bool | None = None,
    engine_core: str | None = None,
) -> CpuSide:
    """The CPU side of a vLLM server of this version on a GPU host (None: the newest vLLM, as the
    kernel data and the memory accounting take it). ``speculative_method``: the pool's proposer
    (``engine.speculative.method``), which decides async scheduling from 0.14 on:
    vLLM turns it on by default with EAGLE/MTP and off with other methods (PR #31998, in 0.14.0);
    the CPU n-gram proposer keeps it off; a draft model gets it by default from PR #48341 (the
    release that carries it is not identified here, so only the newest vLLM, no version named).
    ``async_scheduling``: the pool's ``engine.async_scheduling`` (vLLM ``--async-scheduling``, PR #19970,
    from 0.9.2; the scenario's validation refuses it before that and with the n-gram proposer):
    True or False decides it whatever the version's default; None leaves it to the version.
    ``engine_core``: the pool's ``engine.engine_core`` (``is_v0``): a V0 engine named on 0.8-0.10
    (``VLLM_USE_V1=0``) gets V0's rules of 0.6 on, the code path it runs."""
    host = CPU_SIDE_GPU_HOST.scaled(HOST_CPU_SPEEDUP, f"scaled to a GPU host's CPU (÷{HOST_CPU_SPEEDUP:g})")
    v = tuple(vllm_version) if vllm_version is not None else None
    async_on = v is None or v >= ASYNC_SCHEDULING_SINCE
    if speculative_method == "ngram" or (speculative_method == "draft" and v is not None):
        async_on = False
    if async_scheduling is not None:  # the server's --async-scheduling / --no-async-scheduling
        async_on = async_scheduling
    v0 = is_v0(v, engine_core)
    if v0 and v is not None and ASYNC_OUTPUT_PROC_SINCE <= v and speculative_method is None:
        return replace(  # V0 with the async output processor: output work overlaps the next step
            host,
            async_scheduling=False,
            first_tokens_last=False,
            source=host.source + "; vLLM 0.6-0.7 (V0): output processing overlapped with the next step (PR #7049)",
        )
    if v0:  # V0 before 0.6 (or with speculative decoding): detokenization in the engine's step loop
        return replace(
            host,
            t_seq_s=host.t_seq_s + host.fe_token_s,
            fe_token_s=0.0,
            async_scheduling=False,
            first_tokens_last=False,
            source=host.source + "; vLLM < 0.8 (V0): detokenization inside the engine step",
        )
    return replace(  # V1: the API server's per-token work as fitted for a GPU host (FE_TOKEN_V1_GPU_HOST_S)
        host,
        fe_token_s=FE_TOKEN_V1_GPU_HOST_S,
        async_scheduling=async_on,
        source=host.source + f"; V1 API server {FE_TOKEN_V1_GPU_HOST_S * 1e6:.1f} µs/output token, fitted on "
        "inference-perf's vllm stages 1-3 (calibration/README.md, Protocol item 2)",
    )


def with_chat_intake(
    cpu: CpuSide, vllm_version: tuple[int, ...] | None, model: str, chat_endpoint: bool | None = None
) -> CpuSide:
    """``cpu`` of a server of ``model`` (a catalog name) whose chat endpoint re-parses the chat template
    per request (``CHAT_FORMAT_UNCACHED`` releases): ``fe_request_s`` adds ``FE_CHAT_FORMAT_DETECT_S`` of
    the model's family, on the API server's loop before the request reaches the engine. Other releases,
    no version (the newest vLLM) and families not measured are returned unchanged, and so are requests
    sent to ``/v1/completions`` (``chat_endpoint`` false: the pool's ``engine.chat_endpoint``); unset, the
    chat endpoint is assumed."""
    v = tuple(vllm_version) if vllm_version is not None else None
    first, end = CHAT_FORMAT_UNCACHED
    if v is None or not (first <= v < end) or chat_endpoint is False:
        return cpu
    family = next((f for f in FE_CHAT_FORMAT_DETECT_S if model.startswith(f)), None)
    if family is None:
        return cpu
    extra = FE_CHAT_FORMAT_DETECT_S[family] / HOST_CPU_SPEEDUP
    return replace(
        cpu,
        fe_request_s=cpu.fe_request_s + extra,
        source=cpu.source + f"; chat template re-parsed per request (vLLM 0.8.2-0.9.1): +{extra * 1e3:.2f} ms "
        f"({family}, measured by calibration/chat_intake_bench.py)",
    )


def with_tensor_parallel(
    cpu: CpuSide, vllm_version: tuple[int, ...] | None, tp: int, engine_core: str | None = None
) -> CpuSide:
    """``cpu`` of a server with ``tp`` tensor-parallel ranks: before vLLM 0.8 (V0) the step adds
    ``V0_TP_STEP_S`` (the driver's per-step broadcast of the model input to the other ranks); V1
    at one GPU runs the model in the engine core's thread, without the multiprocess hand-off the
    testbed measured: its per-sequence CPU is ``T_SEQ_UNIPROC_S`` (the decode's one token kept)."""
    v1 = not is_v0(vllm_version, engine_core)
    if v1 and tp <= 1:
        return replace(
            cpu,
            t_seq_s=T_SEQ_UNIPROC_S,
            source=cpu.source + f"; one GPU (uni executor): {T_SEQ_UNIPROC_S * 1e6:.1f} µs/sequence, "
            "fitted on inference-perf's vllm set (calibration/README.md, Protocol item 2)",
        )
    if v1 or tp <= 1:
        return cpu
    a, b = V0_TP_STEP_S
    return replace(
        cpu,
        t_step_s=cpu.t_step_s + a + b * (tp - 1),
        source=cpu.source + f"; vLLM < 0.8 (V0) at TP{tp}: each step's inputs broadcast to the ranks",
    )


def step_cpu_s(cpu: CpuSide, num_seqs: int, prefill_tokens: int) -> float:
    """Engine-core CPU seconds of one step with ``num_seqs`` scheduled sequences (decodes +
    prefill chunks) and ``prefill_tokens`` prefill tokens (the formula ``PerfModel`` uses)."""
    return cpu.t_step_s + cpu.t_seq_s * num_seqs + cpu.t_prefill_tok_s * prefill_tokens
