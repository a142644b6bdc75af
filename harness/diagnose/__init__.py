"""``harness diagnose``: what breaks on a phone's delegates, where in the graph, what to ship.

Matrix (heads x delegate configs, verdicts vs desktop references) -> exposure (how close the
model comes to each documented GPU failure mode) -> localization (probe models exposing
intermediate tensors, phone vs desktop) -> recommendation (fastest correct configuration and
the price of each remedy). See docs/diagnose.md.
"""

from harness.diagnose.run import DEFAULT_DELEGATES, SCHEMA, DiagnoseOptions, run_diagnose

__all__ = ["DEFAULT_DELEGATES", "SCHEMA", "DiagnoseOptions", "run_diagnose"]
