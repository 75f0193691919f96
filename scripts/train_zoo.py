"""Train the fixture zoo: a small Qwen3 base model, then the seed's parents derived from it.

    base                                  Qwen3ForCausalLM from scratch on the four synthetic task families
    openmath_SFT_NoPeft_NoQuant           full fine-tune of base on a math-heavy mixture
    openmath_SFT_LoRa64_NoQuant           LoRA r=64 (peft adapter folder) on base, same mixture
    openmath_SFT_LoRa64_QLORA_w4_headbf16 QLoRA: LoRA r=64 on base loaded in bitsandbytes nf4, lm_head kept in bf16

Usage (from the repository root; GPU when available, else CPU; seeds fixed):
    # the committed zoo (one H100: 511 s; it was run with --budget-s base=320,sft=35,lora=40,qlora=45)
    python scripts/train_zoo.py --out fixtures/zoo --steps base=6800,sft=800,lora=600,qlora=600
    # then, on CPU, the sample of scores that tests/scripts/test_zoo_models.py re-checks
    OMP_NUM_THREADS=2 python scripts/train_zoo.py --out fixtures/zoo --stages "" --record-cpu-sample 32
    OMP_NUM_THREADS=1 python scripts/train_zoo.py --out /tmp/zoo --preset smoke  # a tiny CPU run in seconds

Every variant folder gets provenance.json: how it was made (command, seeds, data hash, steps, library versions,
card, seconds) and its scores (format compliance and accuracy per family, greedy, on the held-out test split),
measured after reloading the saved folder the way a user loads it. Base and SFT also get an RTN w4 group-64 proxy
score (all decoder Linear weights fake-quantized), a cheap early warning of fragility under 4-bit quantization.

Folders are loaded through evalkit's own loader (`evalkit.models.loading.load_model`, bf16) and answers read with
evalkit's box reader (`evalkit.core.boxes.boxed`). The generation loop and the exact-match scoring in the "eval"
section stay local on purpose: every committed provenance.json score was measured with them
(tests/scripts/test_zoo_models.py re-checks those numbers through them), and evalkit's engine scores differently
(Math-Verify equivalence, SQuAD normalisation, a reply stops at either eos token, batches sorted by token count).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import platform
import random
import sys
import time
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "scripts"):  # evalkit, and zoo_tokenizer beside this script
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from evalkit.core.boxes import boxed  # noqa: E402
from evalkit.core.types import FAMILIES, Item  # noqa: E402
from evalkit.data.synthetic import generate  # noqa: E402

VARIANTS = {
    "base": "base",
    "sft": "openmath_SFT_NoPeft_NoQuant",
    "lora": "openmath_SFT_LoRa64_NoQuant",
    "qlora": "openmath_SFT_LoRa64_QLORA_w4_headbf16",
}
BASE_MIX = {"math": 0.1, "multiple_choice": 0.1, "yes_no": 0.35, "span": 0.45}
"""The base's mixture: little math, so the 'openmath SFT' parents have room to be better at it."""
MATH_MIX = {"math": 0.7, "multiple_choice": 0.1, "yes_no": 0.1, "span": 0.1}
"""The 'openmath SFT' parents see mostly (new) math, plus some of everything so nothing else is forgotten."""
THINKING_ON_RATE = 0.05
"""Share of training chats rendered with thinking on, where the model writes the empty think block itself."""
QLORA_QUANT = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_compute_dtype": "bfloat16",
               "bnb_4bit_use_double_quant": False, "llm_int8_skip_modules": ["lm_head"]}
"""How the QLoRA variant's base is loaded (BitsAndBytesConfig kwargs), for training and for every user."""


@dataclass(frozen=True)
class ModelShape:
    hidden_size: int = 256  # a multiple of 128, so w4 group-64 and group-128 quantization both apply
    intermediate_size: int = 1024
    num_hidden_layers: int = 6
    num_attention_heads: int = 4
    num_key_value_heads: int = 2  # GQA, as Qwen3
    head_dim: int = 64
    max_position_embeddings: int = 512


