"""Generation speed: seconds per sample for each decoding path, printed as a table (a benchmark, not a test).

    python scripts/benchmark.py cpu [--model fixtures/zoo/base] [--task zoo_math] [--n 64]
    python scripts/benchmark.py gpu [--out DIR] [--budget 420] [--skip-quant] [--stages PATTERNS] [--profile STAGES]

cpu: a zoo model (or a tiny random Qwen3 when the zoo is not built) on real zoo prompts, eos active: the seed's
one-at-a-time loop, batched eager generation and the static-cache loop, in float32 and bfloat16; plus the cached
rerun of an evaluation (speedup of the cache).

gpu: a random model of Qwen3-0.6B's shape (hidden 1024, 28 layers, 16 heads, 8 kv heads, head_dim 128,
intermediate 3072, vocab 151936) in bf16, 128-token prompts, exactly 128 new tokens (eos disabled): evalkit's
CUDA-graph decoder per batch bucket (64, 256, 512, 1024; Triton decode attention and kernels), the same without
one of its pieces (unfused kernels, masked SDPA attention), batched eager, one at a time, torch.compile, and the peer measured in the same process:
transformers' ``generate(cache_implementation="static")`` with its automatic compile; then the same model quantized
with llmcompressor to compressed-tensors W8A8 (int8 weights, dynamic per-token int8 activations; also with the
library's own forward) and W4A16 (int4 weights, group 128), saved, reloaded through evalkit.models.loading and timed
the same way. Each row is printed beside its two floors (`floors`: the weights only; the weights and the KV-cache
reads) and the peer, as ratios; the tokens of each batch-256 stage are compared with batched eager generation's.
Stages run in priority order within --budget seconds; the rest are reported as skipped. Full logs and
benchmark_rows.json (dated, naming the card: docs/benchmarks/ keeps them) go to --out.
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
    timed.last = run  # type: ignore[attr-defined]  # the benchmark compares the stages' tokens afterwards
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
BANDWIDTH, PEAK = 4.8e12, 790e12  # H200: HBM3e bytes/s (datasheet), dense bf16 FLOP/s (measured here: KINDS.md)
# EVALKIT_BENCH_DRY_RUN=1: the GPU plan end to end on the CPU with a tiny config (checks the script, not speed)
DRY_RUN = os.environ.get("EVALKIT_BENCH_DRY_RUN") == "1"
if DRY_RUN:
    QWEN3_06B |= dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                      intermediate_size=256, vocab_size=1000)
    PROMPT_TOKENS, NEW_TOKENS = 16, 8


def floors(batch: int) -> dict[str, float]:
    """Seconds per sample no decoder can beat on the card, for this model shape, prompt and new tokens.

    weights: every decode step reads the weights once (shared by the batch) and does 2 FLOP per weight per row, so
    max(weight bytes x steps / batch / bandwidth, 2 x weights x new tokens / peak); kv: the same plus each decode step
    reading the filled part of its row's KV cache (prompt + tokens so far).
    """
    c = QWEN3_06B
    h, hd, layers = c["hidden_size"], c["head_dim"], c["num_hidden_layers"]
    per_layer = h * hd * (2 * c["num_attention_heads"] + 2 * c["num_key_value_heads"]) + 3 * h * c["intermediate_size"]
    weights = layers * per_layer + c["vocab_size"] * h  # matrices read per step (the tied lm_head once)
    weight_bytes, flops = 2 * weights, 2 * weights * NEW_TOKENS
    kv_bytes = layers * c["num_key_value_heads"] * hd * 2 * 2 * sum(PROMPT_TOKENS + s for s in range(1, NEW_TOKENS))
    stream = weight_bytes * NEW_TOKENS / batch
    return {"weights": max(stream / BANDWIDTH, flops / PEAK),
            "kv": max((stream + kv_bytes) / BANDWIDTH, flops / PEAK),
            "weight_gb": weight_bytes / 1e9}


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


class Bench:
    """The GPU plan's shared state: prompts, budget, rows, and how to run one stage."""

    def __init__(self, args: argparse.Namespace) -> None:
        import torch
        from transformers import Qwen3Config, Qwen3ForCausalLM

        self.args, self.budget, self.out = args, Budget(args.budget), Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.rows: list[Row] = []
        self.tokens: dict[str, list[list[str]]] = {}  # stage -> its first 256 samples' tokens
        self.tok = _wordlevel_tokenizer(QWEN3_06B["vocab_size"])
        with torch.device("cpu" if DRY_RUN else "cuda"):
            torch.manual_seed(0)
            config = Qwen3Config(**QWEN3_06B, eos_token_id=1, pad_token_id=0)
            self.model = Qwen3ForCausalLM(config).to(torch.bfloat16).eval()
        g = torch.Generator().manual_seed(0)
        ids = torch.randint(2, QWEN3_06B["vocab_size"], (2048, PROMPT_TOKENS), generator=g).tolist()
        self.prompts = [Prompt(str(i), "", tuple(r), "plain") for i, r in enumerate(ids)]

    def backend(self, model) -> HFBackend:
        b = HFBackend(model, self.tok)
        b.eos_ids = (QWEN3_06B["vocab_size"],)  # an id no model emits: every sample runs all 128 new tokens
        return b

    def wanted(self, name: str) -> bool:
        return not self.args.stages or any(fnmatch.fnmatch(name, p) for p in self.args.stages.split(","))

    def wanted_group(self, prefix: str) -> bool:
        """Whether any selected stage starts with `prefix` (e.g. a scheme worth quantizing for)."""
        return not self.args.stages or any(p.startswith(prefix) or fnmatch.fnmatch(prefix, p)
                                           for p in self.args.stages.split(","))

    def skip(self, name: str, cost: float) -> bool:
        if not self.wanted(name):
            return True
        if self.budget.left() < cost:
            print(f"{name}: skipped, {self.budget.left():.0f} s of budget left", flush=True)
            return True
        return False

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(row, flush=True)

    def stage(self, name: str, model_name: str, dtype: str, backend, path: str, decoder: str, bs: int, n: int,
              cost: float) -> None:
        import torch

        if self.skip(name, cost):
            return
        if DRY_RUN and decoder in ("cuda_graph", "compiled"):
            decoder = "static"
        cfg = GenerationConfig(max_new_tokens=NEW_TOKENS, batch_size=bs, decoder=decoder)
        start = time.monotonic()
        try:
            # capture / compilation happen on a first full batch; eager paths need no warm-up here
            warm = self.prompts[:bs] if decoder in ("cuda_graph", "compiled") else None
            sps, tps, per, fallback = timed(backend, self.prompts[:n], cfg, warm=warm)
            note = f"{per:.0f} tokens/sample; stage {time.monotonic() - start:.0f} s" + (f"; {fallback}" if fallback
                                                                                        else "")
            self.add(Row(model_name, path, dtype, bs, n, sps, tps, note))
            if bs == 256:
                self.tokens[name] = [g.raw_text.split() for g in timed.last.generations[:256]]  # type: ignore
            if self.args.profile and fnmatch.fnmatch(name, self.args.profile):
                _profile(backend, self.prompts[:bs], self.out, name)
        except Exception as err:  # one failing path must not hide the others
            _log_error(self.out, name)
            self.add(Row(model_name, path, dtype, bs, n, None, None, f"FAILED {type(err).__name__}: {err}"[:160]))
        if not DRY_RUN:
            torch.cuda.empty_cache()

    def peer(self, name: str, bs: int, n: int, cost: float) -> None:
        """transformers' own fast path, what a user would pick: generate(cache_implementation="static"), which
        compiles its decode step (first batch: warm-up and compile; the rest timed)."""
        import torch
        from transformers import GenerationConfig as HFConfig

        if self.skip(name, cost):
            return
        start = time.monotonic()
        cfg = HFConfig(max_new_tokens=NEW_TOKENS, do_sample=False, num_beams=1, cache_implementation="static",
                       eos_token_id=None, pad_token_id=0)
        try:
            dev = "cpu" if DRY_RUN else "cuda"
            batches = [torch.tensor([p.token_ids for p in self.prompts[i: i + bs]], device=dev)
                       for i in range(0, n + bs, bs)]
            with torch.inference_mode():
                self.model.generate(input_ids=batches[0], attention_mask=torch.ones_like(batches[0]),
                                    generation_config=cfg)
                _sync()
                t0 = time.perf_counter()
                for ids in batches[1:]:
                    out = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=cfg)
                _sync()
                seconds = time.perf_counter() - t0
            new = out.shape[1] - PROMPT_TOKENS
            self.add(Row("Qwen3-0.6B shape", "transformers generate(static cache, auto compile)", "bf16", bs, n,
                         seconds / n, n * new / seconds, f"{new} tokens/sample; stage {time.monotonic() - start:.0f} s"))
        except Exception as err:
            _log_error(self.out, name)
            self.add(Row("Qwen3-0.6B shape", "transformers generate(static cache)", "bf16", bs, n, None, None,
                         f"FAILED {type(err).__name__}: {err}"[:160]))


