"""Jobs: the command line, job specs and the wiring of storage and cluster_lib into runs."""

from __future__ import annotations

__all__: list[str] = []
