"""The pure core: strings and numbers in, dataclasses out; no torch, no files, no pytest.

types (the `Item` row schema), prompts, boxes/normalize/extract (reading a response and its diagnosis), scoring
(per-item scores), metrics (the metric registry and aggregation), baselines, stats (the gate's paired test), and
the `Registry` every extension point uses. `evalkit.core.stats` (numpy) is imported where it is used, so importing
the core stays cheap.
"""

from evalkit.core.baselines import baseline_comparisons, compare_with_baseline, trivial_baseline
from evalkit.core.boxes import boxed, clean_text, is_repetition_loop
from evalkit.core.extract import DIAGNOSIS_ORDER, Diagnosis, Extraction, diagnose
from evalkit.core.metrics import METRICS, PRIMARY_METRIC, Metric, MetricSpec, aggregate
from evalkit.core.registry import Registry
from evalkit.core.scoring import ItemScore, math_equal, score, squad_v2
from evalkit.core.types import FAMILIES, Family, Item

__all__ = ["DIAGNOSIS_ORDER", "Diagnosis", "Extraction", "FAMILIES", "Family", "Item", "ItemScore", "METRICS",
           "Metric", "MetricSpec", "PRIMARY_METRIC", "Registry", "aggregate", "baseline_comparisons",
           "boxed", "clean_text", "compare_with_baseline", "diagnose", "is_repetition_loop", "math_equal",
           "score", "squad_v2", "trivial_baseline"]