def _sync() -> None:
    import torch

    if not DRY_RUN:
        torch.cuda.synchronize()


def bench_gpu(bench: Bench) -> list[Row]:
    import torch

    args = bench.args
    print(f"device: {_device_name()}, torch {torch.__version__}", flush=True)
    base = bench.backend(bench.model)
    m = "Qwen3-0.6B shape"
    for name, path, decoder, bs, n, cost in [
        ("bf16_graph256", "cuda graph", "cuda_graph", 256, 512, 25),
        ("bf16_graph1024", "cuda graph", "cuda_graph", 1024, 2048, 40),
        ("bf16_graph64", "cuda graph", "cuda_graph", 64, 256, 15),
        ("bf16_graph512", "cuda graph", "cuda_graph", 512, 1024, 25),
        ("bf16_eager256", "batched eager", "eager", 256, 256, 25),
        ("bf16_seed", "one at a time (seed)", "eager", 1, 2, 20),
    ]:
        bench.stage(name, m, "bf16", base, path, decoder, bs, n, cost)
    for group, var, value, label in (("bf16_unfused", "EVALKIT_FUSE", "0", "cuda graph, unfused"),
                                     ("bf16_sdpa", "EVALKIT_ATTENTION", "sdpa", "cuda graph, masked SDPA attention")):
        if bench.wanted_group(group):  # the share of one piece: the same decoder without it
            os.environ[var] = value
            other = bench.backend(bench.model)
            bench.stage(f"{group}256", m, "bf16", other, label, "cuda_graph", 256, 512, 25)
            bench.stage(f"{group}1024", m, "bf16", other, label, "cuda_graph", 1024, 1024, 35)
            os.environ.pop(var)
            del other
    bench.peer("peer256", 256, 512, 150)
    if not args.skip_quant:
        for scheme in ("W8A8", "W4A16"):
            if not bench.wanted_group(f"{scheme}_"):
                continue
            if bench.budget.left() < 60:
                print(f"{scheme}: skipped, {bench.budget.left():.0f} s of budget left", flush=True)
                continue
            name = f"{scheme} (compressed-tensors)"
            try:
                qbackend = bench.backend(_quantized(bench.model, bench.tok, scheme, bench.out).model)
            except Exception as err:
                _log_error(bench.out, f"quantize_{scheme}")
                bench.add(Row(name, "quantize + load", scheme, 0, 0, None, None,
                              f"FAILED {type(err).__name__}: {err}"[:160]))
                continue
            bench.stage(f"{scheme}_graph256", name, scheme, qbackend, "cuda graph", "cuda_graph", 256, 512, 25)
            if scheme == "W8A8" and bench.wanted_group("W8A8_library"):  # the library's own forward, captured
                os.environ["EVALKIT_CT_FAST"] = "0"
                bench.stage("W8A8_library256", name, scheme, bench.backend(qbackend.model),
                            "cuda graph, compressed-tensors' own forward", "cuda_graph", 256, 256, 25)
                os.environ.pop("EVALKIT_CT_FAST")
            bench.stage(f"{scheme}_graph1024", name, scheme, qbackend, "cuda graph", "cuda_graph", 1024, 1024, 35)
            bench.stage(f"{scheme}_eager64", name, scheme, qbackend, "batched eager", "eager", 64, 64, 45)
            bench.stage(f"{scheme}_compiled256", name, scheme, qbackend, "torch.compile (reduce-overhead)",
                        "compiled", 256, 512, 60)
            del qbackend
    bench.stage("bf16_compiled256", m, "bf16", bench.backend(bench.model), "torch.compile (reduce-overhead)",
                "compiled", 256, 512, 120)
    return bench.rows


