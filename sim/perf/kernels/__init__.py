"""Measured vLLM kernel timings turned into fleetcast's step-time tables.

``data`` finds and reads the kernel tables that the ``aiconfigurator-core``
package ships (Apache-2.0; parquet files under
``aiconfigurator_core/systems/data/<system>/<op>/vllm/<version>/``), ``tables``
builds one pool's fast form from them, ``cache`` keeps that form on disk.
Nothing here imports aiconfigurator's Python code: only its data files are read.
"""
