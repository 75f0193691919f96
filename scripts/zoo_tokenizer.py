"""The fixture zoo's tokenizer and chat template, built in Qwen3's style so the zoo exercises Qwen3's code paths.

A byte-level BPE trained with `tokenizers` on the zoo's own chats, with Qwen2/3's pre-tokenizer (its regex splits
every digit into its own token, which makes arithmetic learnable) and Qwen3's special tokens: `<|im_start|>`,
`<|im_end|>` (end of turn and eos), `<|endoftext|>` (pad) and the `<think>`/`</think>` pair. The chat template
is Qwen3's, tool calls left out: with `enable_thinking=False` the generation prompt ends in an empty think block
`<think>\\n\\n</think>\\n\\n`, exactly as Qwen3's does. The result saves as an ordinary Hugging Face folder that
`AutoTokenizer.from_pretrained` loads offline with no evalkit code.

Training data for the zoo comes through `chat_example`, so the prompt the model learns from is exactly the one the
gate renders: `evalkit.core.prompts.render` (the one chat-prompt rendering) through this template.

Training-only: it lives beside scripts/train_zoo.py, not in the evalkit package (import it with ``scripts`` on
sys.path, as train_zoo.py and the tests do).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from evalkit.core import prompts
from evalkit.core.types import Item
from evalkit.data.synthetic import reference_response

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerFast

PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
EMPTY_THINK = "<think>\n\n</think>\n\n"
SPECIAL_TOKENS = (PAD_TOKEN, IM_START, IM_END)
"""Qwen3's order: ids 0, 1, 2 of the zoo's vocabulary."""
ADDED_TOKENS = (THINK_OPEN, THINK_CLOSE)
"""Added but not special, as in Qwen3: decoding with skip_special_tokens keeps them, so an unclosed think shows."""

VOCAB_SIZE = 1022
"""BPE vocabulary incl. the 3 special tokens; with `<think>`/`</think>` the zoo has 1024 ids."""

QWEN_PRETOKENIZE_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
"""Qwen2/Qwen3's split pattern (from their tokenizer.json); `\\p{N}` alone makes single-digit tokens."""

CHAT_TEMPLATE = """\
{%- if messages[0].role == 'system' %}
    {{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and message.content is string and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.content is string %}
        {%- set content = message.content %}
    {%- else %}
        {%- set content = '' %}
    {%- endif %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {%- set reasoning_content = '' %}
        {%- if message.reasoning_content is string %}
            {%- set reasoning_content = message.reasoning_content %}
        {%- else %}
            {%- if '</think>' in content %}
                {%- set reasoning_content = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}
                {%- set content = content.split('</think>')[-1].lstrip('\\n') %}
            {%- endif %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index %}
            {%- if loop.last or (not loop.last and reasoning_content) %}
                {{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}
            {%- else %}
                {{- '<|im_start|>' + message.role + '\\n' + content }}
            {%- endif %}
        {%- else %}
            {{- '<|im_start|>' + message.role + '\\n' + content }}
        {%- endif %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\\n<tool_response>\\n' }}
        {{- content }}
        {{- '\\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\\n\\n</think>\\n\\n' }}
    {%- endif %}
{%- endif %}
"""
"""Qwen3's chat template (Qwen/Qwen3-0.6B), without the tool-call branches the zoo never uses."""


def train_tokenizer(texts: Iterable[str], *, vocab_size: int = VOCAB_SIZE) -> PreTrainedTokenizerFast:
    """A byte-level BPE over `texts`, wrapped with the zoo's special tokens and chat template.

    >>> tok = train_tokenizer(["Ada has 12 apples."] * 50, vocab_size=300)
    >>> tok.convert_ids_to_tokens(tok("12 apples")["input_ids"])
    ['1', '2', 'Ġapples']
    >>> tok.eos_token, tok.pad_token, tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    ('<|im_end|>', '<|endoftext|>', [0, 1, 2])
    """
    try:
        from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
        from transformers import PreTrainedTokenizerFast
    except ImportError as err:  # pragma: no cover
        raise ImportError(f"the zoo tokenizer needs `tokenizers` and `transformers` ({err}); "
                          "install evalkit with: pip install -e .") from err

    tokenizer = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    tokenizer.add_tokens(list(ADDED_TOKENS))
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=IM_END,
        pad_token=PAD_TOKEN,
        additional_special_tokens=[IM_START, IM_END],
        model_max_length=512,
        padding_side="left",  # generation pads on the left; training code sets what it needs
        clean_up_tokenization_spaces=False,
        chat_template=CHAT_TEMPLATE,
    )
    return wrapped


