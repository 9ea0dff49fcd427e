"""Tasks plug into the one spine; importing this package registers every task in ``TASKS``."""

from slimrec.tasks.base import TASKS, Evaluation, RunConfig, Task, get_task, register_task

from slimrec.tasks.retrieval import RetrievalConfig, RetrievalTask  # isort: skip (first task)
from slimrec.tasks.ctr import CTRConfig, CTRTask, CTRTrainConfig

__all__ = ["TASKS", "CTRConfig", "CTRTask", "CTRTrainConfig", "Evaluation", "RetrievalConfig",
           "RetrievalTask", "RunConfig", "Task", "get_task", "register_task"]