REFERENCES = {"bf16": "bf16_eager256", "W8A8": "W8A8_library256"}


def agreement(tokens: dict[str, list[list[str]]]) -> dict[str, dict[str, float]]:
    """Each batch-256 stage's tokens against a reference on the same 256 prompts (bf16: batched eager generation;
    W8A8: the CUDA-graph decoder with compressed-tensors' own forward): the share of samples with all 128 tokens
    equal, and the mean index of the first different token where one differs (a random model has near-ties, so
    rounding differences show as late divergences)."""
    out: dict[str, dict[str, float]] = {}
    for name, rows in tokens.items():
        reference = REFERENCES.get(name.split("_")[0], "")
        ref = tokens.get(reference)
        if ref is None or name == reference:
            continue
        firsts = [next((i for i, (a, b) in enumerate(zip(x, y)) if a != b), None) for x, y in zip(rows, ref)]
        differing = [f for f in firsts if f is not None]
        out[name] = {"identical": 1 - len(differing) / len(firsts),
                     "mean_first_difference": sum(differing) / len(differing) if differing else None}
        print(f"agreement {name} vs {reference}: {out[name]}", flush=True)
    return out


def ratios(rows: list[Row]) -> list[dict[str, object]]:
    """Each row with its two floors and its ratios to them and to the transformers peer (same batch, else 256)."""
    peers = {r.batch: r.s_per_sample for r in rows if r.path.startswith("transformers") and r.s_per_sample}
    out = []
    for r in rows:
        d: dict[str, object] = asdict(r)
        if r.s_per_sample and r.batch:
            f = floors(r.batch)
            peer_batch = r.batch if r.batch in peers else 256
            peer = peers.get(peer_batch)
            d.update(floor_weights=f["weights"], floor_kv=f["kv"], x_floor_weights=r.s_per_sample / f["weights"],
                     x_floor_kv=r.s_per_sample / f["kv"], peer_batch=peer_batch if peer else None,
                     peer_over_this=(peer / r.s_per_sample) if peer else None)
        out.append(d)
    return out


