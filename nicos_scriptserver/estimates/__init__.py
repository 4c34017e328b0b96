"""Dry-run reports and queue time predictions: pure Python.

- `report`: turns what a dry run produced into the report stored on a
  job (state, estimate and where each figure came from, devices touched,
  problems with their lines); a black-box job's ``# estimate:`` line
- `timeline`: expected end of the current job and expected start and end
  of every waiting job

The application (`nicos_scriptserver.app.dryruns`) schedules the dry runs,
the daemon adapter (`nicos_scriptserver.daemon.simulation`) runs them.
"""

from nicos_scriptserver.estimates.report import (DryRunFacts, build_report,
                                                 declared_estimate, not_possible,
                                                 pending, running, summary_values,
                                                 with_declared)
from nicos_scriptserver.estimates.timeline import (current_times,
                                                   remaining_seconds, timeline)

__all__ = [
    'DryRunFacts', 'build_report',
    'current_times', 'declared_estimate', 'not_possible', 'pending',
    'remaining_seconds', 'running', 'summary_values', 'timeline', 'with_declared',
]
