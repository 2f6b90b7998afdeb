"""What many predictions share: the scheduler that owns the models and the GPU (see scheduler)."""

from .scheduler import DEFAULT_MAX_WAIT_S, DEFAULT_QUEUE_BYTES, Scheduler, Session, SessionStats, is_device_fault
from .work import BatchKey, BatchRecord, WorkItem

__all__ = ["BatchKey", "BatchRecord", "DEFAULT_MAX_WAIT_S", "DEFAULT_QUEUE_BYTES", "Scheduler", "Session",
           "SessionStats", "WorkItem", "is_device_fault"]
