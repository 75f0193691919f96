"""Measure the fixture zoo's matrix: every parent, quantized and known-broken model on the four zoo tasks.

Prints the two tables of docs/quantization.md ("The zoo matrix, measured") and docs/broken-variants.md: per
model the score of each family (accuracy; F1 for span), replies cut at the token limit, the diagnoses, and drift
against the parent the gate compares it with (teacher-forced on the reference responses of the same items).
Everything goes through the library the gate uses (`evalkit.zoo.build`, `evalkit.models.loading.load_model`,
`evalkit.run.engine.evaluate`, `evalkit.run.drift.drift`), so the docs' numbers are the gate's numbers.

    OMP_NUM_THREADS=2 python scripts/zoo_matrix.py --n 200      # about 15 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from evalkit.core.types import FAMILIES  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="held-out items per family")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)

    from evalkit.run.drift import drift, teacher_from_references
    from evalkit.run.engine import evaluate
    from evalkit.run.generation import GenerationConfig
    from evalkit.models.loading import load_model
    from evalkit.core.metrics import PRIMARY_METRIC
    from evalkit.data.synthetic import MAKERS, reference_response
    from evalkit.data.tasks import load_task
    from evalkit.zoo import VARIANTS, build

    paths = build(device=args.device, log=lambda line: print(line, file=sys.stderr, flush=True))
    config = GenerationConfig(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    tasks = {f: load_task(MAKERS.get(f).task, limit=args.n) for f in FAMILIES}
    items = [item for task in tasks.values() for item in task.items]
    references = [reference_response(item) for item in items]
    loaded: dict = {}
    teacher: dict = {}  # parent name -> its teacher-forced reference sequences, tokenized once

    def model(name: str):
        if name not in loaded:
            loaded[name] = load_model(paths[name], device=args.device)
        return loaded[name]

    rows = []
    for name, v in VARIANTS.items():
        t0 = time.perf_counter()
        m = model(name)
        scores, at_limit, diagnoses = {}, 0, {}
        for family, task in tasks.items():
            result = evaluate(m, task, config)
            metric = result.metrics[PRIMARY_METRIC[family]]
            scores[family] = "undef" if metric.value is None else f"{metric.value:.3f}"
            at_limit += sum(r.generation.finish_reason == "length" for r in result.records)
            for diagnosis, count in result.diagnoses.items():
                diagnoses[diagnosis] = diagnoses.get(diagnosis, 0) + count
        d = None
        if v.parent != name:
            parent = model(v.parent)
            if v.parent not in teacher:
                teacher[v.parent] = teacher_from_references(parent.tokenizer, items, references)
            d = drift(m, parent, teacher[v.parent])
        rows.append((name, v, scores, at_limit, diagnoses, d))
        print(f"{name}: {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
        if v.kind == "broken":
            loaded.pop(name)

    total = len(items)
    print(f"\n{args.n} held-out items per family, greedy, thinking off, max_new_tokens={args.max_new_tokens}\n")
    print("| model (parent) | " + " | ".join(FAMILIES) + " | mean KL | top-1 agreement |")
    print("|---" * (len(FAMILIES) + 3) + "|")
    for name, v, scores, _, _, d in rows:
        if v.kind == "broken":
            continue
        drift_cells = f"{d.kl_mean:.1e} | {d.top1_agreement:.4f}" if d else " | "
        print(f"| `{name}` | " + " | ".join(scores[f] for f in FAMILIES) + f" | {drift_cells} |")
    print("\n| variant | " + " | ".join(FAMILIES) + " | replies at the token limit | diagnoses | mean KL | top-1 |"
          " first diverging layer |")
    print("|---" * (len(FAMILIES) + 6) + "|")
    for name, v, scores, at_limit, diagnoses, d in rows:
        if v.kind != "broken":
            continue
        top = ", ".join(f"{k} {n}" for k, n in sorted(diagnoses.items(), key=lambda kv: -kv[1]) if n)
        print(f"| `{name}` | " + " | ".join(scores[f] for f in FAMILIES) + f" | {at_limit} / {total} | {top} | "
              f"{d.kl_mean:.3g} | {d.top1_agreement:.3f} | {d.first_divergent_layer} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
