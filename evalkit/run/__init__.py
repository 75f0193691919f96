"""Running models: generation (`GenerationConfig`, the `Backend` seam, one folder per backend), the engine
(records -> results), the generation cache, and teacher-forced drift against a parent. torch loads lazily."""

from evalkit.run.cache import Cache
from evalkit.run.engine import SampleRecord, TaskResult, evaluate
from evalkit.run.generation import Backend, Generation, GenerationConfig, GenerationRun, Prompt

__all__ = ["Backend", "Cache", "Generation", "GenerationConfig", "GenerationRun", "Prompt", "SampleRecord",
           "TaskResult", "evaluate"]
