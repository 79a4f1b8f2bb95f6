"""``sdtheory verify``: every statement of the theory as a numerical experiment.

The harness (:mod:`~sdtheory.verify.harness`) keeps a registry of checks; each check module
covers one part of docs/theory.md (linear form and label averaging, Delta and r*, the PLL
student, gradient training).
"""

from sdtheory.verify.harness import (
                                     CHECK_MODULES,
                                     Check,
                                     CheckResult,
                                     Tally,
                                     check,
                                     checks,
                                     format_table,
                                     results_to_json,
                                     run,
)

__all__ = ["CHECK_MODULES", "Check", "CheckResult", "Tally", "check", "checks", "run",
           "format_table", "results_to_json"]
