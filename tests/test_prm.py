"""Every PRM format on a tiny random checkpoint of its real architecture class.

The tokenizer is SmolLM2's (the one model whose files are here), with the formats' step tags added
as tokens. Each format's scores are checked against a direct forward pass written here from the
model card: same tokens, same positions, same quantity.
"""

import asyncio

import pytest
import torch

from ttscale.types import Problem, Trajectory, Usage
from ttscale.verifiers.prm import TransformersPRM
from ttscale.verifiers.tiny_prm import build_tiny_prm, tiny_tokenizer

QUESTION = "What is 2 + 3?"
STEPS = ["First add 2 and 3.", "2 + 3 = 5.", "The answer is \\boxed{5}."]
TEXT = "\n\n".join(STEPS)


@pytest.fixture(scope="module")
def tokenizer(smollm2_path):
    return tiny_tokenizer(smollm2_path)


@pytest.fixture(scope="module")
def checkpoint(smollm2_path, tmp_path_factory):
    root, built = tmp_path_factory.mktemp("prm"), {}

    def get(fmt):
        if fmt not in built:
            built[fmt] = build_tiny_prm(fmt, smollm2_path, root / fmt)
        return built[fmt]
    return get


def base_and_head(path, prefix, head):
    """Load a Qwen2 base and its head by hand from the checkpoint's safetensors."""
    from safetensors.torch import load_file
    from transformers import Qwen2Config, Qwen2Model

    state = load_file(str(path / "model.safetensors"))
    base = Qwen2Model(Qwen2Config.from_pretrained(path))
    base.load_state_dict({k[len("model."):]: v for k, v in state.items() if k.startswith("model.")})
    head.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
    return base.eval(), head.eval()


def prm_scores(prm, texts=(TEXT,)):
    usage = Usage()
    out = asyncio.run(prm.score(Problem(id="p", question=QUESTION), [Trajectory(t) for t in texts], usage))
    return out, usage