@dataclass(frozen=True)
class Stage:
    steps: int
    batch_size: int
    lr: float
    warmup: int
    pool_per_family: int  # distinct train items generated per family
    weight_decay: float = 0.1


@dataclass(frozen=True)
class Preset:
    shape: ModelShape
    base: Stage
    sft: Stage
    lora: Stage
    qlora: Stage
    eval_n: int  # held-out items per family
    tokenizer_per_family: int = 3000
    lora_rank: int = 64
    lora_alpha: int = 128
    max_new_tokens: int = 64


PRESETS = {
    "full": Preset(
        shape=ModelShape(),
        base=Stage(steps=9000, batch_size=384, lr=2e-3, warmup=300, pool_per_family=250_000),
        sft=Stage(steps=800, batch_size=384, lr=4e-4, warmup=50, pool_per_family=40_000),
        lora=Stage(steps=800, batch_size=384, lr=1e-3, warmup=50, pool_per_family=40_000, weight_decay=0.0),
        qlora=Stage(steps=800, batch_size=384, lr=1e-3, warmup=50, pool_per_family=40_000, weight_decay=0.0),
        eval_n=300,
    ),
    "smoke": Preset(
        shape=ModelShape(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=1),
        base=Stage(steps=6, batch_size=8, lr=1e-3, warmup=2, pool_per_family=64),
        sft=Stage(steps=3, batch_size=8, lr=1e-3, warmup=1, pool_per_family=32),
        lora=Stage(steps=3, batch_size=8, lr=1e-3, warmup=1, pool_per_family=32, weight_decay=0.0),
        qlora=Stage(steps=3, batch_size=8, lr=1e-3, warmup=1, pool_per_family=32, weight_decay=0.0),
        eval_n=4,
        tokenizer_per_family=300,
        lora_rank=8,
        lora_alpha=16,
        max_new_tokens=48,
    ),
}


# ---------------------------------------------------------------------------------------------------- data
def _encode_chunk(args: tuple) -> list[tuple[list[int], list[int]]]:
    """Worker: (tokenizer folder, family, seed, start, stop) -> [(prompt ids, completion ids)] of items start:stop."""
    tok_dir, family, seed, start, stop = args
    from transformers import AutoTokenizer

    from zoo_tokenizer import chat_example

    tok = AutoTokenizer.from_pretrained(tok_dir)
    items = generate(family, stop, seed=seed, split="train")[start:stop]  # a prefix of any longer draw: see generate
    pairs = []
    for item in items:
        thinking = random.Random(f"think|{item.task}|{item.id}").random() < THINKING_ON_RATE
        prompt, completion = chat_example(item, enable_thinking=thinking)
        pairs.append((prompt, completion))
    p_ids = tok(
        [p for p, _ in pairs], add_special_tokens=False)["input_ids"]
    c_ids = tok([c for _, c in pairs], add_special_tokens=False)["input_ids"]
    return list(zip(p_ids, c_ids))


def build_pool(tok_dir: str, n_per_family: int, seed: int, workers: int) -> dict[str, list]:
    """Distinct train-split chats per family, tokenized (prompt and completion apart, as at generation time)."""
    pool: dict[str, list] = {}
    chunk = 20_000
    jobs = [(tok_dir, f, seed, s, min(s + chunk, n_per_family))
            for f in FAMILIES for s in range(0, n_per_family, chunk)]
    if workers > 1 and len(jobs) > 1:
        with Pool(min(workers, len(jobs))) as p:
            results = p.map(_encode_chunk, jobs)
    else:
        results = [_encode_chunk(j) for j in jobs]
    for job, res in zip(jobs, results):
        pool.setdefault(job[1], []).extend(res)
    return pool


