"""The scheduler's tables (defined beside it in core/scheduler.py)."""

from enque.core.scheduler import JobLease, JobRun

__all__ = ["JobLease", "JobRun"]
