"""The mutation matrix, measured: each variant of fixtures/mutations.toml through the gate, as a Markdown table
for docs/broken-variants.md (variant, fault class, how it is made, the root cause it must trigger, what it does).

    python scripts/mutation_matrix.py [--device cpu]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from evalkit.gate.manifest import load
from evalkit.gate.runner import Gate
from evalkit.zoo.mutations import MUTATIONS

MANIFEST = Path(__file__).resolve().parents[1] / "fixtures" / "mutations.toml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    manifest = load(MANIFEST)
    gate = Gate(manifest, device=args.device)
    how = {m.name: (m.fault, m.how) for m in MUTATIONS}
    how["base_gptq_w4g64"] = ("equivalent", "the zoo's healthy GPTQ w4g64 (calibrated)")
    print("| variant | fault | how it is made | must | observed (primary; all diagnoses) | outcome |")
    print("|---|---|---|---|---|---|")
    for name, spec in manifest.models.items():
        if spec.parent is None:
            continue
        verdicts = [gate.verdict(name, task) for task in manifest.tasks]
        must = spec.diagnosis[0] if spec.diagnosis else "pass"
        seen = sorted({v.diagnosis or "pass" for v in verdicts})
        every = sorted({d for v in verdicts for d in v.diagnoses})
        outcome = "/".join(sorted({v.outcome for v in verdicts}))
        fault, made = how[name]
        print(f"| `{name}` | {fault} | {made} | `{must}` | {', '.join(f'`{d}`' for d in seen)}"
              f"{'; ' + ', '.join(every) if every and every != seen else ''} | {outcome} |")


if __name__ == "__main__":
    main()