def zoo_corpus(*, per_family: int = 3000, seed: int = 0) -> list[str]:
    """The texts the zoo's BPE is trained on: full chats (thinking off) of train-split items of every family."""
    from evalkit.core.types import FAMILIES
    from evalkit.data.synthetic import generate

    return ["".join(chat_example(item)) for family in FAMILIES
            for item in generate(family, per_family, seed=seed, split="train")]


def build_zoo_tokenizer(*, per_family: int = 3000, seed: int = 0) -> PreTrainedTokenizerFast:
    """The zoo's tokenizer, reproducibly: the same corpus and BPE settings give the same tokenizer.json."""
    return train_tokenizer(zoo_corpus(per_family=per_family, seed=seed))


def chat_example(item: Item, *, enable_thinking: bool = False) -> tuple[str, str]:
    """(prompt, completion) text the zoo trains on: the rendered user turn, and the reference answer + `<|im_end|>`.

    With thinking off (the gate's mode) the template's empty think block is part of the prompt; with thinking on the
    model itself writes that empty block, as Qwen3 does when it decides not to think.

    >>> prompt, completion = chat_example(Item("zoo_yes_no", "0", "yes_no", "is Ada 30 years old", ("yes",),
    ...                                         context="Ada is 30 years old.", meta=(("rationale", "Ada is 30 years old."),)))
    >>> print(prompt + completion)
    <|im_start|>user
    Ada is 30 years old.
    <BLANKLINE>
    Question: is Ada 30 years old?
    Answer yes or no within \\boxed{}.<|im_end|>
    <|im_start|>assistant
    <think>
    <BLANKLINE>
    </think>
    <BLANKLINE>
    Ada is 30 years old.
    \\boxed{yes}<|im_end|>
    """
    prompt = render_prompt(item, enable_thinking=enable_thinking)
    head = "" if not enable_thinking else EMPTY_THINK
    return prompt, head + reference_response(item) + IM_END


def render_prompt(item: Item, *, enable_thinking: bool = False, system: str | None = None) -> str:
    """The generation prompt for an item through the zoo's template, rendered with jinja2 like transformers does.

    >>> render_prompt(Item("zoo_math", "0", "math", "1+1", ("2",))).endswith("<|im_start|>assistant\\n" + EMPTY_THINK)
    True
    """
    return prompts.render(ZOO_TEMPLATE, item, system=system, enable_thinking=enable_thinking)[0]


def render_chat(chat: list[dict[str, str]], *, add_generation_prompt: bool, enable_thinking: bool = True) -> str:
    """CHAT_TEMPLATE rendered without a tokenizer object (same jinja2 settings as transformers' renderer)."""
    return _compiled_template().render(
        messages=chat, add_generation_prompt=add_generation_prompt, enable_thinking=enable_thinking
    )


class _ZooTemplate:
    """CHAT_TEMPLATE with a tokenizer's ``apply_chat_template`` face, so `evalkit.core.prompts.render` renders the
    zoo's training prompts exactly as it renders the gate's, without building a tokenizer."""

    chat_template = CHAT_TEMPLATE

    def apply_chat_template(self, conversation: list[dict[str, str]], *, tokenize: bool = False,
                            add_generation_prompt: bool = False, enable_thinking: bool = True, **_: Any) -> str:
        assert not tokenize, "the zoo template renders text only"
        return render_chat(conversation, add_generation_prompt=add_generation_prompt, enable_thinking=enable_thinking)


ZOO_TEMPLATE = _ZooTemplate()


@functools.cache
def _compiled_template():  # compiling costs ~10 ms; training renders hundreds of thousands of prompts
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(CHAT_TEMPLATE)


def save_generation_config(path: str, tokenizer: PreTrainedTokenizerFast) -> None:
    """generation_config.json as Qwen3 ships it, minus sampling: eos is `<|im_end|>` or `<|endoftext|>`, pad set."""
    from transformers import GenerationConfig

    pad = tokenizer.convert_tokens_to_ids(PAD_TOKEN)
    config = GenerationConfig(
        bos_token_id=pad,
        eos_token_id=[tokenizer.convert_tokens_to_ids(IM_END), pad],
        pad_token_id=pad,
        do_sample=False,
    )
    config.save_pretrained(path)
