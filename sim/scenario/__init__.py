"""The scenario file: YAML read with line numbers (``yamlio``), validated into
pydantic models (``spec.Scenario`` with its ``fleet_spec``, ``plan_spec``,
``events`` and the policy/router ``params``), checked against the catalog,
and written back out. Errors name the file, the line and the field."""
