"""Data: the task registry (real datasets in their official schemas, and the zoo's synthetic families) as `Item`s."""

from evalkit.data.synthetic import MAKERS, generate, reference_response
from evalkit.data.tasks import TASKS, Task, TaskSpec, load_task
from evalkit.errors import TaskError

__all__ = ["MAKERS", "TASKS", "Task", "TaskError", "TaskSpec", "generate", "load_task", "reference_response"]