def gpu_table(rows: list[dict[str, object]], title: str) -> str:
    def num(v: object, fmt: str) -> str:
        return format(v, fmt) if isinstance(v, (int, float)) else "-"

    lines = [f"\n{title}", "| model | path | dtype | batch | s/sample | x weights floor | x KV floor | peer / this | "
             "tokens/s | note |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['path']} | {r['dtype']} | {r['batch']} | {num(r['s_per_sample'], '.4g')} | "
                     f"{num(r.get('x_floor_weights'), '.1f')} | {num(r.get('x_floor_kv'), '.2f')} | "
                     f"{num(r.get('peer_over_this'), '.2f')} | {num(r['tokens_per_s'], '.0f')} | {r['note']} |")
    f256, f1024 = floors(256), floors(1024)
    lines.append(f"\nfloors ({f256['weight_gb']:.2f} GB of weights, {BANDWIDTH / 1e12:.1f} TB/s, {PEAK / 1e12:.0f} "
                 f"TFLOP/s): weights-only {f256['weights']:.3g} s/sample at batch 256, {f1024['weights']:.3g} at "
                 f"1024; counting the KV cache reads {f256['kv']:.3g} at 256, {f1024['kv']:.3g} at 1024")
    return "\n".join(lines)


def _profile(backend: HFBackend, prompts: list[Prompt], out: Path, name: str) -> None:
    """The CUDA kernels of one batch's prefill and first decode steps by total time (what limits a step).

    Profiled through the captured step's eager twin: the same decoder in ``static`` mode with the same attention
    path, its kernels launched one by one so the profiler sees each (it does not see inside a graph replay).
    Replaying a captured graph again past its last step, as this did before, wrote past the end of the output
    buffer (the index assert) and then crashed.
    """
    import torch
    from torch.profiler import ProfilerActivity, profile

    from evalkit.run.backends.transformers.static import StaticDecoder

    graph = backend._static
    twin = HFBackend(backend.model, backend.tokenizer)
    twin.eos_ids = backend.eos_ids
    twin._static = StaticDecoder(backend.model, twin.eos_ids, twin.pad_id, mode="static")
    if graph is not None:  # the graph decoder's own choices: attention path, fused kernels, quantized forwards
        twin._static.attention, twin._static.fusions, twin._static.quantized = graph.attention, graph.fusions, \
            graph.quantized
    cfg = GenerationConfig(max_new_tokens=8, batch_size=len(prompts), decoder="static")
    twin.generate(prompts, cfg)  # warm-up
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        twin.generate(prompts, cfg)
        torch.cuda.synchronize()
    text = prof.key_averages().table(sort_by="cuda_time_total", row_limit=40)
    with (out / "profile.txt").open("a") as fh:
        fh.write(f"=== {name}: prefill + 7 decode steps, static twin of the graph decoder, batch {len(prompts)}\n"
                 f"{text}\n")
    del twin