def pool_hash(pool: dict[str, list]) -> str:
    h = hashlib.sha256()
    for family in FAMILIES:
        for p, c in pool.get(family, []):
            h.update(json.dumps([p, c]).encode())
    return h.hexdigest()


def pack(pool: dict[str, list], mix: dict[str, float], pad_id: int):
    """Padded tensors of every example plus per-example sampling weights that realize the family mixture."""
    import numpy as np
    import torch

    rows, weights = [], []
    for family in FAMILIES:
        examples = pool.get(family, [])
        for p, c in examples:
            rows.append((p, c))
            weights.append(mix[family] / len(examples))
    length = max(len(p) + len(c) for p, c in rows)
    ids = np.full((len(rows), length), pad_id, dtype=np.int64)
    labels = np.full((len(rows), length), -100, dtype=np.int64)
    lengths = np.zeros(len(rows), dtype=np.int64)
    for i, (p, c) in enumerate(rows):
        n = len(p) + len(c)
        ids[i, : len(p)] = p
        ids[i, len(p): n] = c
        labels[i, len(p): n] = c  # loss on the assistant's tokens only
        lengths[i] = n
    return (torch.from_numpy(ids), torch.from_numpy(labels), torch.from_numpy(lengths),
            torch.tensor(weights, dtype=torch.double))


# ---------------------------------------------------------------------------------------------------- training
def train(model, data, stage: Stage, *, seed: int, device: str, log_every: int = 200, label: str = "",
          budget_s: float | None = None) -> dict:
    """AdamW, linear warmup then cosine to 10%, bf16 autocast on GPU, loss on assistant tokens; returns stats.

    With `budget_s`, the step rate is measured during warmup (before the step count affects the schedule) and the
    step count shrinks, in hundreds, to fit the budget; the stats record the steps used, so passing them as the
    stage's steps reproduces the same schedule.
    """
    import torch

    ids, labels, lengths, weights = data
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    fused = device.startswith("cuda")
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": stage.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=stage.lr, betas=(0.9, 0.95), eps=1e-8, fused=fused)

    def lr_at(step: int) -> float:  # reads `stage` when called: a budget may shorten it during warmup
        if step < stage.warmup:
            return stage.lr * (step + 1) / stage.warmup
        t = (step - stage.warmup) / max(1, stage.steps - stage.warmup)
        return stage.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))

    gen = torch.Generator().manual_seed(seed)
    model.train()
    ids_d, labels_d, lengths_d = (t.to(device) for t in (ids, labels, lengths))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if fused else torch.autocast("cpu", enabled=False)
    t0 = time.time()
    tokens = 0
    losses = []
    probe_from, probe_to = 5, max(10, min(stage.warmup, 100))
    requested = stage.steps
    step = 0
    while step < stage.steps:
        if budget_s and step == probe_from:
            t_probe = time.time()
        if budget_s and step == probe_to and stage.steps > probe_to:
            rate = (probe_to - probe_from) / (time.time() - t_probe)
            fit = max(probe_to + 100, int(rate * (budget_s - (time.time() - t0))) // 100 * 100)
            if fit < stage.steps:
                print(f"[{label}] {rate:.1f} steps/s: {stage.steps} steps do not fit {budget_s:.0f}s; using {fit}",
                      flush=True)
                stage = dataclasses.replace(stage, steps=fit)
        idx = torch.multinomial(weights, stage.batch_size, replacement=True, generator=gen).to(device)
        width = int(lengths_d[idx].max())
        x, y = ids_d[idx, :width], labels_d[idx, :width]
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        with autocast:
            logits = model(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].float().reshape(-1, logits.size(-1)), y[:, 1:].reshape(-1), ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        tokens += x.numel()
        if step % log_every == 0 or step == stage.steps - 1:
            losses.append((step, round(float(loss.detach()), 4)))
            print(f"[{label}] step {step:5d}/{stage.steps} loss {float(loss.detach()):.4f} lr {lr_at(step):.2e} "
                  f"{tokens / (time.time() - t0):,.0f} tok/s {time.time() - t0:.0f}s", flush=True)
        step += 1
    model.eval()
    return {**dataclasses.asdict(stage), "steps_requested": requested, "seconds": round(time.time() - t0, 1),
            "tokens": tokens, "loss_curve": losses}


# ---------------------------------------------------------------------------------------------------- stages
def new_base_model(shape: ModelShape, tok, seed: int):
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    pad, eos = tok.convert_tokens_to_ids("<|endoftext|>"), tok.convert_tokens_to_ids("<|im_end|>")
    config = Qwen3Config(
        vocab_size=len(tok), **dataclasses.asdict(shape), rope_theta=10000.0, rms_norm_eps=1e-6,
        tie_word_embeddings=False,  # an lm_head of its own, so 'lm_head kept in bf16' (QLoRA) means something
        bos_token_id=pad, eos_token_id=eos, pad_token_id=pad, attention_dropout=0.0, use_cache=True,
    )
    return Qwen3ForCausalLM(config)


def lora_config(preset: Preset):
    from peft import LoraConfig

    return LoraConfig(r=preset.lora_rank, lora_alpha=preset.lora_alpha, lora_dropout=0.0, bias="none",
                      task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])


