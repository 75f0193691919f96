"""Zoo models through the transformers backend and through real vLLM CPU servers started by evalkit: agreement,
compliance and the primary metric per task, wall times, and (with --drift) drift through the server against
`evalkit.run.drift` on the same teacher tokens.

    scripts/setup_vllm_venv.sh
    PYTHONPATH=. python scripts/compare_backends.py [--models base base_gptq_w4g64] [--limit 16] [--servers 2] [--drift]

Prints Markdown tables (the figures the closing note of issue 16 quotes). Runs at most two servers at once.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ZOO_TASKS = ("zoo_math", "zoo_multiple_choice", "zoo_yes_no", "zoo_span")
THRESHOLDS = {"max_mean_kl": 0.5, "min_top1_agreement": 0.80, "max_ppl_ratio": 1.5}  # the gate's defaults


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["base", "base_gptq_w4g64", "base_smoothquant_w8a8"])
    ap.add_argument("--tasks", nargs="+", default=list(ZOO_TASKS))
    ap.add_argument("--limit", type=int, default=16, help="items per task")
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--servers", type=int, default=1, choices=(1, 2), help="vLLM servers at once (models spread)")
    ap.add_argument("--drift", action="store_true", help="also compare drift against each model's zoo parent")
    ap.add_argument("--k", type=int, default=20, help="top-k of the server drift (also run with the whole vocabulary)")
    args = ap.parse_args(argv)

    from evalkit import zoo
    from evalkit.run.backends.compare import compare, table
    from evalkit.run.backends.vllm import VLLMConfig, unavailable

    reason = unavailable()
    if reason:
        print(f"compare_backends: {reason}", file=sys.stderr)
        return 1
    parents = {m: zoo.variant(m).parent for m in args.models}
    names = list(dict.fromkeys([*(parents.values() if args.drift else ()), *args.models]))
    paths = zoo.build(only=names, log=lambda msg: print(msg, file=sys.stderr))
    tasks = {t: _task(t, args.limit) for t in args.tasks}
    from evalkit.run.generation import GenerationConfig

    gen = GenerationConfig(max_new_tokens=args.max_new_tokens)
    hf, hf_seconds = _hf(names, paths, tasks, gen)
    config = VLLMConfig(max_logprobs=-1 if args.drift else 20, threads=None if args.servers == 1 else 1)
    teachers = _teachers(hf, parents, paths) if args.drift else {}
    begin = time.perf_counter()
    served, timings, logprobs = _served(names, paths, tasks, gen, config, args.servers, teachers, args.k)
    served_wall = time.perf_counter() - begin

    rows = [compare(m, hf[m][t], served[m][t]) for m in args.models for t in tasks]
    print(f"## transformers vs vLLM ({args.limit} items per task, max_new_tokens {args.max_new_tokens}, "
          f"{args.servers} server(s) at once)\n")
    print(table(rows))
    agree = sum(r.agreement * r.n for r in rows) / sum(r.n for r in rows)
    print(f"\noverall agreement {agree:.3f} ({sum(round(r.agreement * r.n) for r in rows)}/{sum(r.n for r in rows)})")
    print("\n| model | hf s (load + generate) | vllm server start s | vllm generate s | vllm logprobs s | vllm total s | "
          "vllm records digest | engine quantization: kernels |")
    print("|---|---|---|---|---|---|---|---|")
    for m in names:
        run, t = next(iter(served[m].values())).run.backend, timings[m]
        generate = sum(r.run.seconds for r in served[m].values())
        print(f"| {m} | {hf_seconds[m]:.1f} | {t['start']:.1f} | {generate:.1f} | {t['logprobs']:.1f} | {t['total']:.1f} | "
              f"{_digest(served[m])} | {run.get('quantization', '?')}: {run.get('kernels', 'default')} |")
    print(f"\nwall time: transformers {sum(hf_seconds.values()):.1f} s (one process, models in turn); vLLM "
          f"{served_wall:.1f} s ({len(names)} models, {args.servers} server(s) at once)")
    if args.drift:
        _print_drift(args, hf, parents, paths, teachers, logprobs)
    return 0


def _digest(results) -> str:
    """sha256 of every generation record of a model (in task and item order): equal digests, equal records."""
    import hashlib
    import json

    h = hashlib.sha256()
    for r in results.values():
        for rec in r.records:
            h.update(json.dumps(rec.generation.to_dict(), sort_keys=True).encode())
    return h.hexdigest()[:12]


def _task(name: str, limit: int):
    from evalkit.data.tasks import load_task

    return load_task(name, limit=limit)


def _hf(names, paths, tasks, gen):
    from evalkit.run.engine import evaluate
    from evalkit.models.loading import load_model

    results, seconds = {}, {}
    for m in names:
        start = time.perf_counter()
        loaded = load_model(paths[m])
        results[m] = {t: evaluate(loaded, task, gen) for t, task in tasks.items()}
        seconds[m] = time.perf_counter() - start
        del loaded
    return results, seconds


def _teachers(hf, parents, paths):
    """Teacher sequences per task: the parent's own greedy replies under the transformers backend."""
    from evalkit.run.backends.served import served_model
    from evalkit.run.drift import teacher_from_generations

    out = {}
    for p in set(parents.values()):
        tok = served_model(paths[p]).tokenizer
        out[p] = {t: teacher_from_generations(tok, r.run.generations) for t, r in hf[p].items()}
    return out