def _log_error(out: Path, stage: str) -> None:
    with (out / "errors.txt").open("a") as fh:
        fh.write(f"=== {stage}\n{traceback.format_exc()}\n")
    print(f"{stage}: FAILED, traceback in errors.txt", flush=True)


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


def write_json(path: Path, rows: list[dict[str, object]], agree: dict[str, dict[str, float]]) -> None:
    """The run's rows with their floors and ratios, dated and naming the card (docs/benchmarks/ keeps them)."""
    import datetime

    import torch
    import transformers

    doc = {"date": datetime.date.today().isoformat(), "card": _device_name(), "torch": torch.__version__,
           "transformers": transformers.__version__, "cuda": torch.version.cuda,
           "setup": {"model": "random Qwen3-0.6B shape, bf16", **QWEN3_06B, "prompt_tokens": PROMPT_TOKENS,
                     "new_tokens": NEW_TOKENS, "bandwidth_bytes_per_s": BANDWIDTH, "peak_flops": PEAK},
           "floors": {str(b): floors(b) for b in (64, 256, 512, 1024)}, "rows": rows,
           "agreement_with_batched_eager": agree}
    path.write_text(json.dumps(doc, indent=1))


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
    gpu.add_argument("--budget", type=float, default=420.0, help="seconds for all stages")
    gpu.add_argument("--skip-quant", action="store_true")
    gpu.add_argument("--stages", default="", help="comma-separated name patterns, e.g. 'bf16_graph*,W8A8_*'")
    gpu.add_argument("--profile", default="", metavar="STAGES",
                     help="profile the CUDA kernels of these stages' decode steps (a name pattern, e.g. 'bf16_graph*')")
    args = parser.parse_args()
    if args.machine == "cpu":
        print(table(bench_cpu(args), "## CPU generation benchmark"))
        return
    bench = Bench(args)
    rows = ratios(bench_gpu(bench))
    write_json(Path(args.out, "benchmark_rows.json"), rows, agreement(bench.tokens))
    print(gpu_table(rows, f"## GPU generation benchmark ({_device_name()}, {PROMPT_TOKENS}-token prompts, "
                          f"{NEW_TOKENS} new tokens)"))


if __name__ == "__main__":
    main()