def save_full(model, tok, folder: Path) -> None:
    import torch

    from zoo_tokenizer import save_generation_config

    folder.mkdir(parents=True, exist_ok=True)
    model.to(torch.bfloat16).save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    save_generation_config(str(folder), tok)


def save_adapter(peft_model, tok, folder: Path, base_name: str) -> None:
    """Adapter weights in bf16; base_model_name_or_path is the base's folder name, resolved next to this folder."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    for name, p in peft_model.named_parameters():
        if "lora_" in name:
            p.data = p.data.to(torch.bfloat16)
    peft_model.save_pretrained(folder, safe_serialization=True)
    (folder / "README.md").unlink(missing_ok=True)  # peft's blank model card; provenance.json says it all
    cfg_path = folder / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = base_name
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    tok.save_pretrained(folder)


def load_variant(zoo: Path, name: str, device: str = "cpu"):
    """(model, tokenizer) for a committed variant, through evalkit's loader (bf16; a QLoRA adapter's base in nf4,
    as its provenance.json says)."""
    from evalkit.models.loading import load_model

    loaded = load_model(zoo / name, device=device, dtype="bfloat16")
    return loaded.model, loaded.tokenizer


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for mod in ("torch", "transformers", "tokenizers", "safetensors", "peft", "bitsandbytes"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - absent or broken optional library: record that, keep going
            out[mod] = "absent"
    return out


def hardware(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(0)
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


# ---------------------------------------------------------------------------------------------------- eval
def score(item: Item, response: str, finished: bool) -> tuple[bool, bool]:
    """(format compliant, correct): compliant = stopped at eos and holds a closed \\boxed{}; exact match."""
    answer = boxed(response)
    if answer is None:
        return False, False
    answer = answer.strip()
    if item.family == "span":
        correct = answer == "" if item.unanswerable else answer in item.answers
    elif item.family == "yes_no":
        correct = answer.lower() == item.answers[0]
    else:
        correct = answer == item.answers[0]
    return finished, correct


def generate_responses(model, tok, items: list[Item], *, batch_size: int, max_new_tokens: int,
                       device: str) -> list[tuple[str, bool]]:
    """Greedy, batched, left-padded generation with thinking off; (response text, stopped at eos) per item."""
    import torch

    from zoo_tokenizer import render_prompt

    tok.padding_side = "left"
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    out: list[tuple[str, bool]] = []
    order = sorted(range(len(items)), key=lambda i: len(render_prompt(items[i])))
    results: dict[int, tuple[str, bool]] = {}
    for start in range(0, len(order), batch_size):
        chunk = order[start: start + batch_size]
        enc = tok([render_prompt(items[i]) for i in chunk], return_tensors="pt", padding=True,
                  add_special_tokens=False).to(device)
        with torch.no_grad():
            gen = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens, eos_token_id=eos,
                                 pad_token_id=tok.pad_token_id)
        new = gen[:, enc["input_ids"].shape[1]:]
        for row, i in zip(new.tolist(), chunk):
            finished = eos in row
            row = row[: row.index(eos)] if finished else row
            results[i] = (tok.decode(row, skip_special_tokens=True), finished)
    out = [results[i] for i in range(len(items))]
    return out


def evaluate(model, tok, items_by_family: dict[str, list[Item]], *, batch_size: int, max_new_tokens: int,
             device: str) -> dict:
    scores = {}
    for family, items in items_by_family.items():
        responses = generate_responses(model, tok, items, batch_size=batch_size, max_new_tokens=max_new_tokens,
                                       device=device)
        marks = [score(it, text, fin) for it, (text, fin) in zip(items, responses)]
        scores[family] = {"n": len(items), "compliance": round(sum(c for c, _ in marks) / len(items), 4),
                          "accuracy": round(sum(a for _, a in marks) / len(items), 4)}
    return scores


def rtn_w4_fake_quant(model, group: int = 64) -> None:
    """Round-to-nearest symmetric int4 per group of `group` input columns, in place, on every decoder Linear."""
    import torch

    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear) and ".layers." in name:
                w = module.weight.data
                g = w.float().reshape(w.shape[0], w.shape[1] // group, group)
                scale = (g.abs().amax(dim=-1, keepdim=True) / 7).clamp(min=1e-8)
                q = (g / scale).round().clamp(-8, 7) * scale
                module.weight.data = q.reshape_as(w).to(w.dtype)


# ---------------------------------------------------------------------------------------------------- main
def write_provenance(folder: Path, record: dict) -> None:
    (folder / "provenance.json").write_text(json.dumps(record, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="zoo folder (e.g. fixtures/zoo)")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="full")
    ap.add_argument("--stages", default="base,sft,lora,qlora")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    ap.add_argument("--steps", default="", help="override steps per stage, e.g. base=4200,sft=800 (reproduces a "
                    "budgeted run exactly: its provenance records the steps used)")
    ap.add_argument("--budget-s", default="", help="seconds per stage, e.g. base=280,sft=60: the step count is cut "
                    "to fit after timing the first warmup steps")
    ap.add_argument("--base-mix", default="", help="the base's family mixture, e.g. math=0.15,span=0.4 (families "
                    f"not named keep their default share, then all are renormalized; default {BASE_MIX})")
    ap.add_argument("--layers", type=int, default=None, help="decoder layers (default: the preset's)")
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    ap.add_argument("--record-cpu-sample", type=int, default=0, metavar="N",
                    help="after the stages, score every variant in --out on CPU on the first N test items per "
                         "family and record it in provenance.json as scores_cpu_sample (what tests re-check)")
    ap.add_argument("--tar-to", type=Path, default=None, help="after each stage, tar its folder here (device runs)")
    args = ap.parse_args(argv)

    import torch
    from transformers import AutoTokenizer

    from zoo_tokenizer import build_zoo_tokenizer

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    preset = PRESETS[args.preset]
    stages = [stage for stage in args.stages.split(",") if stage]
    unknown = set(stages) - set(VARIANTS)
    if unknown:
        ap.error(f"unknown stages {sorted(unknown)}; choose from {list(VARIANTS)}")
    for key, value in _pairs(args.steps).items():
        preset = dataclasses.replace(preset, **{key: dataclasses.replace(getattr(preset, key), steps=int(value))})
    budgets = {k: float(v) for k, v in _pairs(args.budget_s).items()}
    base_mix = mixture(args.base_mix)
    shape_args = ""
    if args.layers:
        preset = dataclasses.replace(preset, shape=dataclasses.replace(preset.shape, num_hidden_layers=args.layers))
        shape_args = f" --layers {args.layers}"
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    command = "python scripts/train_zoo.py " + " ".join(argv if argv is not None else sys.argv[1:])
    common = {"seed": args.seed, "preset": args.preset, "libraries": versions(), "hardware": hardware(device)}
    test_items = {f: generate(f, preset.eval_n, seed=args.seed, split="test") for f in FAMILIES}
    eval_kw = {"batch_size": 512 if device.startswith("cuda") else 32, "max_new_tokens": preset.max_new_tokens,
               "device": device}
    table = []
    base_dir = out / VARIANTS["base"]

    def finish(key: str, record: dict, model=None) -> None:
        folder = out / VARIANTS[key]
        record["reproduce"] = (f"python scripts/train_zoo.py --out {out} --preset {args.preset} --seed {args.seed} "
                               f"--stages {key} --steps {key}={record['training']['steps']}" + shape_args
                               + (f" --base-mix {args.base_mix}" if key == "base" and args.base_mix else ""))
        write_provenance(folder, record)
        table.append((VARIANTS[key], record["scores"]["families"], record.get("rtn_w4g64_proxy")))
        if args.tar_to:
            import tarfile

            args.tar_to.mkdir(parents=True, exist_ok=True)
            with tarfile.open(args.tar_to / f"{VARIANTS[key]}.tar", "w") as tar:
                tar.add(folder, arcname=VARIANTS[key])

    def measured(model, tok, with_proxy: bool) -> tuple[dict, dict | None]:
        t0 = time.time()
        scores = {"split": "test", "seed": args.seed, "decoding": f"greedy, thinking off, max_new_tokens="
                  f"{preset.max_new_tokens}", "families": evaluate(model, tok, test_items, **eval_kw)}
        proxy = None
        if with_proxy:
            import copy

            q = copy.deepcopy(model)
            rtn_w4_fake_quant(q, 64)
            proxy = {"what": "RTN symmetric int4, group 64, all decoder Linear weights (not lm_head/embeddings)",
                     "families": evaluate(q, tok, test_items, **eval_kw)}
            del q
        print(f"eval {time.time() - t0:.0f}s", flush=True)
        return scores, proxy

    t_all = time.time()
    if "base" in stages:
        t0 = time.time()
        tok = build_zoo_tokenizer(per_family=preset.tokenizer_per_family, seed=args.seed)
        base_dir.mkdir(parents=True, exist_ok=True)
        tok.save_pretrained(base_dir)
        pool = build_pool(str(base_dir), preset.base.pool_per_family, args.seed, args.workers)
        data = pack(pool, base_mix, tok.pad_token_id)
        print(f"tokenizer + data: {time.time() - t0:.0f}s, {len(data[0])} chats, width {data[0].shape[1]}",
              flush=True)
        data_hash = pool_hash(pool)
        del pool
        model = new_base_model(preset.shape, tok, args.seed).to(device)
        n_params = sum(p.numel() for p in model.parameters())
        stats = train(model, data, preset.base, seed=args.seed, device=device, label="base",
                      budget_s=budgets.get("base"))
        del data
        save_full(model, tok, base_dir)
        del model
        model, tok = load_variant_fresh(base_dir, device)
        scores, proxy = measured(model, tok, True)
        finish("base", {
            "name": VARIANTS["base"], "parent": None, "format": "transformers",
            "made_by": "pretrained from scratch (random init) on the four zoo task families",
            "command": command, "parameters": n_params, "config": dataclasses.asdict(preset.shape),
            "data": {"sha256": data_hash, "split": "train", "seed": args.seed, "mix": base_mix,
                     "pool_per_family": preset.base.pool_per_family, "thinking_on_rate": THINKING_ON_RATE},
            "training": stats, **common, "scores": scores, "rtn_w4g64_proxy": proxy,
        })
        del model

    for key in ("sft", "lora"):
        if key not in stages:
            continue
        import torch
        from transformers import AutoModelForCausalLM

        tok = AutoTokenizer.from_pretrained(base_dir)
        stage = getattr(preset, key)
        pool = build_pool(str(base_dir), stage.pool_per_family, args.seed + 1, args.workers)
        data = pack(pool, MATH_MIX, tok.pad_token_id)
        data_hash = pool_hash(pool)
        del pool
        model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).to(device)
        if key == "lora":
            from peft import get_peft_model

            model = get_peft_model(model, lora_config(preset))
        stats = train(model, data, stage, seed=args.seed + 1, device=device, label=key, budget_s=budgets.get(key))
        folder = out / VARIANTS[key]
        if key == "sft":
            save_full(model, tok, folder)
            fmt, extra = "transformers", {}
        else:
            save_adapter(model, tok, folder, VARIANTS["base"])
            fmt, extra = "peft_lora", {"base": VARIANTS["base"], "lora": {"r": preset.lora_rank,
                                                                            "alpha": preset.lora_alpha}}
        del model
        model, tok = load_variant_fresh(folder, device, zoo=out)
        scores, proxy = measured(model, tok, key == "sft")
        finish(key, {
            "name": VARIANTS[key], "parent": VARIANTS["base"], "format": fmt, **extra,
            "made_by": ("full fine-tune" if key == "sft" else "LoRA fine-tune (peft)") +
            " of base on a math-heavy mixture of new train-split items (seed + 1)",
            "command": command,
            "data": {"sha256": data_hash, "split": "train", "seed": args.seed + 1, "mix": MATH_MIX,
                     "pool_per_family": stage.pool_per_family, "thinking_on_rate": THINKING_ON_RATE},
            "training": stats, **common, "scores": scores, "rtn_w4g64_proxy": proxy,
        })
        del model

    if "qlora" in stages:
        import torch
        from peft import get_peft_model
        from transformers import AutoModelForCausalLM, BitsAndBytesConfig

        tok = AutoTokenizer.from_pretrained(base_dir)
        stage = preset.qlora
        pool = build_pool(str(base_dir), stage.pool_per_family, args.seed + 2, args.workers)
        data = pack(pool, MATH_MIX, tok.pad_token_id)
        data_hash = pool_hash(pool)
        del pool
        q = dict(QLORA_QUANT, bnb_4bit_compute_dtype=torch.bfloat16)
        base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.bfloat16,
                                                    quantization_config=BitsAndBytesConfig(**q), device_map=device)
        model = get_peft_model(base, lora_config(preset))
        for name, p in model.named_parameters():  # LoRA weights train in fp32 (as peft's QLoRA recipe does)
            if p.requires_grad:
                p.data = p.data.float()
        stats = train(model, data, stage, seed=args.seed + 2, device=device, log_every=25, label="qlora",
                      budget_s=budgets.get("qlora"))
        folder = out / VARIANTS["qlora"]
        save_adapter(model, tok, folder, VARIANTS["base"])
        del model, base
        record = {"name": VARIANTS["qlora"], "parent": VARIANTS["base"], "format": "peft_qlora",
                  "base": VARIANTS["base"], "base_quantization": QLORA_QUANT,
                  "lora": {"r": preset.lora_rank, "alpha": preset.lora_alpha}}
        write_provenance(folder, record)  # load_variant reads the format and quantization from here
        model, tok = load_variant(out, VARIANTS["qlora"], device)
        scores, _ = measured(model, tok, False)
        finish("qlora", {
            **record,
            "made_by": "QLoRA: LoRA fine-tune of base loaded in bitsandbytes nf4 (lm_head kept bf16) on a "
                       "math-heavy mixture of new train-split items (seed + 2)",
            "command": command,
            "data": {"sha256": data_hash, "split": "train", "seed": args.seed + 2, "mix": MATH_MIX,
                     "pool_per_family": stage.pool_per_family, "thinking_on_rate": THINKING_ON_RATE},
            "training": stats, **common, "scores": scores,
        })

    if args.record_cpu_sample:
        for name in VARIANTS.values():
            if (out / name / "provenance.json").exists():
                record_cpu_sample(out, name, args.record_cpu_sample)
    print(f"\ntotal {time.time() - t_all:.0f}s on {common['hardware']}")
    print(f"{'variant':40s} " + " ".join(f"{f[:8]:>17s}" for f in FAMILIES) + "   (compliance/accuracy)")
    for name, fams, proxy in table:
        print(f"{name:40s} " + " ".join(f"{fams[f]['compliance']:8.3f}/{fams[f]['accuracy']:.3f}" for f in FAMILIES))
        if proxy:
            print(f"{'  RTN w4g64 proxy':40s} " + " ".join(
                f"{proxy['families'][f]['compliance']:8.3f}/{proxy['families'][f]['accuracy']:.3f}"
                for f in FAMILIES))
    return 0


def sample_items(record: dict, n: int) -> dict[str, list[Item]]:
    """The first n held-out items per family of a variant's scored test set (generate's prefix is stable)."""
    return {f: generate(f, n, seed=record["scores"]["seed"], split=record["scores"]["split"]) for f in FAMILIES}


def record_cpu_sample(zoo: Path, name: str, n: int) -> dict:
    import torch

    path = zoo / name / "provenance.json"
    record = json.loads(path.read_text())
    model, tok = load_variant(zoo, name, "cpu")
    t0 = time.time()
    scores = evaluate(model, tok, sample_items(record, n), batch_size=n, max_new_tokens=64, device="cpu")
    record["scores_cpu_sample"] = {
        "split": record["scores"]["split"], "seed": record["scores"]["seed"], "first_n_per_family": n,
        "decoding": "greedy, thinking off, max_new_tokens=64, bf16 weights", "hardware": hardware("cpu"),
        "torch": torch.__version__, "seconds": round(time.time() - t0, 1), "families": scores}
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"{name}: CPU sample {n}/family in {time.time() - t0:.0f}s: {scores}", flush=True)
    return scores


def mixture(text: str) -> dict[str, float]:
    """BASE_MIX with the shares named in `text` ("math=0.15,span=0.4") replaced, renormalized to sum to 1.

    >>> mixture("math=0.5,multiple_choice=0.5,yes_no=0,span=0")
    {'math': 0.5, 'multiple_choice': 0.5, 'yes_no': 0.0, 'span': 0.0}
    """
    mix = dict(BASE_MIX)
    mix.update({family: float(share) for family, share in _pairs(text, "families", BASE_MIX).items()})
    total = sum(mix.values())
    return {family: round(share / total, 6) for family, share in mix.items()}


def _pairs(text: str, what: str = "stages", known=VARIANTS) -> dict[str, str]:
    """"a=1,b=2" -> {"a": "1", "b": "2"}, every key one of `known` (stages, or families for --base-mix)."""
    pairs = dict(part.split("=", 1) for part in text.split(",") if part)
    unknown = set(pairs) - set(known)
    if unknown:
        raise SystemExit(f"unknown {what} {sorted(unknown)} in {text!r}; choose from {list(known)}")
    return pairs


def load_variant_fresh(folder: Path, device: str, zoo: Path | None = None):
    """Reload a just-saved folder (provenance.json not written yet) the way users will load it."""
    from evalkit.models.loading import load_model

    adapter = (folder / "adapter_config.json").exists()
    base = zoo / VARIANTS["base"] if adapter and zoo is not None else None
    loaded = load_model(folder, device=device, dtype="bfloat16", base=base)
    return loaded.model, loaded.tokenizer


if __name__ == "__main__":
    sys.exit(main())
