"""Generation speed: seconds per sample for each decoding path, printed as a table (a benchmark, not a test).

    python scripts/benchmark.py cpu [--model fixtures/zoo/base] [--task zoo_math] [--n 64]
    python scripts/benchmark.py gpu [--out DIR] [--budget 330] [--skip-quant]

cpu: a zoo model (or a tiny random Qwen3 when the zoo is not built) on real zoo prompts, eos active: the seed's
one-at-a-time loop, batched eager generation and the static-cache loop, in float32 and bfloat16; plus the cached
rerun of an evaluation (speedup of the cache).

gpu: a random model of Qwen3-0.6B's shape (hidden 1024, 28 layers, 16 heads, 8 kv heads, head_dim 128,
intermediate 3072, vocab 151936) in bf16, 128-token prompts, exactly 128 new tokens (eos disabled): one at a time,
batched eager, evalkit's CUDA-graph decoder and torch.compile; then the same model quantized with llmcompressor to
compressed-tensors W8A8 (int8 weights, dynamic per-token int8 activations) and W4A16 (int4 weights, group 128),
saved, reloaded through evalkit.models.loading and timed the same way. Stages run in priority order within --budget
seconds; the rest are reported as skipped. Full logs and a JSON of the rows go to --out.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evalkit.run.backends.transformers import HFBackend  # noqa: E402
from evalkit.run.generation import GenerationConfig, Prompt  # noqa: E402


@dataclass
class Row:
    model: str
    path: str  # decoding path, e.g. "one at a time (seed)", "batched eager", "cuda graph"
    dtype: str
    batch: int
    samples: int
    s_per_sample: float | None
    tokens_per_s: float | None
    note: str = ""


def table(rows: list[Row], title: str) -> str:
    lines = [f"\n{title}", "| model | path | dtype | batch | samples | s/sample | tokens/s | note |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        sps = f"{r.s_per_sample:.4g}" if r.s_per_sample is not None else "-"
        tps = f"{r.tokens_per_s:.0f}" if r.tokens_per_s is not None else "-"
        lines.append(f"| {r.model} | {r.path} | {r.dtype} | {r.batch} | {r.samples} | {sps} | {tps} | {r.note} |")
    return "\n".join(lines)


def timed(backend: HFBackend, prompts: list[Prompt], cfg: GenerationConfig, *, warm: list[Prompt] | None):
    """Run once on `warm` (compile, capture, lazy init), then time a run over `prompts`."""
    if warm:
        backend.generate(warm, cfg)
    run = backend.generate(prompts, cfg)
    t = run.throughput()
    per = t["output_tokens"] / max(1, t["samples"])
    return t["seconds_per_sample"], t["tokens_per_second"], per, run.backend.get("fallback", "")


# ------------------------------------------------------------------------------------------------------ CPU


def bench_cpu(args: argparse.Namespace) -> list[Row]:
    import tempfile

    import torch

    from evalkit.run.cache import Cache
    from evalkit.run.engine import evaluate
    from evalkit.data.tasks import load_task

    rows: list[Row] = []
    task = load_task(args.task, limit=args.n)
    print(f"torch threads: {torch.get_num_threads()}, task {task.name} x {len(task.items)}", flush=True)
    for dtype in ("float32", "bfloat16"):
        model = _cpu_model(args.model, dtype)
        name = Path(str(model.path)).name
        backend = HFBackend(model.model, model.tokenizer)
        base = GenerationConfig(max_new_tokens=args.max_new_tokens)
        prompts = backend.render(task.items, base)
        plans = [("one at a time (seed)", "eager", 1, prompts[: max(4, args.n // 4)]),
                 ("batched eager", "eager", 16, prompts), ("batched eager", "eager", 64, prompts),
                 ("static cache", "static", 16, prompts), ("static cache", "static", 64, prompts)]
        for label, decoder, bs, ps in plans:
            cfg = GenerationConfig(max_new_tokens=args.max_new_tokens, batch_size=bs, decoder=decoder)
            sps, tps, per, _ = timed(backend, ps, cfg, warm=ps[:2])
            rows.append(Row(name, label, dtype, bs, len(ps), sps, tps, f"{per:.0f} tokens/sample"))
            print(rows[-1], flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            cfg = GenerationConfig(max_new_tokens=args.max_new_tokens, batch_size=64)
            first = evaluate(model, task, cfg, cache=Cache(tmp))
            again = evaluate(model, task, cfg, cache=Cache(tmp))
            assert again.cache_hit and not first.cache_hit
            rows.append(Row(name, "evaluate, then cached rerun", dtype, 64, len(task.items),
                            again.seconds / len(task.items), None,
                            f"first {first.seconds:.2f} s, rerun {again.seconds * 1000:.1f} ms: "
                            f"{first.seconds / again.seconds:.0f}x faster"))
            print(rows[-1], flush=True)
    return rows


def _cpu_model(path: str | None, dtype: str):
    import torch

    zoo = Path(path) if path else REPO / "fixtures" / "zoo" / "base"
    if (zoo / "config.json").is_file():
        from evalkit.models.loading import load_model

        return load_model(zoo, dtype=getattr(torch, dtype))
    sys.path.insert(0, str(REPO / "tests" / "unit"))
    import tiny_models  # a random stand-in of the zoo's size until the zoo is built

    tok = tiny_models.build_tokenizer()
    model = tiny_models.build_model(len(tok), layers=4, hidden=256, eos_id=tok.eos_token_id).to(getattr(torch, dtype))
    return tiny_models.Tiny(model, tok, Path("random-tiny-qwen3"), "random")


# ------------------------------------------------------------------------------------------------------ GPU

QWEN3_06B = dict(hidden_size=1024, num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8, head_dim=128,
                 intermediate_size=3072, vocab_size=151936, max_position_embeddings=40960, rope_theta=1_000_000.0,
                 tie_word_embeddings=True, rms_norm_eps=1e-6)
PROMPT_TOKENS = NEW_TOKENS = 128
# EVALKIT_BENCH_DRY_RUN=1: the GPU plan end to end on the CPU with a tiny config (checks the script, not speed)
DRY_RUN = os.environ.get("EVALKIT_BENCH_DRY_RUN") == "1"
if DRY_RUN:
    QWEN3_06B |= dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                      intermediate_size=256, vocab_size=1000)
    PROMPT_TOKENS, NEW_TOKENS = 16, 8


def _wordlevel_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel(vocab={f"t{i}": i for i in range(vocab_size)}, unk_token="t0"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, unk_token="t0", pad_token="t0", eos_token="t1")


class Budget:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def bench_gpu(args: argparse.Namespace) -> list[Row]:
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    budget = Budget(args.budget)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    print(f"device: {_device_name()}, torch {torch.__version__}", flush=True)
    tok = _wordlevel_tokenizer(QWEN3_06B["vocab_size"])
    with torch.device("cpu" if DRY_RUN else "cuda"):
        torch.manual_seed(0)
        model = Qwen3ForCausalLM(Qwen3Config(**QWEN3_06B, eos_token_id=1, pad_token_id=0)).to(torch.bfloat16).eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(2, QWEN3_06B["vocab_size"], (2048, PROMPT_TOKENS), generator=g).tolist()
    prompts = [Prompt(str(i), "", tuple(r), "plain") for i, r in enumerate(ids)]

    def backend_for(m) -> HFBackend:
        b = HFBackend(m, tok)
        b.eos_ids = (QWEN3_06B["vocab_size"],)  # an id no model emits: every sample runs all 128 new tokens
        return b

    def stage(name: str, model_name: str, dtype: str, backend, path: str, decoder: str, bs: int, n: int,
              cost: float) -> None:
        if not wanted(name):
            return
        if budget.left() < cost:
            rows.append(Row(model_name, path, dtype, bs, n, None, None,
                            f"skipped: {budget.left():.0f} s of budget left"))
            print(rows[-1], flush=True)
            return
        if DRY_RUN and decoder in ("cuda_graph", "compiled"):
            decoder = "static"
        cfg = GenerationConfig(max_new_tokens=NEW_TOKENS, batch_size=bs, decoder=decoder)
        start = time.monotonic()
        try:
            # graph capture / compilation happen on a first full batch; eager paths need no warm-up here (the
            # first stage already initialised CUDA and cuBLAS)
            warm_ps = prompts[:bs] if decoder in ("cuda_graph", "compiled") else None
            sps, tps, per, fallback = timed(backend, prompts[:n], cfg, warm=warm_ps)
            note = f"{per:.0f} tokens/sample; stage {time.monotonic() - start:.0f} s" + (f"; {fallback}" if fallback
                                                                                        else "")
            if args.profile and decoder == "cuda_graph" and not fallback:
                _profile(backend, out, name)
            rows.append(Row(model_name, path, dtype, bs, n, sps, tps, note))
        except Exception as err:  # one failing path must not hide the others
            _log_error(out, name)
            rows.append(Row(model_name, path, dtype, bs, n, None, None, f"FAILED {type(err).__name__}: {err}"[:160]))
        print(rows[-1], flush=True)
        if not DRY_RUN:
            torch.cuda.empty_cache()

    def wanted(name: str) -> bool:
        return not args.stages or any(fnmatch.fnmatch(name, pat) for pat in args.stages.split(","))

    base = backend_for(model)
    plan = [
        ("bf16_graph256", "cuda graph", "cuda_graph", 256, 512, 20),
        ("bf16_graph64", "cuda graph", "cuda_graph", 64, 256, 15),
        ("bf16_eager64", "batched eager", "eager", 64, 64, 25),
        ("bf16_seed", "one at a time (seed)", "eager", 1, 2, 20),
        ("bf16_eager256", "batched eager", "eager", 256, 256, 20),
        ("bf16_graph512", "cuda graph", "cuda_graph", 512, 1024, 25),
        ("bf16_graph1024", "cuda graph", "cuda_graph", 1024, 2048, 40),
    ]
    for name, path, decoder, bs, n, cost in plan:
        stage(name, "Qwen3-0.6B shape", "bf16", base, path, decoder, bs, n, cost)
    if not args.skip_quant:
        for scheme in ("W8A8", "W4A16"):
            if not wanted(f"{scheme}_*"):
                continue
            if budget.left() < 90:
                rows.append(Row(f"{scheme} (compressed-tensors)", "all", scheme, 0, 0, None, None, "skipped: budget"))
                continue
            try:
                qbackend = backend_for(_quantized(model, tok, scheme, out).model)
            except Exception as err:
                _log_error(out, f"quantize_{scheme}")
                rows.append(Row(f"{scheme} (compressed-tensors)", "quantize + load", scheme, 0, 0, None, None,
                                f"FAILED {type(err).__name__}: {err}"[:160]))
                print(rows[-1], flush=True)
                continue
            name = f"{scheme} (compressed-tensors)"
            stage(f"{scheme}_graph256", name, scheme, qbackend, "cuda graph", "cuda_graph", 256, 512, 25)
            stage(f"{scheme}_seed", name, scheme, qbackend, "one at a time (seed)", "eager", 1, 1, 40)
            stage(f"{scheme}_eager64", name, scheme, qbackend, "batched eager", "eager", 64, 64, 45)
            stage(f"{scheme}_compiled256", name, scheme, qbackend, "torch.compile (reduce-overhead)", "compiled",
                  256, 512, 150)
            del qbackend
    stage("bf16_compiled256", "Qwen3-0.6B shape", "bf16", backend_for(model), "torch.compile (reduce-overhead)",
          "compiled", 256, 512, 120)
    return rows


def _profile(backend: HFBackend, out: Path, name: str) -> None:
    """The CUDA kernels of 8 replays of the captured decode step, by total time (to see what limits a step)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    dec = backend._static
    if dec is None or dec.graph is None:
        return
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(8):
            dec.graph.replay()
        torch.cuda.synchronize()
    text = prof.key_averages().table(sort_by="cuda_time_total", row_limit=30)
    with (out / "profile.txt").open("a") as fh:
        fh.write(f"=== {name}: 8 replays of one decode step\n{text}\n")
    print(text, flush=True)


