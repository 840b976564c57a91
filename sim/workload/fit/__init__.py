"""Fit a scenario's ``traffic:`` section to a production request log.

``log`` holds the log in memory (and drops bad rows with counted reasons),
``readers`` reads gateway logs, traces and Prometheus exports into it,
``arrivals``, ``lengths``, ``prefix`` and ``classes`` choose the models by
evidence, ``write`` renders the YAML with a comment per choice.
"""
