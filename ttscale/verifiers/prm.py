"""Process reward models: each input format as its model card gives it, run with transformers.

A format turns (question, steps) into token ids and the positions where step scores are read, and
says how a score is read there:

- qwen_math_prm  (Qwen2.5-Math-PRM-7B/72B): chat template with system, user question, and the
  assistant's steps each followed by `<extra_0>`; a 2-class head; score = P(class 1) at each
  `<extra_0>`.
- math_shepherd  (math-shepherd-mistral-7b-prm): "question step1 ки\\nstep2 ки..." ; the LM's
  logits for `+` and `-` at each `ки`; score = P(+) / (P(+) + P(-)).
- rlhflow        (RLHFlow Llama3.1-8B-PRM-Deepseek/Mistral-Data): each step a user turn (the first
  prefixed by the question), each answered by an assistant "+"; score = P(+) against P(-) for the
  assistant's reply, read where the reply is predicted.
- value_head     (Skywork-o1-Open-PRM-Qwen-2.5): BOS + question + "\\n", then each step's tokens
  and a step-end token; score = sigmoid(value head) at each step end.
- token_classification (TRL's PRMTrainer): prompt then each step + separator; a 2-label token
  classifier; score = P(label 1) at the last token of each step's separator — so a PRM a user
  trained with TRL plugs in.

The format is chosen by config (`verifier.format`), never from the model's name. Trajectories of
many problems are scored together: concurrent `score` calls are gathered into padded batches.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ttscale.types import Problem, Trajectory, Usage
from ttscale.verifiers.base import Scores, Traits, aggregate, steps_of

FORMATS = ("qwen_math_prm", "math_shepherd", "rlhflow", "value_head", "token_classification")
QWEN_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."


@dataclass
class Encoded:
    """Token ids of one scored input and the positions of its step scores (one per step)."""

    ids: list[int]
    positions: list[int]


def _single_token(tokenizer, text: str) -> int:
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"the PRM format needs {text!r} to be one token in this tokenizer; it is {ids}")
    return ids[0]


def _chat_ids(tokenizer, messages, **kw) -> list[int]:
    ids = tokenizer.apply_chat_template(messages, tokenize=True, **kw)
    if hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return list(ids)


def encode(fmt: str, tokenizer, question: str, steps: Sequence[str], options: dict) -> Encoded:
    """The model card's input for one (question, steps) and where each step's score is read."""
    if fmt == "qwen_math_prm":
        sep = options.get("step_token", "<extra_0>")
        messages = [{"role": "system", "content": options.get("system", QWEN_SYSTEM)},
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": sep.join(steps) + sep}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
        ids = tokenizer.encode(text, add_special_tokens=False)
        tag = _single_token(tokenizer, sep)
        return Encoded(ids, [i for i, t in enumerate(ids) if t == tag])
    if fmt == "math_shepherd":
        tag_text = options.get("step_token", "ки")
        text = question + " " + "".join(f"{s} {tag_text}\n" for s in steps)
        ids = tokenizer.encode(text)
        tag = _single_token(tokenizer, tag_text)
        return Encoded(ids, [i for i, t in enumerate(ids) if t == tag])
    if fmt == "rlhflow":
        conversation, positions = [], []
        for k, step in enumerate(steps):
            conversation.append({"role": "user", "content": f"{question} {step}" if k == 0 else step})
            # the reply is predicted at the last position of the prompt that asks for it
            positions.append(len(_chat_ids(tokenizer, conversation, add_generation_prompt=True)) - 1)
            conversation.append({"role": "assistant", "content": options.get("good_token", "+")})
        return Encoded(_chat_ids(tokenizer, conversation), positions)
    if fmt == "value_head":
        end = _single_token(tokenizer, options.get("step_token", "\n"))
        ids = tokenizer.encode((tokenizer.bos_token or "") + question + "\n", add_special_tokens=False)
        positions = []
        for step in steps:
            ids += tokenizer.encode(step.strip(), add_special_tokens=False) + [end]
            positions.append(len(ids) - 1)
        return Encoded(ids, positions)
    if fmt == "token_classification":
        sep = tokenizer.encode(options.get("step_token", "\n"), add_special_tokens=False)
        ids = tokenizer.encode(question, add_special_tokens=False)
        if tokenizer.bos_token_id is not None:
            ids = [tokenizer.bos_token_id] + ids
        positions = []
        for step in steps:
            ids += tokenizer.encode(step, add_special_tokens=False) + sep
            positions.append(len(ids) - 1)
        return Encoded(ids, positions)
    raise ValueError(f"format={fmt!r}; choose one of: {', '.join(FORMATS)}")


def _load_head(path: Path, prefix: str, module) -> None:
    from safetensors.torch import load_file

    state = {}
    for file in sorted(path.glob("*.safetensors")):
        state.update({k[len(prefix):]: v for k, v in load_file(str(file)).items() if k.startswith(prefix)})
    if not state:
        raise ValueError(f"no '{prefix}*' weights in {path}: is verifier.format right for this checkpoint?")
    module.load_state_dict(state)


@dataclass
class TransformersPRM:
    traits = Traits(separate_model=True)
    """A PRM run with transformers, batched across concurrent calls. `options` may set step_token,
    system (qwen_math_prm), good_token / bad_token (math_shepherd, rlhflow)."""

    path: str
    format: str
    aggregation: str = "min"
    step_delimiter: str = "\n\n"
    batch_size: int = 16
    dtype: str = "float32"
    device: str = "cpu"
    options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"format={self.format!r}; choose one of: {', '.join(FORMATS)}")
        aggregate([0.5], self.aggregation)  # "model" is refused: no format gives its own final score
        self._model = None
        self._loaded = False  # set once model, head and tokenizer are all in place
        self._load_lock = threading.Lock()
        self._loading: tuple[object, asyncio.Future] | None = None
        self._pending: list[tuple[Encoded, asyncio.Future]] = []
        self._flush_scheduled = False
        self._loop_lock: tuple[object, asyncio.Lock] | None = None

    # -- model -----------------------------------------------------------------------------------
    def load(self):
        with self._load_lock:
            if not self._loaded:
                self._load()
                self._loaded = True
        return self

    async def _load_async(self) -> None:
        # Concurrent first calls share one load and resume together, so they still form one batch.
        loop = asyncio.get_running_loop()
        if self._loading is None or self._loading[0] is not loop:
            self._loading = (loop, asyncio.ensure_future(asyncio.to_thread(self.load)))
        await asyncio.shield(self._loading[1])

    def _load(self) -> None:
        import torch
        from transformers import (AutoModel, AutoModelForCausalLM, AutoModelForTokenClassification,
                                  AutoTokenizer)

        self._torch = torch
        dtype = getattr(torch, self.dtype)
        path = Path(self.path)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self._head = None
        if self.format in ("math_shepherd", "rlhflow"):
            self._model = AutoModelForCausalLM.from_pretrained(self.path, dtype=dtype)
            good = self.options.get("good_token", "+")
            bad = self.options.get("bad_token", "-")
            self._candidates = [self.tokenizer.encode(t, add_special_tokens=False)[-1] for t in (good, bad)]
        elif self.format == "token_classification":
            self._model = AutoModelForTokenClassification.from_pretrained(self.path, dtype=dtype)
        else:
            self._model = AutoModel.from_pretrained(self.path, dtype=dtype)
            hidden = self._model.config.hidden_size
            if self.format == "qwen_math_prm":
                # Qwen2.5-Math-PRM's head on the base model's states: Linear(h, h) -> ReLU -> Linear(h, 2)
                self._head = torch.nn.Sequential(torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
                                                 torch.nn.Linear(hidden, 2))
                _load_head(path, "score.", self._head)
            else:
                self._head = torch.nn.Linear(hidden, 1)
                _load_head(path, "v_head.summary.", self._head)
            self._head.to(dtype)
        self._model.to(self.device).eval()
        if self._head is not None:
            self._head.to(self.device).eval()

    def encode(self, question: str, steps: Sequence[str]) -> Encoded:
        self.load()
        return encode(self.format, self.tokenizer, question, steps, self.options)

    def forward(self, batch: Sequence[Encoded]) -> list[list[float]]:
        """Step scores of each encoded input: one padded forward pass per batch_size inputs."""
        self.load()
        torch = self._torch
        out: list[list[float]] = []
        for start in range(0, len(batch), self.batch_size):
            chunk = batch[start: start + self.batch_size]
            width = max(len(e.ids) for e in chunk)
            pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
            ids = torch.tensor([e.ids + [pad] * (width - len(e.ids)) for e in chunk], device=self.device)
            mask = torch.tensor([[1] * len(e.ids) + [0] * (width - len(e.ids)) for e in chunk], device=self.device)
            with torch.inference_mode():
                scores = self._read(ids, mask)
            out += [[float(scores[row, p]) for p in e.positions] for row, e in enumerate(chunk)]
        return out

    def _read(self, ids, mask):
        torch = self._torch
        if self.format in ("math_shepherd", "rlhflow"):
            logits = self._model(input_ids=ids, attention_mask=mask).logits[:, :, self._candidates]
            return logits.float().softmax(dim=-1)[:, :, 0]
        if self.format == "token_classification":
            return self._model(input_ids=ids, attention_mask=mask).logits.float().softmax(dim=-1)[:, :, 1]
        hidden = self._model(input_ids=ids, attention_mask=mask).last_hidden_state
        head = self._head(hidden).float()
        return head.softmax(dim=-1)[:, :, 1] if self.format == "qwen_math_prm" else torch.sigmoid(head[:, :, 0])

    # -- the verifier contract ----------------------------------------------------------------------
    async def _submit(self, items: list[Encoded]) -> list[list[float]]:
        loop = asyncio.get_running_loop()
        futures = []
        for item in items:
            future = loop.create_future()
            self._pending.append((item, future))
            futures.append(future)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(lambda: loop.create_task(self._flush()))
        return list(await asyncio.gather(*futures))

    def _forward_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._loop_lock is None or self._loop_lock[0] is not loop:
            self._loop_lock = (loop, asyncio.Lock())
        return self._loop_lock[1]

    async def _flush(self) -> None:
        # One forward pass at a time: calls that arrive while one runs wait and form the next batch.
        async with self._forward_lock():
            await asyncio.sleep(0)  # let the other problems' calls of this tick join the batch
            pending, self._pending, self._flush_scheduled = self._pending, [], False
            if pending:
                await self._run(pending)

    async def _run(self, pending) -> None:
        try:
            results = await asyncio.to_thread(self.forward, [item for item, _ in pending])
        except Exception as exc:  # every waiting call sees the failure
            for _, future in pending:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), scores in zip(pending, results):
            if not future.done():
                future.set_result(scores)

    async def score(self, problem: Problem, trajectories: Sequence[Trajectory], usage: Usage) -> list[Scores]:
        if not self._loaded:
            await self._load_async()
        steps = [steps_of(t, self.step_delimiter) or [t.text] for t in trajectories]
        items = [self.encode(problem.question, s) for s in steps]  # fast; keeps concurrent calls in one tick
        step_scores = await self._submit(items)
        usage.verifier_calls += len(items)
        usage.verifier_tokens += sum(len(e.ids) for e in items)
        return [Scores(aggregate(s, self.aggregation) if s else float("nan"), s) for s in step_scores]


POOLED_FORMATS = ("qwen_math_prm",)


@dataclass
class VLLMPoolingPRM:
    traits = Traits(separate_model=True)
    """The fast path: the PRM served by vLLM's pooling runner (as its_hub / reward_hub serve
    Qwen2.5-Math-PRM). Each trajectory is one request; vLLM batches them with every other problem's.
    Formats vLLM can pool: qwen_math_prm (Qwen2ForProcessRewardModel, step-tag pooling)."""

    path: str
    format: str = "qwen_math_prm"
    aggregation: str = "min"
    step_delimiter: str = "\n\n"
    engine_args: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.format not in POOLED_FORMATS:
            raise ValueError(f"format={self.format!r} cannot be pooled by vLLM; pooled formats: "
                             f"{', '.join(POOLED_FORMATS)} (use runner=transformers for the others)")
        aggregate([0.5], self.aggregation)  # "model" is refused: no format gives its own final score
        self._backend = None

    def load(self):
        if self._backend is None:
            from ttscale.backends.vllm import VLLMBackend

            self._backend = VLLMBackend(self.path, engine_args={"runner": "pooling", **self.engine_args})
            self.tokenizer = self._backend.tokenizer
            self._tag = _single_token(self.tokenizer, self.options.get("step_token", "<extra_0>"))
        return self

    async def score(self, problem: Problem, trajectories: Sequence[Trajectory], usage: Usage) -> list[Scores]:
        self.load()
        items = [encode(self.format, self.tokenizer, problem.question,
                        steps_of(t, self.step_delimiter) or [t.text], self.options) for t in trajectories]
        rows = await asyncio.gather(*(self._backend.pool(e.ids, step_tag_id=self._tag) for e in items))
        usage.verifier_calls += len(items)
        usage.verifier_tokens += sum(len(e.ids) for e in items)
        out = []
        for data in rows:
            steps = [float(x) for x in data[:, 1]]
            out.append(Scores(aggregate(steps, self.aggregation) if steps else float("nan"), steps))
        return out

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None