def _log_error(out: Path, stage: str) -> None:
    with (out / "errors.txt").open("a") as fh:
        fh.write(f"=== {stage}\n{traceback.format_exc()}\n")


def _device_name() -> str:
    import torch

    return "CPU dry run" if DRY_RUN else torch.cuda.get_device_name(0)


def _quantized(model, tok, scheme: str, out: Path):
    """Quantize the model (round-to-nearest, no calibration data: random weights, speed only), save it compressed,
    and load it back the way the gate does (evalkit.models.loading)."""
    import tempfile

    import torch
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from transformers import AutoModelForCausalLM

    t0 = time.monotonic()
    root = Path(tempfile.gettempdir()) / "evalkit-bench"
    source = root / "bf16"
    if not (source / "config.json").is_file():  # oneshot wants a model that knows its folder
        model.save_pretrained(source)
        tok.save_pretrained(source)
    device = "cpu" if DRY_RUN else "cuda"
    clone = AutoModelForCausalLM.from_pretrained(source, dtype=torch.bfloat16, device_map={"": device})
    oneshot(model=clone, recipe=[QuantizationModifier(targets="Linear", scheme=scheme, ignore=["lm_head"])])
    folder = root / scheme
    clone.save_pretrained(folder, save_compressed=True)
    tok.save_pretrained(folder)
    del clone
    from evalkit.models.loading import load_model

    loaded = load_model(folder, device=device, dtype=torch.bfloat16)
    msg = f"{scheme}: quantized, saved and reloaded in {time.monotonic() - t0:.0f} s; notes: {loaded.notes}"
    print(msg, flush=True)
    with (out / "notes.txt").open("a") as fh:
        fh.write(msg + "\n")
    return loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="machine", required=True)
    cpu = sub.add_parser("cpu")
    cpu.add_argument("--model", default=None, help="model folder (default: fixtures/zoo/base)")
    cpu.add_argument("--task", default="zoo_math")
    cpu.add_argument("--n", type=int, default=64)
    cpu.add_argument("--max-new-tokens", type=int, default=128)
    gpu = sub.add_parser("gpu")
    gpu.add_argument("--out", default=os.environ.get("OUT", "benchmark-out"))
    gpu.add_argument("--budget", type=float, default=330.0, help="seconds for all stages")
    gpu.add_argument("--skip-quant", action="store_true")
    gpu.add_argument("--stages", default="", help="comma-separated name patterns, e.g. 'bf16_graph*,W8A8_*'")
    gpu.add_argument("--profile", action="store_true", help="profile the CUDA kernels of captured decode steps")
    args = parser.parse_args()
    rows = bench_cpu(args) if args.machine == "cpu" else bench_gpu(args)
    title = f"## {args.machine.upper()} generation benchmark"
    if args.machine == "gpu":
        title += f" ({_device_name()}, {PROMPT_TOKENS}-token prompts, {NEW_TOKENS} new tokens)"
        Path(args.out, "benchmark_rows.json").write_text(json.dumps([asdict(r) for r in rows], indent=1))
    print(table(rows, title))


if __name__ == "__main__":
    main()
