"""Tasks plug into the one spine; importing this package registers every task in ``TASKS``."""

from slimrec.tasks.base import TASKS, Evaluation, RunConfig, Task, get_task, register_task

from slimrec.tasks.retrieval import RetrievalConfig, RetrievalTask  # isort: skip (first task)
from slimrec.tasks.ctr import CTRConfig, CTRTask, CTRTrainConfig
from slimrec.tasks.multitask import MultiTaskConfig, MultiTaskTask
from slimrec.tasks.sequential import SequentialConfig, SequentialTask

__all__ = ["TASKS", "CTRConfig", "CTRTask", "CTRTrainConfig", "Evaluation", "MultiTaskConfig",
           "MultiTaskTask", "RetrievalConfig", "RetrievalTask", "RunConfig", "SequentialConfig",
           "SequentialTask", "Task", "get_task", "register_task"]