def _served(names, paths, tasks, gen, config, n_servers, teachers, k):
    from evalkit.run.backends.served import served_model
    from evalkit.run.backends.openai.drift import TopKConfig, teacher_logprobs
    from evalkit.run.backends.vllm import VLLMBackend, run_placed
    from evalkit.run.engine import evaluate

    def work(m, slot_config):
        start = time.perf_counter()
        model = served_model(paths[m])
        with VLLMBackend(model, slot_config) as backend:
            res = {t: evaluate(model, task, gen, backend=backend) for t, task in tasks.items()}
            begin, lps = time.perf_counter(), {}
            for p, per_task in teachers.items():  # every model's logprobs on every parent's teacher tokens
                lps[p] = {(kk, t): teacher_logprobs(backend.openai, seqs, TopKConfig(k=kk))
                          for t, seqs in per_task.items() for kk in (k, -1)}
            timing = {"start": backend.servers[0].start_seconds or math.nan, "logprobs": time.perf_counter() - begin}
        timing["total"] = time.perf_counter() - start
        return res, timing, lps

    out = run_placed(names, [config] * n_servers, work)
    return {m: o[0] for m, o in out.items()}, {m: o[1] for m, o in out.items()}, {m: o[2] for m, o in out.items()}


def _print_drift(args, hf, parents, paths, teachers, logprobs):
    from evalkit.run.backends.openai.drift import TopKConfig, server_drift
    from evalkit.run.drift import drift
    from evalkit.models.loading import load_model

    print(f"\n## drift against the parent: transformers (full softmax) vs through the server (top-{args.k} and whole "
          "vocabulary)\n")
    print(f"| model | task | n tokens | hf mean KL | server top-{args.k} mean KL (ratio) | server full mean KL (ratio) | "
          f"hf p99 KL | server top-{args.k} p99 | hf / server top-1 | hf / server ppl ratio | hf / server flags |")
    print("|" + "---|" * 11)
    loaded = {}
    for m in args.models:
        p = parents[m]
        if p == m:
            continue
        for name in (m, p):
            loaded.setdefault(name, load_model(paths[name]))
        for t, seqs in teachers[p].items():
            h = drift(loaded[m], loaded[p], seqs)
            s = server_drift(logprobs[p][p][(args.k, t)], logprobs[m][p][(args.k, t)], TopKConfig(k=args.k))
            f = server_drift(logprobs[p][p][(-1, t)], logprobs[m][p][(-1, t)], TopKConfig(k=-1))
            print(f"| {m} | {t} | {h.n_tokens} | {h.kl_mean:.3g} | {s.kl_mean:.3g} ({_ratio(s.kl_mean, h.kl_mean)}) | "
                  f"{f.kl_mean:.3g} ({_ratio(f.kl_mean, h.kl_mean)}) | {h.kl_p99:.3g} | {s.kl_p99:.3g} | "
                  f"{h.top1_agreement:.3f} / {s.top1_agreement:.3f} | {h.ppl_ratio:.4f} / {s.ppl_ratio:.4f} | "
                  f"{_flags(h)} / {_flags(s)} |")


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0 else "-"


def _flags(d) -> str:
    out = []
    if d.kl_mean > THRESHOLDS["max_mean_kl"]:
        out.append("KL")
    if d.top1_agreement < THRESHOLDS["min_top1_agreement"]:
        out.append("top1")
    if d.ppl_ratio > THRESHOLDS["max_ppl_ratio"]:
        out.append("ppl")
    return ",".join(out) or "-"


if __name__ == "__main__":
    raise SystemExit(main())