def test_qwen_math_prm_reads_class_1_at_each_extra_0(checkpoint, tokenizer):
    path = checkpoint("qwen_math_prm")
    base, head = base_and_head(path, "score.", torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(),
                                                                   torch.nn.Linear(64, 2)))
    (scores,), usage = prm_scores(TransformersPRM(str(path), "qwen_math_prm", aggregation="min"))
    # by hand, as the model card does it
    messages = [{"role": "system", "content": "Please reason step by step, and put your final answer within \\boxed{}."},
                {"role": "user", "content": QUESTION},
                {"role": "assistant", "content": "<extra_0>".join(STEPS) + "<extra_0>"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    ids = torch.tensor([tokenizer.encode(text, add_special_tokens=False)])  # Qwen's tokenizer adds no BOS
    with torch.no_grad():
        probs = head(base(input_ids=ids).last_hidden_state).softmax(-1)[0]
    expected = probs[ids[0] == tokenizer.convert_tokens_to_ids("<extra_0>")][:, 1]
    assert len(scores.steps) == 3 and all(0 <= s <= 1 for s in scores.steps)
    assert scores.steps == pytest.approx(expected.tolist(), abs=1e-5)
    assert scores.value == pytest.approx(min(expected.tolist()), abs=1e-5)
    assert usage.verifier_calls == 1 and usage.verifier_tokens == ids.shape[1]


def test_math_shepherd_reads_plus_against_minus_at_each_tag(checkpoint, tokenizer):
    from transformers import MistralForCausalLM

    path = checkpoint("math_shepherd")
    model = MistralForCausalLM.from_pretrained(path).eval()
    (scores,), _ = prm_scores(TransformersPRM(str(path), "math_shepherd"))
    plus, minus = tokenizer.encode("+", add_special_tokens=False)[-1], tokenizer.encode("-", add_special_tokens=False)[-1]
    ids = torch.tensor([tokenizer.encode(QUESTION + " " + "".join(f"{s} ки\n" for s in STEPS))])
    with torch.no_grad():
        p = model(ids).logits[:, :, [plus, minus]].softmax(-1)[0, :, 0]
    expected = p[ids[0] == tokenizer.convert_tokens_to_ids("ки")]
    assert scores.steps == pytest.approx(expected.tolist(), abs=1e-5) and len(scores.steps) == 3


def test_rlhflow_reads_the_assistant_reply_to_each_step(checkpoint, tokenizer):
    from transformers import LlamaForCausalLM

    path = checkpoint("rlhflow")
    model = LlamaForCausalLM.from_pretrained(path).eval()
    (scores,), _ = prm_scores(TransformersPRM(str(path), "rlhflow"))
    plus, minus = tokenizer.encode("+", add_special_tokens=False)[-1], tokenizer.encode("-", add_special_tokens=False)[-1]
    expected = []
    conversation = []
    for k, step in enumerate(STEPS):  # the model card scores step k on the conversation up to it
        conversation.append({"role": "user", "content": f"{QUESTION} {step}" if k == 0 else step})
        conversation.append({"role": "assistant", "content": "+"})
        ids = tokenizer.apply_chat_template(conversation, tokenize=True, return_dict=True)["input_ids"]
        ids = torch.tensor([list(ids)])
        reply = max(i for i, t in enumerate(ids[0].tolist()) if t == plus)  # the last "+": this step's reply
        with torch.no_grad():
            logits = model(ids).logits[0, reply - 1, [plus, minus]]
        expected.append(float(logits.softmax(-1)[0]))
    assert scores.steps == pytest.approx(expected, abs=1e-5)


def test_value_head_reads_sigmoid_at_each_step_end(checkpoint, tokenizer):
    path = checkpoint("value_head")
    base, head = base_and_head(path, "v_head.summary.", torch.nn.Linear(64, 1))
    (scores,), _ = prm_scores(TransformersPRM(str(path), "value_head"))
    newline = tokenizer.encode("\n", add_special_tokens=False)[0]
    ids = tokenizer.encode(tokenizer.bos_token + QUESTION + "\n", add_special_tokens=False)
    flags = []
    for step in STEPS:
        ids += tokenizer.encode(step.strip(), add_special_tokens=False) + [newline]
        flags.append(len(ids) - 1)
    with torch.no_grad():
        values = torch.sigmoid(head(base(input_ids=torch.tensor([ids])).last_hidden_state))[0, :, 0]
    assert scores.steps == pytest.approx(values[flags].tolist(), abs=1e-5)


def test_trl_token_classification_reads_label_1_at_each_separator(checkpoint, tokenizer):
    from transformers import Qwen2ForTokenClassification

    path = checkpoint("token_classification")
    model = Qwen2ForTokenClassification.from_pretrained(path).eval()
    (scores,), _ = prm_scores(TransformersPRM(str(path), "token_classification"))
    # TRL PRMTrainer.tokenize_row: [bos] + prompt + (step + separator) per step; label at the separator's end
    sep = tokenizer.encode("\n", add_special_tokens=False)
    ids = [tokenizer.bos_token_id] + tokenizer.encode(QUESTION, add_special_tokens=False)
    labelled = []
    for step in STEPS:
        ids += tokenizer.encode(step, add_special_tokens=False) + sep
        labelled.append(len(ids) - 1)
    with torch.no_grad():
        probs = model(torch.tensor([ids])).logits.softmax(-1)[0, :, 1]
    assert scores.steps == pytest.approx(probs[labelled].tolist(), abs=1e-5)


def test_batched_scores_equal_one_at_a_time_and_calls_share_batches(checkpoint):
    tmp_path = checkpoint("math_shepherd")
    texts = [TEXT, "One step only.", "A\n\nlonger\n\nsolution with\n\nfour steps"]
    alone = [prm_scores(TransformersPRM(str(tmp_path), "math_shepherd"), [t])[0][0].steps for t in texts]
    prm = TransformersPRM(str(tmp_path), "math_shepherd", batch_size=8)
    forwards = []
    original = prm.forward
    prm.forward = lambda batch: forwards.append(len(batch)) or original(batch)

    async def many_problems():
        usage = Usage()
        return await asyncio.gather(*(prm.score(Problem(id=str(i), question=QUESTION), [Trajectory(t)], usage)
                                      for i, t in enumerate(texts)))

    together = [s[0].steps for s in asyncio.run(many_problems())]
    for a, b in zip(alone, together):
        assert a == pytest.approx(b, abs=1e-5)  # right padding changes nothing
    assert forwards == [3]  # three problems' concurrent calls became one batch
    assert [len(s) for s in together] == [3, 1, 4]


def test_wrong_format_for_a_checkpoint_is_a_clear_error(checkpoint):
    tmp_path = checkpoint("math_shepherd")
    with pytest.raises(ValueError, match="no 'score.\\*' weights"):
        prm_scores(TransformersPRM(str(tmp_path), "qwen_math_prm"))
    with pytest.raises(ValueError, match="format='nope'; choose one of"):
        TransformersPRM(str(tmp_path), "nope")
    with pytest.raises(ValueError, match="aggregation='model' needs a verifier that gives its own final score"):
        TransformersPRM(str(tmp_path), "math_shepherd", aggregation="model")


@pytest.mark.integration
def test_vllm_pooling_gives_the_transformers_scores(checkpoint):
    from ttscale.backends.vllm import apply_env
    from ttscale.config import group_config
    from ttscale.verifiers.prm import VLLMPoolingPRM

    apply_env(group_config("backend", "vllm")["env"])
    path = str(checkpoint("qwen_math_prm"))
    texts = [TEXT, "One step only.", "A\n\nlonger\n\nsolution with\n\nfour steps"]
    expected, _ = prm_scores(TransformersPRM(path, "qwen_math_prm"), texts)
    pooled = VLLMPoolingPRM(path, engine_args={"dtype": "float32", "enforce_eager": True, "max_model_len": 1024})
    try:
        got, usage = prm_scores(pooled, texts)
    finally:
        pooled.close()
    assert [len(s.steps) for s in got] == [3, 1, 4]
    for a, b in zip(expected, got):
        assert a.steps == pytest.approx(b.steps, abs=1e-4)
    assert usage.verifier_calls == 3


@pytest.mark.integration
def test_best_of_n_and_particle_filtering_use_a_prm_on_the_engine(vllm_backend, grader, checkpoint):
    from ttscale import DatasetSpec, PromptTemplate, load_problems, run
    from ttscale.build import build_strategy
    from ttscale.config import group_config

    problems = PromptTemplate(user="{question}").apply(load_problems(
        DatasetSpec(source="fixture:gsm8k_test_30", answer_format="gsm8k", limit=1)))
    prm = {**group_config("verifier", "prm"), "path": str(checkpoint("math_shepherd")), "format": "math_shepherd",
           "params": 2e6}
    for name in ("best_of_n", "particle_filtering"):
        cfg = {**group_config("strategy", name), "n": 2, "max_tokens": 48, "max_steps": 2, "max_step_tokens": 24}
        outcome = run(build_strategy(cfg, prm, vllm_backend, grader), problems, vllm_backend, grader=grader,
                      progress=False)
        (result,) = outcome.results
        assert result.error is None, result.error
        assert result.usage.verifier_calls >= 2 and result.usage.verifier_tokens > 0
        assert all(0 <= c.score <= 1 and c.step_scores for c in result.candidates), result.candidates
