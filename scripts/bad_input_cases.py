"""The bad inputs `bad_inputs.py` runs: what a careless or hostile user gives evalkit, grouped by where it enters.

Each `Case` is one command line (placeholders ``{tmp}``, ``{work}``, ``{shared}``, ``{cache}``, ``{out}``), what it
needs on disk first (`setup`), what of the user's must survive it (`protect`), and what it must give: a refusal
(``want="refuse"``: exit 2 and one line naming `names`) or a result that copes (``want="ok"``: exit `rc` and
`check` holds). Models are the fixture zoo's trained ``base`` (512 positions) and copies of it changed by real
means (a scaled layer, zeroed embeddings, NaN weights); data files are the shared BoolQ sample and files written
here. Nothing here imports evalkit: the cases run against any checkout (``--evalkit``).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ZOO = Path(os.environ.get("EVALKIT_ZOO_DIR") or REPO / "fixtures" / "zoo")
ZOO_CACHE = Path(os.environ.get("EVALKIT_ZOO_CACHE") or REPO / ".evalkit" / "zoo")
DATA = Path(os.environ.get("EVALKIT_DATA_DIR") or REPO.parent / "shared" / "data")
BOOLQ = DATA / "boolq" / "boolq_dev_sample.jsonl"
FAST = ["--limit", "3", "--max-new-tokens", "8", "--device", "cpu", "-q"]
MEMORY = 8 << 30  # address space per command: a runaway forward pass ends as an out-of-memory error, never a swap


@dataclass
class Result:
    rc: int | None
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False


class Ctx:
    """One case's world: its own folder (``tmp``), a working directory inside it (``work``), the shared models."""

    def __init__(self, tmp: Path, shared: Path, evalkit: Path) -> None:
        self.tmp, self.shared, self.evalkit = tmp, shared, evalkit
        self.work = tmp / "work"
        self.work.mkdir()
        self.cache = tmp / "cache"
        self.out = tmp / "out"
        self._procs: list[subprocess.Popen] = []

    def fmt(self, text: str) -> str:
        return text.format(tmp=self.tmp, work=self.work, shared=self.shared, cache=self.cache, out=self.out)

    def env(self) -> dict[str, str]:
        env = {**os.environ, "PYTHONPATH": str(self.evalkit), "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE",
               "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
               "EVALKIT_DATA_DIR": str(DATA), "PYTHONWARNINGS": "default"}
        env.pop("PYTEST_CURRENT_TEST", None)
        return env

    def command(self, argv: Sequence[str]) -> list[str]:
        return [sys.executable, "-m", "evalkit.cli", *(self.fmt(a) for a in argv)]

    def run(self, argv: Sequence[str], *, timeout: int = 120, cwd: Path | None = None) -> Result:
        started = time.perf_counter()
        try:
            p = subprocess.run(self.command(argv), capture_output=True, text=True, timeout=timeout,
                               cwd=cwd or self.work, env=self.env(), preexec_fn=_limit_memory)
        except subprocess.TimeoutExpired as err:
            return Result(None, _text(err.stdout), _text(err.stderr), time.perf_counter() - started, True)
        return Result(p.returncode, p.stdout, p.stderr, time.perf_counter() - started)

    def popen(self, argv: Sequence[str]) -> subprocess.Popen:
        p = subprocess.Popen(self.command(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=self.work, env=self.env(), preexec_fn=_limit_memory)
        self._procs.append(p)
        return p

    def generated(self) -> bool:
        """Whether any generation reached this case's cache (a model was evaluated)."""
        return any((self.cache / "generations").rglob("*.json")) if self.cache.is_dir() else False

    def cleanup(self) -> None:
        for p in self._procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def _limit_memory() -> None:
    """In each command's process: its memory limit, and SIGINT as a terminal gives it (a sweep started in the
    background of a shell ignores SIGINT, and its children would inherit that: Ctrl-C cases could not be tried)."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _text(data: bytes | str | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


@dataclass
class Case:
    id: str
    group: str
    what: str
    args: Sequence[str] = ()
    want: str = "refuse"
    name_list: Sequence[str] = ()
    setup: Callable[[Ctx], None] | None = None
    check: Callable[[Ctx, Result], str | None] | None = None
    protect: Callable[[Ctx], list[Path]] | None = None
    rc: int = 0
    timeout: int = 120
    drive: Callable[[Ctx], Result] | None = None
    extra: dict = field(default_factory=dict)

    def argv(self, ctx: Ctx) -> list[str]:
        return list(self.args)

    def names(self, ctx: Ctx) -> list[str]:
        return [ctx.fmt(n) for n in self.name_list]


CASES: list[Case] = []
OPTIONAL = ("mf-pydantic", "q-quantized-source")
"""Cases that need a built zoo variant (base_gptq_w4g64 in the zoo cache) and are left out where there is none."""


def refuse(id: str, group: str, what: str, args: Sequence[str], names: Sequence[str] = (), **kw) -> None:
    CASES.append(Case(id, group, what, args, "refuse", names, **kw))


def handled(id: str, group: str, what: str, args: Sequence[str], check: Callable[[Ctx, Result], str | None] | None,
            **kw) -> None:
    CASES.append(Case(id, group, what, args, "ok", check=check, **kw))


# ------------------------------------------------------------------------------------------------- shared models


def prepare(shared: Path, evalkit: Path) -> None:
    """The models, data files and the reference run every case shares (built once per sweep)."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(ZOO / "base", shared / "base")
    for name, key, change in (("variant", "model.layers.1.mlp.down_proj.weight", lambda t: t * 1.02),
                              ("broken", "model.embed_tokens.weight", lambda t: t * 0.0),
                              ("nanw", "model.layers.2.mlp.down_proj.weight", lambda t: t * float("nan"))):
        shutil.copytree(shared / "base", shared / name)
        tensors = load_file(shared / name / "model.safetensors")
        tensors[key] = change(tensors[key])
        save_file(tensors, shared / name / "model.safetensors", metadata={"format": "pt"})
    _jsonl(shared / "boolq3.jsonl", _rows(3))
    (shared / "ref").mkdir()
    ctx = Ctx(shared / "ref", shared, evalkit)
    proc = ctx.run(["eval", "base={shared}/base", "variant={shared}/variant", "--parent", "variant=base",
                    "--task", "zoo_yes_no", *FAST, "--cache", "{shared}/cache", "--out", "{shared}/run0"], timeout=300)
    if proc.rc != 0:
        raise RuntimeError(f"the reference run failed: {proc.stderr[-2000:]}")


def _jsonl(path: Path, rows: Sequence[object]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _copy_run(ctx: Ctx) -> None:
    shutil.copytree(ctx.shared / "run0", ctx.tmp / "run")


EVAL = ["eval", "base={shared}/base", "--task", "zoo_yes_no", *FAST, "--cache", "{cache}", "--out", "{out}"]


def _eval(*extra: str, models: Sequence[str] = ("base={shared}/base",), task: str = "zoo_yes_no") -> list[str]:
    return ["eval", *models, "--task", task, *FAST, "--cache", "{cache}", "--out", "{out}", *extra]


# --------------------------------------------------------------------------------------------------- command line

G = "command line"
refuse("cli-no-task", G, "`eval` without --task", ["eval", "{shared}/base"], ["--task"])
refuse("cli-empty-task", G, "`--task ''` (no task at all)", _eval(task=""), ["task"])
refuse("cli-unknown-task", G, "`--task nope`", _eval(task="nope"), ["nope", "known tasks"])
refuse("cli-limit-0", G, "`--limit 0`", ["eval", "{shared}/base", "--task", "zoo_math", "--limit", "0"], ["--limit"])
refuse("cli-limit-neg", G, "`--limit -3`", ["eval", "{shared}/base", "--task", "zoo_math", "--limit", "-3"],
       ["--limit"])
refuse("cli-limit-text", G, "`--limit many`", ["eval", "{shared}/base", "--task", "zoo_math", "--limit", "many"],
       ["--limit"])
refuse("cli-batch-0", G, "`--batch-size 0`", ["eval", "{shared}/base", "--task", "zoo_math", "--batch-size", "0"],
       ["--batch-size"])
refuse("cli-max-new-0", G, "`--max-new-tokens 0`", ["eval", "{shared}/base", "--task", "zoo_math",
                                                    "--max-new-tokens", "0"], ["--max-new-tokens"])
refuse("cli-decoder", G, "`--decoder warp`", ["eval", "{shared}/base", "--task", "zoo_math", "--decoder", "warp"],
       ["warp"])
refuse("cli-device-gpu", G, "`--device gpu` (no such device kind)", _eval("--device", "gpu"), ["gpu"])
refuse("cli-device-cuda", G, "`--device cuda` on a machine without a GPU", _eval("--device", "cuda"), ["cuda"])
refuse("cli-device-cuda7", G, "`--device cuda:7`", _eval("--device", "cuda:7"), ["cuda:7"])
refuse("cli-device-junk", G, "`--device 'cpu;rm -rf /'`", _eval("--device", "cpu;rm -rf /"), ["--device"])
refuse("cli-dtype", G, "`--dtype float33`", _eval("--dtype", "float33"), ["float33"])
refuse("cli-dtype-int", G, "`--dtype int8` (not a float dtype)", _eval("--dtype", "int8"), ["int8"])
refuse("cli-threads-0", G, "`--threads 0`", ["--threads", "0", "eval", "{shared}/base", "--task", "zoo_math"],
       ["--threads"])
refuse("cli-parent-bad", G, "`--parent x=y` naming no model", _eval("--parent", "x=y"), ["x=y"])
refuse("cli-parent-form", G, "`--parent base` without =", _eval("--parent", "base"), ["--parent"])
refuse("cli-name-twice", G, "one model name for two folders", _eval(models=("a={shared}/base", "a={shared}/variant")),
       ["'a'"])
refuse("cli-empty-name", G, "`=FOLDER` (empty model name)", _eval(models=("={shared}/base",)), ["expected"])
refuse("cli-newline-name", G, "a model name with a newline", _eval(models=("a\nb={shared}/base",)), ["model name"])
refuse("cli-zoo-nope", G, "`zoo:nope`", _eval(models=("zoo:nope",)), ["nope"])
refuse("cli-zoo-empty", G, "`zoo:` (no name)", _eval(models=("zoo:",)), ["zoo model"])
refuse("cli-debug-n0", G, "`debug -n 0`", ["debug", "{shared}/base", "--task", "zoo_math", "-n", "0"], ["-n"])
refuse("cli-debug-two", G, "`debug` with two tasks", ["debug", "{shared}/base", "--task", "zoo_math,zoo_span"],
       ["one task"])
refuse("cli-debug-cuda", G, "`debug --device cuda` without a GPU",
       ["debug", "{shared}/base", "--task", "zoo_math", "--device", "cuda"], ["cuda"])
refuse("cli-compare-same", G, "`compare` a model with itself",
       ["compare", "{shared}/base", "{shared}/base", "--task", "zoo_math", "--limit", "2"], ["same model"])
refuse("cli-compare-notask", G, "`compare` without --task or --run", ["compare", "{shared}/base", "{shared}/variant"],
       ["--task"])
refuse("cli-compare-run-model", G, "`compare --run` naming a model the run lacks",
       ["compare", "ghost", "base", "--run", "{tmp}/run"], ["ghost"], setup=_copy_run)
refuse("cli-quantize-args", G, "`quantize` without MODEL/--recipe/--out", ["quantize"], ["--recipe"])
refuse("cli-quantize-recipe", G, "`quantize --recipe gptq-w3`",
       ["quantize", "{shared}/base", "--recipe", "gptq-w3", "--out", "{tmp}/q"], ["gptq-w3"])
refuse("cli-quantize-cuda", G, "`quantize --device cuda` without a GPU",
       ["quantize", "{shared}/base", "--recipe", "rtn-w4g128", "--out", "{tmp}/q", "--device", "cuda"], ["cuda"])
refuse("cli-zoo-only", G, "`zoo build --only nope`", ["zoo", "build", "--only", "nope", "--cache-dir", "{tmp}/z"],
       ["nope"])
refuse("cli-zoo-device", G, "`zoo build --device gpu`", ["zoo", "build", "--device", "gpu", "--cache-dir", "{tmp}/z",
                                                          "--only", "base"], ["gpu"])
refuse("cli-gate-model", G, "`gate --model ghost`", ["gate", "--model", "ghost", "--out", ""], ["ghost"])
refuse("cli-seed", G, "`--seed abc`", ["eval", "{shared}/base", "--task", "zoo_math", "--seed", "abc"], ["--seed"])


def _same_run_twice(ctx: Ctx, proc: Result) -> str | None:
    doc = json.loads((ctx.out / "run.json").read_text())
    tasks = [e["task"] for e in doc["entries"]]
    return None if tasks == ["zoo_yes_no"] else f"entries {tasks}"


handled("cli-task-twice", G, "`--task zoo_yes_no,,zoo_yes_no` (repeated, empty parts)",
        ["eval", "base={shared}/base", "--task", "zoo_yes_no,,zoo_yes_no", *FAST, "--cache", "{cache}", "--out",
         "{out}"], _same_run_twice)


# -------------------------------------------------------------------------------------------------------- manifests

G = "manifest"
GATE = """[gate]
device = "cpu"
max_new_tokens = 8
cache = "{cache}"
"""
TASK = "[tasks.zoo_yes_no]\nlimit = 3\n"
BASE = '[models.base]\npath = "{shared}/base"\n'


def _fill(ctx: Ctx, text: str) -> str:
    """Placeholders in TOML text (which has braces of its own, so no str.format)."""
    return text.replace("{cache}", str(ctx.cache)).replace("{shared}", str(ctx.shared)).replace("{tmp}", str(ctx.tmp))


def manifest(id: str, what: str, text: str, names: Sequence[str] = (), *, raw: bytes | None = None,
             args: Sequence[str] = ()) -> None:
    def setup(ctx: Ctx) -> None:
        file = ctx.tmp / "m.toml"
        if raw is not None:
            file.write_bytes(raw)
        else:
            file.write_text(_fill(ctx, text), encoding="utf-8")

    refuse(id, G, what, ["gate", "--zoo", "{tmp}/m.toml", "--out", "{out}", "-q", *args], names, setup=setup)


refuse("m-missing", G, "`--zoo` naming no file", ["gate", "--zoo", "{tmp}/nope.toml"], ["nope.toml"])
refuse("m-folder", G, "`--zoo` naming a folder", ["gate", "--zoo", "{tmp}"], ["manifest"])
manifest("m-binary", "a binary file as the manifest", "", ["m.toml"], raw=os.urandom(256) + b"\x00\xff")
manifest("m-utf16", "a UTF-16 manifest", "", ["m.toml"], raw=(GATE + TASK + BASE).encode("utf-16"))
manifest("m-not-toml", "text that is not TOML", "[tasks\nlimit = = 3", ["not valid TOML"])
manifest("m-empty", "an empty manifest", "", ["[tasks"])
manifest("m-no-models", "no [models]", GATE + TASK, ["[models"])
manifest("m-top-key", "an unknown top-level table", GATE + TASK + BASE + "[model.x]\npath='x'\n", ["'model'"])
manifest("m-task-key", "an unknown key in a task", GATE + TASK + "limits = 3\n" + BASE, ["'limits'"])
manifest("m-model-key", "an unknown key in a model", GATE + TASK + BASE + "paths = 'x'\n", ["'paths'"])
manifest("m-task-name", "a misspelt task name", GATE + "[tasks.zoo_yesno]\nlimit = 3\n" + BASE, ["zoo_yesno"])
manifest("m-metric", "`metric = \"bogus\"`", GATE + TASK + "metric = \"bogus\"\n" + BASE, ["bogus"])
manifest("m-metric-family", "`metric = \"f1\"` on a yes/no task", GATE + TASK + "metric = \"f1\"\n" + BASE, ["f1"])
manifest("m-metric-unpaired", "`metric = \"avg_abs_diff\"` (no per-item pairing) on a math task",
         GATE + "[tasks.zoo_math]\nlimit = 3\nmetric = \"avg_abs_diff\"\n" + BASE, ["avg_abs_diff"])
manifest("m-diagnosis", "a misspelt diagnosis of a known-broken model",
         GATE + TASK + BASE + "[models.b]\npath = \"{shared}/broken\"\nparent = \"base\"\nexpect = \"fail\"\n"
         "diagnosis = \"special_token_only\"\n", ["special_token_only"])
manifest("m-expect", "`expect = \"maybe\"`", GATE + TASK + BASE + "expect = \"maybe\"\n", ["expect"])
manifest("m-expect-nodiag", "`expect = \"fail\"` without a diagnosis", GATE + TASK + BASE + "expect = \"fail\"\n",
         ["diagnosis"])
manifest("m-zoo-name", "`path = \"zoo:nope\"`", GATE + TASK + "[models.z]\npath = \"zoo:nope\"\n", ["nope"])
manifest("m-parent", "a parent that is not a model", GATE + TASK + BASE + "parent = \"ghost\"\n", ["ghost"])
manifest("m-cycle", "a parent chain that loops", GATE + TASK + "[models.a]\npath='{shared}/base'\nparent='b'\n"
         "[models.b]\npath='{shared}/base'\nparent='a'\n", ["loops"])
manifest("m-self-parent", "a model that is its own parent", GATE + TASK + BASE + "parent = \"base\"\n", ["loops"])
for value in ("nan", "inf", "-inf"):
    manifest(f"m-threshold-{value}", f"`max_mean_kl = {value}` (a threshold that switches its check off)",
             GATE + "[thresholds]\nmax_mean_kl = " + value + "\n" + TASK + BASE, ["max_mean_kl"])
manifest("m-threshold-nan-model", "`min_top1_agreement = nan` in a model's thresholds",
         GATE + TASK + BASE + "[models.base.thresholds]\nmin_top1_agreement = nan\n", ["min_top1_agreement"])
manifest("m-threshold-range", "`min_compliance = 2`", GATE + "[thresholds]\nmin_compliance = 2\n" + TASK + BASE,
         ["min_compliance"])
manifest("m-threshold-text", "`alpha = \"small\"`", GATE + "[thresholds]\nalpha = \"small\"\n" + TASK + BASE,
         ["alpha"])
manifest("m-threshold-off", "`alpha = \"none\"` (a check that cannot be off)",
         GATE + "[thresholds]\nalpha = \"none\"\n" + TASK + BASE, ["alpha"])
manifest("m-threshold-key", "an unknown threshold", GATE + "[thresholds]\nmax_kl = 1\n" + TASK + BASE, ["max_kl"])
manifest("m-limit-0", "`limit = 0`", GATE + "[tasks.zoo_yes_no]\nlimit = 0\n" + BASE, ["limit"])
manifest("m-limit-float", "`limit = 2.5`", GATE + "[tasks.zoo_yes_no]\nlimit = 2.5\n" + BASE, ["limit"])
manifest("m-device", "`[gate] device = \"gpu\"`", GATE.replace('"cpu"', '"gpu"') + TASK + BASE, ["gpu"])
manifest("m-device-cuda", "`[gate] device = \"cuda\"` on a machine without a GPU", GATE.replace('"cpu"', '"cuda"')
         + TASK + BASE, ["cuda"])
manifest("m-dtype", "`[gate] dtype = \"float33\"`", GATE + "dtype = \"float33\"\n" + TASK + BASE, ["float33"])
manifest("m-model-dtype", "a model's `dtype = \"int4\"`", GATE + TASK + BASE + "dtype = \"int4\"\n", ["int4"])
manifest("m-decoder", "`[gate] decoder = \"warp\"`", GATE + "decoder = \"warp\"\n" + TASK + BASE, ["warp"])
manifest("m-batch-0", "`[gate] batch_size = 0`", GATE.replace("max_new_tokens = 8", "max_new_tokens = 8\n"
         "batch_size = 0") + TASK + BASE, ["batch_size"])
manifest("m-source", "a task `source` that does not exist", GATE + "[tasks.boolq]\nlimit = 3\nsource = "
         "\"{tmp}/none.jsonl\"\n" + BASE, ["none.jsonl"])
manifest("m-source-bad", "a task `source` that is a binary file", GATE + "[tasks.boolq]\nlimit = 3\nsource = "
         "\"{tmp}/m.toml\"\n" + BASE, ["m.toml"])
manifest("m-model-tasks", "a model's `tasks` naming a task not in [tasks]", GATE + TASK + BASE
         + "tasks = [\"zoo_math\"]\n", ["zoo_math"])
manifest("m-newline-name", "a model name with a newline (a quoted TOML key)", GATE + TASK
         + "[models.\"a\\nb\"]\npath = \"{shared}/base\"\n", ["model"])
manifest("m-path-type", "`path = 3`", GATE + TASK + "[models.base]\npath = 3\n", ["path"])


def _ghost_alone(ctx: Ctx, proc: Result) -> str | None:
    verdicts = json.loads((ctx.out / "verdicts.json").read_text())["verdicts"]
    outcome = {v["model"]: (v["diagnosis"], v["summary"].get("n")) for v in verdicts}
    if outcome.get("ghost", ("",))[0] != "load_error" or outcome.get("base", ("", 0))[1] != 3:
        return f"outcomes {outcome}"  # the ghost fails alone; the healthy model is evaluated on its 3 items
    return None


def _ghost_setup(ctx: Ctx) -> None:
    (ctx.tmp / "m.toml").write_text(_fill(ctx, GATE + TASK + BASE + "[models.ghost]\npath = \"{tmp}/nowhere\"\n"
                                               "parent = \"base\"\n"))


handled("m-ghost-model", G, "a manifest model whose folder is missing, beside a healthy one",
        ["gate", "--zoo", "{tmp}/m.toml", "--out", "{out}", "-q"], _ghost_alone, setup=_ghost_setup, rc=1)


# ----------------------------------------------------------------------------------------------------- model folders

G = "model folder"


def model(id: str, what: str, edit: Callable[[Path], None] | None, names: Sequence[str] = ("{tmp}/m",)) -> None:
    """`eval` of a copy of the zoo's base, changed by `edit` (None: no folder at all)."""
    def setup(ctx: Ctx) -> None:
        if edit is not None:
            shutil.copytree(ctx.shared / "base", ctx.tmp / "m")
            edit(ctx.tmp / "m")

    refuse(id, G, what, _eval(models=("{tmp}/m",)), names, setup=setup)


def _config(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        change(config)
        (folder / "config.json").write_text(json.dumps(config))
    return edit


def _write(name: str, data: bytes | str) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        (folder / name).write_bytes(data if isinstance(data, bytes) else data.encode())
    return edit


def _remove(*names: str) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        for name in names:
            (folder / name).unlink()
    return edit


def _truncate(name: str, keep: float) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: int(len(data) * keep)])
    return edit


def _empty(folder: Path) -> None:
    shutil.rmtree(folder)
    folder.mkdir()


def _as_file(folder: Path) -> None:
    shutil.rmtree(folder)
    folder.write_text("not a model\n")


def _pickle_only(folder: Path) -> None:
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")


def _missing_shard(folder: Path) -> None:
    (folder / "model.safetensors").rename(folder / "model-00001-of-00002.safetensors")
    index = {"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors",
                                           "b": "model-00002-of-00002.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))


def _adapter(peft_type: str, base: str) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        (folder / "model.safetensors").rename(folder / "adapter_model.safetensors")
        (folder / "config.json").unlink()
        (folder / "adapter_config.json").write_text(json.dumps({"peft_type": peft_type, "base_model_name_or_path": base,
                                                                "r": 8, "target_modules": ["q_proj"]}))
    return edit


model("mf-missing", "a model folder that does not exist", None, ["{tmp}/m", "does not exist"])
model("mf-file", "a file where the model folder should be", _as_file, ["{tmp}/m", "not a folder"])
model("mf-empty", "an empty folder", _empty, ["config.json"])
model("mf-config-garbage", "config.json that is not JSON", _write("config.json", "{\"model_type\": "), ["config.json"])
model("mf-config-list", "config.json holding a list", _write("config.json", "[1, 2]"), ["config.json"])
model("mf-config-utf16", "config.json in UTF-16", _write("config.json", '{"model_type": "qwen3"}'.encode("utf-16")),
      ["config.json"])
model("mf-no-weights", "no weight files", _remove("model.safetensors"), ["no weights"])
model("mf-pickle", "weights only as a pickle (pytorch_model.bin)", _pickle_only, ["pickle"])
model("mf-truncated", "a truncated safetensors file", _truncate("model.safetensors", 0.5), ["model.safetensors"])
model("mf-garbage-weights", "a safetensors file of random bytes", _write("model.safetensors", os.urandom(4096)),
      ["model.safetensors"])
model("mf-shard", "an index naming a shard that is not there", _missing_shard, ["model-00002-of-00002"])
model("mf-quant-method", "an unknown quant_method", _config(lambda c: c.update(quantization_config={
    "quant_method": "mystery"})), ["mystery"])
model("mf-bnb8", "a bitsandbytes 8-bit checkpoint", _config(lambda c: c.update(quantization_config={
    "quant_method": "bitsandbytes", "load_in_8bit": True})), ["nf4"])
model("mf-peft-type", "an adapter that is not LoRA", _adapter("PREFIX_TUNING", "../base"), ["peft_type"])
model("mf-adapter-base", "a LoRA adapter whose base is a hub id", _adapter("LORA", "Qwen/Qwen3-0.6B"),
      ["Qwen/Qwen3-0.6B"])
model("mf-mismatch", "config.json that does not fit the weights (transformers' \"see the above report\")",
      _config(lambda c: c.update(intermediate_size=512)), ["config.json"])
model("mf-model-type", "an architecture transformers does not know", _config(lambda c: c.update(
    model_type="qwen99", architectures=["Qwen99ForCausalLM"])), ["{tmp}/m"])
model("mf-auto-map", "a config asking for custom code (auto_map)", _config(lambda c: c.update(
    model_type="evil", auto_map={"AutoModelForCausalLM": "evil.EvilModel"})), ["{tmp}/m", "evil"])
model("mf-no-tokenizer", "no tokenizer files", _remove("tokenizer.json", "tokenizer_config.json"), ["tokenizer"])
model("mf-tokenizer-garbage", "a tokenizer.json that is not JSON", _write("tokenizer.json", "{\"version\": "),
      ["tokenizer"])


def _pydantic(folder: Path) -> None:
    source = _zoo_cache() / "base_gptq_w4g64"
    shutil.rmtree(folder)
    shutil.copytree(source, folder)
    config = json.loads((folder / "config.json").read_text())
    group = next(iter(config["quantization_config"]["config_groups"].values()))
    group["weights"]["num_bits"] = "many"
    (folder / "config.json").write_text(json.dumps(config))


def _zoo_cache() -> Path:
    return ZOO_CACHE


if (_zoo_cache() / "base_gptq_w4g64").is_dir():
    model("mf-pydantic", "a compressed-tensors config with num_bits = \"many\" (a pydantic dump)", _pydantic,
          ["num_bits"])


def _strict_json(folder: Path) -> str | None:
    """The first file under `folder` that is not strict JSON (NaN/Infinity literals, truncation), or None."""
    def refuse_constant(name: str) -> None:
        raise ValueError(f"literal {name}")

    for file in sorted(folder.rglob("*.json*")):
        if file.name.startswith(".tmp"):
            continue
        texts = file.read_text().splitlines() if file.suffix == ".jsonl" else [file.read_text()]
        for text in texts:
            try:
                json.loads(text, parse_constant=refuse_constant)
            except ValueError as err:
                return f"{file.relative_to(folder)}: {err}"
    return None


def _nan_model(ctx: Ctx, proc: Result) -> str | None:
    bad = _strict_json(ctx.out)
    if bad:
        return f"not valid JSON: {bad}"
    report = ctx.run(["report", "{out}"])
    if report.rc != 0:
        return f"evalkit report failed ({report.rc}): {report.stderr.strip().splitlines()[-1:]}"
    return _strict_json(ctx.out)


handled("mf-nan-weights", G, "a model whose weights are NaN (its drift and verdicts, then `evalkit report`)",
        _eval("--parent", "nan=base", models=("base={shared}/base", "nan={shared}/nanw")), _nan_model, timeout=300)


# -------------------------------------------------------------------------------------------------------- data files

G = "data file"


def data(id: str, what: str, name: str, content: bytes | str | Callable[[Path], None] | None,
         names: Sequence[str] = (), *, task: str = "boolq") -> None:
    def setup(ctx: Ctx) -> None:
        path = ctx.tmp / name
        if callable(content):
            content(path)
        elif content is not None:
            path.write_bytes(content if isinstance(content, bytes) else content.encode())

    refuse(id, G, what, _eval("--data", f"{{tmp}}/{name}", task=task), names or [name], setup=setup)


def _rows(n: int = 3) -> list[dict]:
    """The `n` BoolQ rows with the shortest passages (their prompts fit the zoo's 512 positions), in file order."""
    rows = [json.loads(line) for line in BOOLQ.read_text().splitlines()[:40]]
    keep = sorted(range(len(rows)), key=lambda i: len(rows[i]["passage"]))[:n]
    return [rows[i] for i in sorted(keep)]


def _longest_row() -> dict:
    """The BoolQ row of the first 40 with the longest passage: its prompt is ~800 tokens on the zoo's tokenizer."""
    rows = [json.loads(line) for line in BOOLQ.read_text().splitlines()[:40]]
    return max(rows, key=lambda r: len(r["passage"]))


def _parquet(rows: list[dict]) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    return write


def _jsonl_text(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


data("d-missing", "a data file that does not exist", "none.jsonl", None)
data("d-folder", "a data folder without the task's file", "empty", lambda p: p.mkdir(), ["boolq"])
data("d-dir-named-file", "a folder named like a data file", "rows.jsonl", lambda p: p.mkdir(), ["rows.jsonl"])
data("d-empty", "an empty .jsonl", "e.jsonl", b"", ["e.jsonl", "no rows"])
data("d-blank", "a .jsonl of blank lines", "b.jsonl", "\n\n  \n", ["b.jsonl"])
data("d-binary", "a binary file named .jsonl", "bin.jsonl", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8,
     ["bin.jsonl", "UTF-8"])
data("d-utf16", "a UTF-16 .jsonl", "u16.jsonl", lambda p: p.write_bytes(_jsonl_text(_rows()).encode("utf-16")),
     ["u16.jsonl", "UTF-16"])
data("d-bad-line", "a .jsonl whose third line is not JSON", "bad.jsonl",
     lambda p: p.write_text(_jsonl_text(_rows(2)) + "{\"question\":\n"), ["bad.jsonl:3"])
data("d-deep", "a .jsonl line nested 100,000 deep", "deep.jsonl", "[" * 100_000 + "]" * 100_000 + "\n",
     ["deep.jsonl"])
data("d-json-scalars", "a .json array of numbers", "n.json", "[1, 2, 3]", ["row 0"])
data("d-json-object", "a .json object that is no dataset", "o.json", "{\"rows\": 3}", ["o.json"])
data("d-csv", "a .csv file", "rows.csv", "question,passage,answer\n", [".csv"])
data("d-parquet-garbage", "a .parquet file of random bytes", "g.parquet", os.urandom(2048), ["g.parquet"])
data("d-parquet-empty", "a zero-byte .parquet file", "z.parquet", b"", ["z.parquet"])
data("d-parquet-jsonl", "JSON lines named .parquet", "j.parquet", lambda p: p.write_text(_jsonl_text(_rows())),
     ["j.parquet"])
data("d-parquet-columns", "a .parquet with other columns", "c.parquet", _parquet([{"text": "x", "label": 1}] * 3),
     ["c.parquet"])
data("d-missing-field", "a BoolQ row without its passage", "f.jsonl",
     lambda p: p.write_text(_jsonl_text([{k: v for k, v in r.items() if k != "passage"} for r in _rows()])),
     ["passage"])
data("d-answer-type", "a BoolQ answer that is neither true nor false", "a.jsonl",
     lambda p: p.write_text(_jsonl_text([{**r, "answer": "maybe"} for r in _rows()])), ["answer"])
data("d-wrong-task", "GSM8K rows given to BoolQ", "gsm.jsonl",
     _jsonl_text([{"question": "1+1?", "answer": "#### 2"}] * 3), ["gsm.jsonl"])
data("d-dup-ids", "two SQuAD rows with one id", "s.jsonl", _jsonl_text(
    [{"id": "x", "question": "q?", "context": "c", "answers": {"text": ["c"], "answer_start": [0]}}] * 2),
    ["'x'"], task="squad_v2")
data("d-null-row", "a .jsonl line that is `null`", "null.jsonl", "null\n", ["row 0"])


def _prompt_too_long(ctx: Ctx, proc: Result, expect: int = 1, seconds: float = 90.0) -> str | None:
    results = json.loads((ctx.out / "results" / "base" / "boolq.json").read_text())
    count = results["diagnoses"].get("prompt_too_long")
    if count != expect:
        return f"prompt_too_long {count}, diagnoses {results['diagnoses']}"
    verdicts = json.loads((ctx.out / "verdicts.json").read_text())["verdicts"][0]
    if verdicts["summary"].get("diagnoses", {}).get("prompt_too_long") != expect:
        return f"the verdict does not show it: {verdicts['summary'].get('diagnoses')}"
    if proc.seconds > seconds:
        return f"took {proc.seconds:.0f}s"
    return None


def _long_rows(chars: int | None) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        rows = _rows(3)
        long = _longest_row() if chars is None else {
            **rows[1], "passage": ("The sky is blue and the grass is green. " * (chars // 40 + 1))[:chars]}
        rows[1] = {**long, "idx": 99999} if "idx" in long else long
        path.write_text(_jsonl_text(rows))
    return write


def _long(id: str, what: str, chars: int | None) -> None:
    handled(id, G, what, _eval("--data", "{tmp}/long.jsonl", task="boolq"), _prompt_too_long,
            setup=lambda ctx: _long_rows(chars)(ctx.tmp / "long.jsonl"), timeout=120)


_long("d-5mb-row", "a 5 MB BoolQ row (a prompt of ~1M tokens)", 5_000_000)
_long("d-over-context", "a real BoolQ row of ~800 tokens on the zoo's 512-position model", None)
handled("d-bom", G, "a .jsonl with a UTF-8 byte-order mark", _eval("--data", "{tmp}/bom.jsonl", task="boolq"),
        None, setup=lambda ctx: (ctx.tmp / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + _jsonl_text(_rows()).encode()))
handled("d-limit-over", G, "`--limit 1000` on a 3-row file", ["eval", "base={shared}/base", "--task", "boolq", "--data",
        "{shared}/boolq3.jsonl", "--limit", "1000", "--max-new-tokens", "8", "--device", "cpu", "-q", "--cache",
        "{cache}", "--out", "{out}"], lambda ctx, proc: None if json.loads(
            (ctx.out / "results" / "base" / "boolq.json").read_text())["task"]["n"] == 3 else "n != 3")


# ------------------------------------------------------------------------------------------------------------ cache

G = "cache"


def _damage(change: Callable[[Path, dict | None], None]) -> Callable[[Ctx], None]:
    """A copy of the reference run's cache with every entry changed by `change(file, entry)`."""
    def setup(ctx: Ctx) -> None:
        shutil.copytree(ctx.shared / "cache", ctx.cache)
        for file in sorted((ctx.cache / "generations").rglob("*.json")):
            try:
                entry = json.loads(file.read_text())
            except ValueError:
                entry = None
            change(file, entry)
    return setup


def _rewrite(edit: Callable[[dict], None]) -> Callable[[Path, dict | None], None]:
    def change(file: Path, entry: dict | None) -> None:
        assert entry is not None
        edit(entry)
        file.write_text(json.dumps(entry))
    return change


def _as_before(ctx: Ctx, proc: Result) -> str | None:
    """The rerun over a damaged cache scores exactly as the reference run, and says it regenerated."""
    mine = json.loads((ctx.out / "results" / "base" / "zoo_yes_no.json").read_text())
    ref = json.loads((ctx.shared / "run0" / "results" / "base" / "zoo_yes_no.json").read_text())
    if (mine["diagnoses"], mine["metrics"]) != (ref["diagnoses"], ref["metrics"]):
        return f"scores differ from the reference: {mine['diagnoses']} vs {ref['diagnoses']}"
    if "evalkit cache" not in proc.stderr:
        return "no warning about the cache"
    return None


def _cache_case(id: str, what: str, change: Callable[[Path, dict | None], None]) -> None:
    handled(id, G, what, _eval(), _as_before, setup=_damage(change))


_cache_case("c-truncated", "a cache entry cut in half", lambda f, e: f.write_text(f.read_text()[: len(f.read_text()) // 2]))
_cache_case("c-garbage", "a cache entry of random bytes", lambda f, e: f.write_bytes(os.urandom(512)))
_cache_case("c-count", "a cache entry holding one reply fewer (valid JSON)",
            _rewrite(lambda e: e.update(generations=e["generations"][:-1])))
_cache_case("c-order", "a cache entry holding its replies in another order (valid JSON)",
            _rewrite(lambda e: e.update(generations=e["generations"][::-1])))
_cache_case("c-types", "a cache entry whose output_tokens is a string",
            _rewrite(lambda e: [g.update(output_tokens="many") for g in e["generations"]]))
_cache_case("c-fields", "a cache entry whose replies lack a field",
            _rewrite(lambda e: [g.pop("finish_reason") for g in e["generations"]]))
_cache_case("c-list", "a cache entry that is a JSON list", lambda f, e: f.write_text("[]"))


handled("c-root-file", G, "`--cache` naming a file (every write fails)",
        ["eval", "base={shared}/base", "--task", "zoo_yes_no", *FAST, "--cache", "{tmp}/cachefile", "--out", "{out}"],
        _as_before, setup=lambda ctx: (ctx.tmp / "cachefile").write_text("x"))
handled("c-unwritable", G, "`--cache` on a file system that refuses writes (/proc)",
        ["eval", "base={shared}/base", "--task", "zoo_yes_no", *FAST, "--cache", "/proc/evalkit-cache", "--out",
         "{out}"], _as_before)


# ------------------------------------------------------------------------------------------------------ run folders

G = "run folder"


def _user_files(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "thesis.tex").write_text("years of work\n")
    (folder / ".git").mkdir(exist_ok=True)
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")


def _out(id: str, what: str, out: str, names: Sequence[str], setup: Callable[[Ctx], None] | None = None,
         protect: Callable[[Ctx], list[Path]] | None = None, cwd_dot: bool = False) -> None:
    refuse(id, G, what, ["eval", "base={shared}/base", "--task", "zoo_yes_no", *FAST, "--cache", "{cache}", "--out",
                         out], names, setup=setup, protect=protect)


_out("o-file", "`--out` naming a file", "{tmp}/f", ["{tmp}/f"], lambda ctx: (ctx.tmp / "f").write_text("mine\n"),
     lambda ctx: [ctx.tmp / "f"])
_out("o-under-file", "`--out` under a file", "{tmp}/f/run", ["{tmp}/f"], lambda ctx: (ctx.tmp / "f").write_text("x"),
     lambda ctx: [ctx.tmp / "f"])
_out("o-dot", "`--out .` in a folder of the user's (a repository)", ".", ["."], lambda ctx: _user_files(ctx.work),
     lambda ctx: [ctx.work])
_out("o-user-folder", "`--out` naming a folder of the user's files", "{tmp}/home", ["{tmp}/home"],
     lambda ctx: _user_files(ctx.tmp / "home"), lambda ctx: [ctx.tmp / "home"])
_out("o-foreign-runjson", "`--out` holding a run.json evalkit did not write", "{tmp}/r", ["run.json"],
     lambda ctx: (ctx.tmp / "r").mkdir() or (ctx.tmp / "r" / "run.json").write_text('{"runner": "mine"}'),
     lambda ctx: [ctx.tmp / "r"])


def _run_plus_notes(ctx: Ctx) -> None:
    _copy_run(ctx)
    (ctx.tmp / "run" / "notes.md").write_text("my notes on this run\n")


_out("o-run-plus-notes", "`--out` holding an earlier run and the user's notes.md", "{tmp}/run", ["notes.md"],
     _run_plus_notes, lambda ctx: [ctx.tmp / "run" / "notes.md"])
_out("o-long", "`--out` with a 300-byte folder name", "{tmp}/" + "r" * 300, ["255"])
_out("o-proc", "`--out` where nothing can be created (/proc)", "/proc/evalkit-run", ["/proc/evalkit-run"])


def _symlink(ctx: Ctx) -> None:
    _user_files(ctx.tmp / "real")
    (ctx.tmp / "link").symlink_to(ctx.tmp / "real")


_out("o-symlink", "`--out` a symbolic link to the user's folder", "{tmp}/link", ["symbolic link"], _symlink,
     lambda ctx: [ctx.tmp / "real"])


def _cwd_run(ctx: Ctx) -> None:
    shutil.rmtree(ctx.work)
    shutil.copytree(ctx.shared / "run0", ctx.work)


_out("o-cwd-run", "`--out .` where the working directory holds an earlier run", ".", ["working directory"], _cwd_run,
     lambda ctx: [ctx.work])


def _all_one_run(folder: Path) -> str | None:
    """Every file of the run folder carries the run id of its run.json (and nothing stale is left)."""
    doc = json.loads((folder / "run.json").read_text())
    rid = doc.get("run_id")
    listed = {e[k] for e in doc["entries"] for k in ("results", "samples", "drift") if e.get(k)}
    for file in sorted(folder.rglob("*.json*")):
        rel = file.relative_to(folder).as_posix()
        if rel in ("run.json",) or file.name.startswith("."):
            continue
        if rel not in listed and rel != "verdicts.json":
            return f"{rel} is not part of the run (stale)"
        lines = file.read_text().splitlines() if file.suffix == ".jsonl" else [file.read_text()]
        for line in lines:
            if rid is None or json.loads(line).get("run_id") != rid:
                return f"{rel} is not stamped with the run's id {rid!r}"
    return None


def _stale(ctx: Ctx) -> None:
    _copy_run(ctx)
    shutil.copy(ctx.tmp / "run" / "results" / "base" / "zoo_yes_no.json",
                ctx.tmp / "run" / "results" / "base" / "zoo_math.json")


handled("o-rerun", G, "a rerun into a folder holding an earlier run (and a stale result of it)",
        ["eval", "base={shared}/base", "--task", "zoo_yes_no", *FAST, "--cache", "{cache}", "--out", "{tmp}/run"],
        lambda ctx, proc: _all_one_run(ctx.tmp / "run"), setup=_stale)


def _wait_for(predicate: Callable[[], bool], proc: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.time() + seconds
    while not predicate():
        if proc.poll() is not None:
            raise RuntimeError(f"the run ended before the case could act: {proc.stderr.read()[-500:]}")
        if time.time() > deadline:
            raise RuntimeError("waited too long")
        time.sleep(0.2)


def _some_results(root: Path) -> bool:
    return any(root.glob("**/results/*/*.json")) or any(root.glob(".*partial/results/*/*.json"))


LONG = ["eval", "base={shared}/base", "variant={shared}/variant", "broken={shared}/broken", "--parent",
        "variant=base", "--task", "zoo_yes_no,zoo_math", "--limit", "8", "--max-new-tokens", "24", "--device", "cpu",
        "-q", "--cache", "{cache}", "--out", "{out}"]


def _signal(sig: int, expect_rc: int) -> Callable[[Ctx], Result]:
    def drive(ctx: Ctx) -> Result:
        started = time.perf_counter()
        p = ctx.popen(LONG)
        _wait_for(lambda: _some_results(ctx.tmp), p)
        p.send_signal(sig)
        out, err = p.communicate(timeout=120)
        return Result(p.returncode, out, err, time.perf_counter() - started)
    return drive


def _readable_incomplete(ctx: Ctx, proc: Result) -> str | None:
    doc = json.loads((ctx.out / "run.json").read_text())
    if doc.get("status") == "complete":
        return "run.json says complete"
    report = ctx.run(["report", "{out}"])
    if report.rc != 0:
        return f"evalkit report failed: {report.stderr.strip()[-300:]}"
    text = (ctx.out / "report.md").read_text()
    return None if "incomplete" in text else "the report does not say the run is incomplete"


CASES.append(Case("o-sigint", G, "Ctrl-C (SIGINT) in the middle of a run", want="ok", rc=130,
                  check=_readable_incomplete, drive=_signal(signal.SIGINT, 130), timeout=300))
CASES.append(Case("o-sigkill", G, "SIGKILL in the middle of a run", want="ok", rc=-9, check=_readable_incomplete,
                  drive=_signal(signal.SIGKILL, -9), timeout=300))


def _concurrent(ctx: Ctx) -> Result:
    first = ctx.popen([a.replace("{cache}", "{tmp}/cache1") for a in LONG])
    _wait_for(lambda: (ctx.out / "run.json").exists(), first)
    second = ctx.run(["eval", "base={shared}/base", "--task", "zoo_yes_no", *FAST, "--cache", "{cache}", "--out",
                      "{out}"])
    _, err = first.communicate(timeout=300)
    if first.returncode != 0 or json.loads((ctx.out / "run.json").read_text()).get("status", "complete") != "complete":
        raise RuntimeError(f"the first run did not end complete (exit {first.returncode}): {err[-300:]}")
    return second


CASES.append(Case("o-concurrent", G, "a second run into the same `--out` while the first is running",
                  name_list=["{out}"], drive=_concurrent, timeout=400))


def _names(*pairs: tuple[str, str]) -> list[str]:
    return [f"{name}={{shared}}/{folder}" for name, folder in pairs]


def _distinct(ctx: Ctx, proc: Result, names: Sequence[str] = ()) -> str | None:
    doc = json.loads((ctx.out / "run.json").read_text())
    files = [e["results"] for e in doc["entries"]]
    if len(set(files)) != len(files):
        return f"two models share results files: {files}"
    for e in doc["entries"]:
        result = json.loads((ctx.out / e["results"]).read_text())
        folder = "broken" if e["model"] == names[1] else "base"
        if not result["model"]["path"].endswith(folder):
            return f"{e['model']!r} shows the results of {result['model']['path']}"
    report = ctx.run(["report", "{out}"])
    return None if report.rc == 0 else f"evalkit report failed: {report.stderr.strip()[-300:]}"


for case_id, a, b, what in (("o-names-slash", "x/y", "x_y", "two models named `x/y` and `x_y`"),
                            ("o-names-cjk", "模型", "量化", "two models named `模型` and `量化`"),
                            ("o-names-dots", ".", "..", "two models named `.` and `..`"),
                            ("o-names-long", "m" * 300, "n" * 300, "two models with 300-byte names")):
    handled(case_id, G, what, ["eval", *_names((a, "base"), (b, "broken")), "--task", "zoo_yes_no", *FAST, "--cache",
                               "{cache}", "--out", "{out}"],
            lambda ctx, proc, pair=(a, b): _distinct(ctx, proc, pair))


# ---------------------------------------------------------------------------------------------------- report inputs

G = "report input"


def _report_case(id: str, what: str, edit: Callable[[Path], None] | None, names: Sequence[str],
                 command: Sequence[str] = ("report", "{tmp}/run")) -> None:
    def setup(ctx: Ctx) -> None:
        _copy_run(ctx)
        if edit is not None:
            edit(ctx.tmp / "run")

    refuse(id, G, what, list(command), names, setup=setup)


def _json_edit(rel: str, change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        doc = json.loads((run / rel).read_text())
        change(doc)
        (run / rel).write_text(json.dumps(doc))
    return edit


def _first_entry(run: Path, key: str = "results") -> str:
    return json.loads((run / "run.json").read_text())["entries"][0][key]


def _on_first(key: str, edit: Callable[[Path], None]) -> Callable[[Path], None]:
    return lambda run: edit(run / _first_entry(run, key))


refuse("r-missing", G, "`evalkit report` of a folder that does not exist", ["report", "{tmp}/none"], ["{tmp}/none"])
refuse("r-file", G, "`evalkit report` of a file", ["report", "{tmp}/f"], ["{tmp}/f"],
       setup=lambda ctx: (ctx.tmp / "f").write_text("x"))
refuse("r-empty", G, "`evalkit report` of an empty folder", ["report", "{tmp}/e"], ["{tmp}/e"],
       setup=lambda ctx: (ctx.tmp / "e").mkdir())
_report_case("r-runjson-cut", "run.json cut in half", _truncate("run.json", 0.5), ["run.json"])
_report_case("r-runjson-garbage", "run.json of random bytes", _write("run.json", os.urandom(300)), ["run.json"])
_report_case("r-runjson-list", "run.json holding a list", _write("run.json", "[]"), ["run.json"])
_report_case("r-runjson-schema", "run.json of another schema", _write("run.json", '{"schema": "other"}'), ["run.json"])
_report_case("r-entries-type", "run.json whose entries is a string", _json_edit("run.json", lambda d: d.update(
    entries="all")), ["entries"])
_report_case("r-entry-type", "run.json whose first entry is a number", _json_edit("run.json", lambda d: d.update(
    entries=[1])), ["entries[0]"])
_report_case("r-entry-escape", "an entry pointing outside the run folder (../../etc/passwd)", _json_edit(
    "run.json", lambda d: d["entries"][0].update(results="../../../../etc/passwd")), ["entries[0]"])
_report_case("r-models-type", "run.json whose models is a list", _json_edit("run.json", lambda d: d.update(models=[])),
             ["models"])
_report_case("r-model-record", "a model record that is a string", _json_edit("run.json", lambda d: d["models"].update(
    base="?")), ["base"])
_report_case("r-results-cut", "a results file cut in half", _on_first("results", lambda f: f.write_text(
    f.read_text()[:200])), ["zoo_yes_no.json"])
_report_case("r-results-missing", "a results file deleted", _on_first("results", lambda f: f.unlink()),
             ["zoo_yes_no.json"])
_report_case("r-results-schema", "a results file of another schema", _on_first("results", lambda f: f.write_text(
    '{"schema": "lm-eval"}')), ["zoo_yes_no.json"])
_report_case("r-results-other-run", "a results file of another run copied in", _on_first("results", lambda f: f.write_text(
    json.dumps({**json.loads(f.read_text()), "run_id": "20200101T000000Z-00000000"}))), ["zoo_yes_no.json"])
_report_case("r-samples-garbage", "a samples.jsonl line that is not JSON", lambda run: (
    run / _first_entry(run, "samples")).write_text("{not json\n"), ["samples.jsonl"])
_report_case("r-drift-garbage", "a drift file of random bytes", lambda run: (run / next(
    e["drift"] for e in json.loads((run / "run.json").read_text())["entries"] if e.get("drift"))).write_bytes(
    os.urandom(100)), ["drift"])
_report_case("r-verdicts-garbage", "verdicts.json cut in half", _truncate("verdicts.json", 0.5), ["verdicts.json"])
_report_case("r-verdicts-type", "verdicts.json whose first verdict is a number", _json_edit(
    "verdicts.json", lambda d: d.update(verdicts=[1])), ["verdicts"])
_report_case("r-compare-samples", "`compare --run` over a damaged samples.jsonl", lambda run: [
    (run / e["samples"]).write_text("[1, 2\n") for e in json.loads((run / "run.json").read_text())["entries"]],
    ["samples.jsonl"], command=("compare", "variant", "base", "--run", "{tmp}/run"))


def _nan_files(run: Path) -> None:
    """NaN and Infinity literals where Python's json module writes them: drift numbers and verdict values."""
    doc = json.loads((run / "run.json").read_text())
    for e in doc["entries"]:
        if e.get("drift"):
            text = (run / e["drift"]).read_text()
            drift = json.loads(text)
            drift.update(kl_mean=float("nan"), kl_p99=float("inf"), top1_agreement=float("nan"))
            (run / e["drift"]).write_text(json.dumps(drift))
    verdicts = json.loads((run / "verdicts.json").read_text())
    for v in verdicts["verdicts"]:
        for c in v["checks"]:
            c["values"] = {k: float("nan") for k in c.get("values", {})}
    (run / "verdicts.json").write_text(json.dumps(verdicts))


def _report_ok(ctx: Ctx, proc: Result) -> str | None:
    return None if (ctx.tmp / "run" / "report.html").exists() else "no report.html"


handled("r-nan", G, "drift and verdicts holding NaN/Infinity literals (`evalkit report`)", ["report", "{tmp}/run"],
        _report_ok, setup=lambda ctx: (_copy_run(ctx), _nan_files(ctx.tmp / "run")))
refuse("r-out-file", G, "`evalkit report --out` naming a file", ["report", "{tmp}/run", "--out", "{tmp}/f"],
       ["{tmp}/f"], setup=lambda ctx: (_copy_run(ctx), (ctx.tmp / "f").write_text("mine")),
       protect=lambda ctx: [ctx.tmp / "f"])
refuse("r-out-user", G, "`evalkit report --out` a folder holding the user's own report.md",
       ["report", "{tmp}/run", "--out", "{tmp}/docs"], ["report.md"],
       setup=lambda ctx: (_copy_run(ctx), (ctx.tmp / "docs").mkdir(), (ctx.tmp / "docs" / "report.md").write_text(
           "# Our quarterly report\n")), protect=lambda ctx: [ctx.tmp / "docs"])


# -------------------------------------------------------------------------------------------------- quantize output

G = "quantize output"
Q = ["quantize", "{tmp}/src", "--recipe", "rtn-w4g128", "-q"]


def _src(ctx: Ctx) -> None:
    shutil.copytree(ctx.shared / "base", ctx.tmp / "src")


def _quantize(id: str, what: str, out: str, names: Sequence[str], setup: Callable[[Ctx], None] | None,
              protect: Callable[[Ctx], list[Path]], extra: Sequence[str] = ()) -> None:
    def both(ctx: Ctx) -> None:
        _src(ctx)
        if setup:
            setup(ctx)

    refuse(id, G, what, [*Q, "--out", out, *extra], names, setup=both, protect=protect)


_quantize("q-unrelated", "`--out` an existing folder of the user's", "{tmp}/home", ["{tmp}/home"],
          lambda ctx: _user_files(ctx.tmp / "home"), lambda ctx: [ctx.tmp / "home", ctx.tmp / "src"])
_quantize("q-source", "`--out` the model being quantized", "{tmp}/src", ["{tmp}/src"], None,
          lambda ctx: [ctx.tmp / "src"])
_quantize("q-ancestor", "`--out` a folder holding the model being quantized", "{tmp}", ["{tmp}"], None,
          lambda ctx: [ctx.tmp / "src"])
_quantize("q-inside", "`--out` inside the model being quantized", "{tmp}/src/q", ["{tmp}/src/q"], None,
          lambda ctx: [ctx.tmp / "src"])
_quantize("q-dot", "`--out .` from a repository root", ".", ["."], lambda ctx: _user_files(ctx.work),
          lambda ctx: [ctx.work, ctx.tmp / "src"])
_quantize("q-file", "`--out` naming a file", "{tmp}/f", ["{tmp}/f"], lambda ctx: (ctx.tmp / "f").write_text("mine"),
          lambda ctx: [ctx.tmp / "f"])
_quantize("q-symlink", "`--out` a symbolic link to the user's folder", "{tmp}/link", ["symbolic link"], _symlink,
          lambda ctx: [ctx.tmp / "real"])


def _made_by_evalkit(ctx: Ctx) -> None:
    folder = ctx.tmp / "q"
    folder.mkdir()
    (folder / "provenance.json").write_text(json.dumps({"evalkit_recipe": "rtn-w4g128", "versions": {}}))
    (folder / "model.safetensors").write_bytes(b"an earlier quantization")


_quantize("q-evalkit-no-force", "`--out` holding a model evalkit made, without --force", "{tmp}/q", ["--force"],
          _made_by_evalkit, lambda ctx: [ctx.tmp / "q"])
refuse("q-missing-source", G, "quantizing a folder that does not exist",
       ["quantize", "{tmp}/none", "--recipe", "rtn-w4g128", "--out", "{tmp}/q"], ["{tmp}/none"])


def _replaced(ctx: Ctx, proc: Result) -> str | None:
    record = json.loads((ctx.tmp / "q" / "provenance.json").read_text())
    if record.get("evalkit_recipe") != "rtn-w4g128" or "parent" not in record:
        return f"provenance {record}"
    leftovers = [p.name for p in ctx.tmp.iterdir() if p.name.startswith(".q")]
    return f"left behind {leftovers}" if leftovers else None


handled("q-evalkit-force", G, "`--out` holding a model evalkit made, with --force (replaced)",
        [*Q, "--out", "{tmp}/q", "--force"], _replaced, setup=lambda ctx: (_src(ctx), _made_by_evalkit(ctx)),
        protect=lambda ctx: [ctx.tmp / "src"], timeout=300)
if (_zoo_cache() / "base_gptq_w4g64").is_dir():
    refuse("q-quantized-source", G, "quantizing a model that is already quantized",
           ["quantize", str(_zoo_cache() / "base_gptq_w4g64"), "--recipe", "rtn-w4g128", "--out", "{tmp}/q"],
           ["unquantized"])


# ------------------------------------------------------------------------- what issues 12 and 15 brought (merged)
# Large files read by row index (issue 12), quantize --chat, the lm-eval export and run.log (issue 15).


def _large_utf16(ctx: Ctx) -> None:
    row = json.dumps(_rows(1)[0]) + "\n"
    (ctx.tmp / "big.jsonl").write_bytes((row * 100_001).encode("utf-16"))


refuse("d-large-utf16", "data file", "a UTF-16 .jsonl of 100,001 rows (the row-index path) with --limit",
       _eval("--data", "{tmp}/big.jsonl", task="boolq"), ["{tmp}/big.jsonl", "UTF-16"], setup=_large_utf16)
refuse("d-large-parquet", "data file", "a 1 MB .parquet of garbage (the row-index path) with --limit",
       _eval("--data", "{tmp}/big.parquet", task="boolq"), ["{tmp}/big.parquet", "Parquet"],
       setup=lambda ctx: (ctx.tmp / "big.parquet").write_bytes(os.urandom(1 << 20)))

CHAT = ["quantize", "{shared}/base", "--recipe", "gptq-w4g64", "--out", "{tmp}/q", "--chat", "{tmp}/chats.jsonl",
        "-q"]
for _id, _what, _content, _names in (
        ("cli-chat-utf16", "`quantize --chat` a UTF-16 file",
         '{"messages": [{"role": "user", "content": "hi"}]}\n'.encode("utf-16"), ["not UTF-8"]),
        ("cli-chat-binary", "`quantize --chat` a binary file", b"\x89PNG\r\n\x1a\n" + bytes(range(256)),
         ["not UTF-8"]),
        ("cli-chat-deep", "`quantize --chat` a line nested 100,000 deep",
         ("[" * 100_000 + "]" * 100_000 + "\n").encode(), ["nested too deeply"]),
        ("cli-chat-role", "`quantize --chat` a 100 kB message with an unknown role",
         b'{"messages": [{"role": "robot", "content": "' + b"x" * 100_000 + b'"}]}\n', ["role"])):
    refuse(_id, "command line", _what, CHAT, ["{tmp}/chats.jsonl", *_names],
           setup=lambda ctx, c=_content: (ctx.tmp / "chats.jsonl").write_bytes(c),
           check=None, protect=lambda ctx: [ctx.shared / "base"])


def _dot_names(ctx: Ctx) -> Result:
    first = ctx.run(["eval", ".={shared}/base", "..={shared}/broken", "--task", "zoo_yes_no", *FAST, "--cache",
                     "{cache}", "--out", "{tmp}/run"], timeout=300)
    return first if first.rc != 0 else ctx.run(["report", "{tmp}/run"])


def _own_exports(ctx: Ctx, proc: Result) -> str | None:
    files = sorted((ctx.tmp / "run" / "lm_eval").glob("*/results_*.json"))
    names = sorted(json.loads(f.read_text())["model_name"] for f in files)
    if names != [".", ".."]:
        return f"lm_eval/ holds {[str(f.relative_to(ctx.tmp)) for f in files]}"
    stray = [p.name for p in (ctx.tmp / "run").glob("results_*.json")]
    return f"an export escaped lm_eval/: {stray}" if stray else None


CASES.append(Case("r-lm-eval-dots", "report input", "`evalkit report` of models named `.` and `..` (their "
                  "lm-eval export folders)", want="ok", check=_own_exports, drive=_dot_names, timeout=300))


def _rerun_reported(ctx: Ctx) -> Result:
    _copy_run(ctx)
    reported = ctx.run(["report", "{tmp}/run"])
    if reported.rc != 0:
        return reported
    (ctx.tmp / "run" / "run.log").write_text("evalkit: an earlier run's log\n")
    return ctx.run(["eval", "base={shared}/base", "--task", "zoo_yes_no", *FAST, "--cache", "{cache}", "--out",
                    "{tmp}/run"], timeout=300)


def _replaced_whole(ctx: Ctx, proc: Result) -> str | None:
    run = json.loads((ctx.tmp / "run" / "run.json").read_text())
    if run.get("status") != "complete":
        return f"status {run.get('status')}"
    return "the earlier run's reports survived" if (ctx.tmp / "run" / "lm_eval").exists() else None


CASES.append(Case("o-rerun-reported", "run folder", "a rerun into a reported run (its reports, lm_eval/ and "
                  "run.log: all evalkit's own)", want="ok", check=_replaced_whole, drive=_rerun_reported,
                  timeout=300))


def _combine_damaged(ctx: Ctx) -> None:
    for name in ("a", "b"):
        shutil.copytree(ctx.shared / "run0", ctx.tmp / "runs" / name)
    manifest = ctx.tmp / "runs" / "b" / "run.json"
    manifest.write_text(manifest.read_text()[:100])


refuse("r-combine-damaged", "report input", "`evalkit report runs --combine` with one run's run.json truncated",
       ["report", "{tmp}/runs", "--combine"], ["{tmp}/runs/b/run.json"], setup=_combine_damaged)
