"""Everything fleetcast renders for a person.

Procurement reports: ``build.build_report(results, formats, out)`` reads a
plan or run folder (``load``), gathers the assumptions (``assumptions``),
draws the figures (``figures``) and writes each format (``html_page``,
``pdf``, ``xlsx``) atomically. Output is deterministic for the same input (the
HTML byte for byte). The other renderings: ``terminal`` (the tables
``fleetcast run`` and ``compare`` print), ``compare`` (``compare.html``) and
``scenario_reference`` (``fleetcast schema``).
"""
