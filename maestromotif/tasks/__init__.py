"""The nine evaluation tasks (method.md 4): specs with prompts and the paper's numbers, and
detectors that read success or counts from game state (legacy and strict metrics)."""

from maestromotif.tasks.detect import Estimate, TaskOutcome, TaskTracker, summarize
from maestromotif.tasks.specs import TASK_NAMES, TASKS, PaperNumbers, TaskSpec, get_task

__all__ = ["TASKS", "TASK_NAMES", "Estimate", "PaperNumbers", "TaskOutcome", "TaskSpec", "TaskTracker", "get_task", "summarize"]
