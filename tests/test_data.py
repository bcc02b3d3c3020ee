import json

import pytest

from ttscale.data import DatasetError, DatasetSpec, PromptTemplate, load_problems


def test_fixture_loads_thirty_gsm8k_problems():
    problems = load_problems(DatasetSpec(source="fixture:gsm8k_test_30", answer_format="gsm8k", id_prefix="gsm8k-test"))
    assert len(problems) == 30
    assert problems[0].id == "gsm8k-test-0"
    assert problems[0].answer == "18"
    assert all(p.answer and "####" not in p.answer for p in problems)


def test_local_jsonl_offset_limit_and_thousands(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [{"question": f"q{i}", "answer": f"work\n#### {i},000"} for i in range(5)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    problems = load_problems(DatasetSpec(source=str(path), answer_format="gsm8k", offset=1, limit=2))
    assert [p.id for p in problems] == ["row-1", "row-2"]
    assert problems[0].answer == "1000"


def test_boxed_answer_format_and_id_key(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"problem": "p", "solution": "so \\boxed{\\frac{1}{2}}", "unique_id": "u/1"}) + "\n")
    (p,) = load_problems(DatasetSpec(source=str(path), question_key="problem", answer_key="solution",
                                     id_key="unique_id", answer_format="boxed"))
    assert (p.id, p.answer, p.question) == ("u/1", "\\frac{1}{2}", "p")


def test_malformed_rows_are_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "a", "answer": "#### 1"}\n{not json\n')
    with pytest.raises(DatasetError, match=r"bad.jsonl:2: not valid JSON"):
        load_problems(DatasetSpec(source=str(path), answer_format="gsm8k"))
    path.write_text('{"question": "a", "answer": "#### 1"}\n{"question": "b"}\n')
    with pytest.raises(DatasetError, match=r"bad.jsonl:2: missing field 'answer'"):
        load_problems(DatasetSpec(source=str(path), answer_format="gsm8k"))
    path.write_text('{"question": "a", "answer": "no marker"}\n')
    with pytest.raises(DatasetError, match=r"bad.jsonl:1: field 'answer': no '#### N' marker"):
        load_problems(DatasetSpec(source=str(path), answer_format="gsm8k"))


def test_missing_file_and_fixture():
    with pytest.raises(DatasetError, match="does not exist"):
        load_problems(DatasetSpec(source="/nonexistent/x.jsonl"))
    with pytest.raises(DatasetError, match="no shipped fixture"):
        load_problems(DatasetSpec(source="fixture:nope"))


def test_shared_data_files_load_when_present():
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
    if not root.exists():
        pytest.skip("../shared/data is not beside this checkout")
    assert len(load_problems(DatasetSpec(source=str(root / "math500.jsonl"), question_key="problem", id_key="unique_id"))) == 500
    aime = load_problems(DatasetSpec(source=str(root / "aime24.jsonl"), question_key="problem", id_key="id"))
    assert len(aime) == 30 and aime[0].id == "60"


def test_prompt_template_keeps_latex_braces_and_few_shot():
    template = PromptTemplate(user="{question}\nPut the answer in \\boxed{}.", system="sys",
                              few_shot=[{"question": "1+1?", "solution": "\\boxed{2}"}])
    msgs = template.messages("2+2?")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[-1]["content"] == "2+2?\nPut the answer in \\boxed{}."
    assert msgs[1]["content"].startswith("1+1?")


def test_plain_text_prompt_for_base_models():
    from ttscale.build import build_problems, model_stop
    from ttscale.config import group_config

    template = PromptTemplate(user="{question}", few_shot=[{"question": "1+1?", "solution": "2.\nThe answer is 2."}])
    (p,) = template.apply([load_problems(DatasetSpec(source="fixture:gsm8k_test_30", answer_format="gsm8k",
                                                     limit=1))[0]], plain={})
    assert p.messages is None
    assert p.text.startswith("Question: 1+1?\nAnswer: 2.\nThe answer is 2.\n\nQuestion: Janet")
    assert p.text.endswith("\nAnswer:")
    gemma = group_config("model", "gemma3-270m")
    problems = build_problems(group_config("dataset", "gsm8k_fixture"), gemma)
    assert problems[0].messages is None and problems[0].text.count("Question:") == 4  # 3 examples + 1
    assert model_stop(gemma) == ("\nQuestion:",)
    assert model_stop(group_config("model", "smollm2-135m")) == ()
    assert build_problems(group_config("dataset", "gsm8k_fixture"), group_config("model", "smollm2-135m"))[0].messages
