"""Conversations in, training-ready data out: chat Parquet written by `datasets` scores every row and keeps its turns
as lists; a selection reloads with `datasets` and goes through TRL's chat formatting; training formats out; budgets,
groups and the random rule on the command line against hand-computed answers (ties included); the dataset card."""
import json
import numpy as np
import pandas as pd
import pytest
import yaml
from ifd_nb.cli import main

TURNS = [
    [("What is 2 + 2?", "4.")],
    [("Name a colour.", "Blue."), ("Another one?", "Green.")],
    [("Translate 'cat' to French.", "Chat.")],
    [("Give me a prime number.", "Seven."), ("A larger one?", "Eleven."), ("Larger still?", "Thirteen.")],
    [("Say hello.", "Hello!")],
    [("What is the capital of Italy?", "Rome.")],
]


def chat_rows():
    "Conversations as `messages` of role/content turns, with a system turn in one of them."
    rows = []
    for i, turns in enumerate(TURNS):
        msgs = [{"role": "system", "content": "Be brief."}] if i == 2 else []
        for q, a in turns: msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        rows.append({"messages": msgs, "source": f"s{i % 2}"})
    return rows


@pytest.fixture(scope="module")
def chat_scores(tmp_path_factory, tiny_model_folder):
    "A chat data set saved as Parquet by `datasets`, scored by the command line with a tiny model."
    import datasets
    d = tmp_path_factory.mktemp("chat")
    datasets.Dataset.from_list(chat_rows()).to_parquet(str(d/"chat.parquet"))
    assert main(["score", str(d/"chat.parquet"), "-o", str(d/"scores.parquet"), "--model", str(tiny_model_folder),
                 "-q"]) == 0
    return d


def test_chat_parquet_scores_every_row_and_keeps_turns_as_lists(chat_scores):
    df = pd.read_parquet(chat_scores/"scores.parquet")
    assert list(df.status) == ["ok"] * len(TURNS)
    assert [list(m) for m in df.messages] == [r["messages"] for r in chat_rows()]  # list<struct>, not text


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_selection_reloads_with_datasets_and_passes_trl_formatting(chat_scores, suffix):
    import datasets
    trl = pytest.importorskip("trl")  # in the dev extras
    from ifd_nb.models import load_tokenizer
    out = chat_scores/f"sel{suffix}"
    assert main(["select", str(chat_scores/"scores.parquet"), "-o", str(out), "--rule", "random", "--top", "4",
                 "--format", "messages"]) == 0
    kind = "json" if suffix == ".jsonl" else "parquet"
    ds = datasets.load_dataset(kind, data_files=str(out), split="train")
    assert ds.column_names == ["messages"] and len(ds) == 4
    tok = load_tokenizer("embedded")
    for ex in ds:
        assert isinstance(ex["messages"], list) and all(set(t) == {"role", "content"} for t in ex["messages"])
        assert trl.is_conversational(ex)
        text = trl.apply_chat_template(ex, tok)["text"]
        assert ex["messages"][-1]["content"] in text


def test_formats_out(chat_scores, capsys):
    scores = str(chat_scores/"scores.parquet")
    assert main(["select", scores, "-o", str(chat_scores/"sg.json"), "--rule", "random", "--rate", "1",
                 "--format", "sharegpt"]) == 0
    sg = json.loads((chat_scores/"sg.json").read_text())
    assert [t["from"] for t in sg[1]["conversations"]] == ["human", "gpt", "human", "gpt"]
    assert main(["select", scores, "-o", str(chat_scores/"alp.jsonl"), "--rule", "random", "--rate", "1",
                 "--format", "alpaca"]) == 2  # multi-turn conversations are refused, not cut
    err = capsys.readouterr().err
    assert "2 of 6 selected rows cannot be written as alpaca" in err
    assert not (chat_scores/"alp.jsonl").exists()


def scores_table(tmp_path):
    "A hand-made scores file: IFD with ties, token counts, a group column with a missing value, unscored rows."
    t = pd.DataFrame({
        "index": range(9),
        "instruction": [f"q{i}" for i in range(9)], "output": [f"a{i}" for i in range(9)],
        "task": ["code", "chat", "chat", "code", None, "code", "chat", "math", "math"],
        "ifd": [0.9, 0.8, 0.8, 0.7, 0.95, 1.2, 0.6, np.nan, 0.5],
        "ifd_ppl": [0.9, 0.8, 0.8, 0.7, 0.95, 1.2, 0.6, np.nan, 0.5],
        "loss_cond": 1.0, "loss_bare": 1.0,
        "n_prompt_tokens": [10] * 9, "n_answer_tokens": [90, 40, 10, 30, 190, 5, 20, 0, 300],
        "truncated": False,
        "status": ["ok"] * 7 + ["empty_answer", "ok"],
        "mode": "default", "template": "auto: the tokenizer's chat template", "scored_by": "embedded",
    })
    t.to_parquet(tmp_path/"s.parquet", index=False)
    return tmp_path/"s.parquet"


def run_select(tmp_path, *args):
    out = tmp_path/"sel.jsonl"
    code = main(["select", str(scores_table(tmp_path)), "-o", str(out), *args])
    return code, ([json.loads(l)["index"] for l in out.read_text().splitlines()] if code == 0 else None)


@pytest.mark.parametrize("args, want", [
    # eligible by IFD, best first: 4 (.95, 200 tokens), 0 (.9, 100), 1 (.8, 50), 2 (.8, 20: the tie, later row
    # second), 3 (.7, 40), 6 (.6, 30), 8 (.5, 310); 5 has IFD >= 1, 7 is not scored
    (["--budget-tokens", "300"], [0, 4]),
    (["--budget-tokens", "370"], [0, 1, 2, 4]),
    (["--budget-tokens", "199"], []),
    (["--top", "3"], [0, 1, 4]),
    (["--top", "3", "--budget-tokens", "320"], [0, 4]),
    (["--top", "1", "--group-by", "task"], [0, 1, 4, 8]),
    (["--rate", "0.5", "--group-by", "task"], [0, 1]),  # half of each group, rounded down: 0 of 1, 1 of 3, 1 of 2, 0 of 1
    (["--budget-tokens", "100", "--group-by", "task"], [0, 1, 2, 6]),
    (["--rule", "longest", "--top", "2"], [4, 8]),
    (["--rule", "longest", "--budget-tokens", "510"], [4, 8]),  # 310 + 200; then 0 (100) would pass
    (["--rule", "longest", "--top", "1", "--group-by", "task"], [0, 1, 4, 8]),
    (["--rule", "longest", "--rate", "1"], [0, 1, 2, 3, 4, 5, 6, 8]),  # 5 too: its IFD 1.2 does not matter
])
def test_budget_group_and_longest_rules(tmp_path, args, want):
    assert run_select(tmp_path, *args) == (0, want)


def test_random_rule_is_seeded_nested_and_grouped(tmp_path):
    scored = [0, 1, 2, 3, 4, 5, 6, 8]  # every scored row, whatever its IFD
    perm = [scored[i] for i in np.random.default_rng(5).permutation(len(scored))]
    assert run_select(tmp_path, "--rule", "random", "--top", "3", "--seed", "5") == (0, sorted(perm[:3]))
    assert run_select(tmp_path, "--rule", "random", "--top", "5", "--seed", "5") == (0, sorted(perm[:5]))
    tokens = {0: 100, 1: 50, 2: 20, 3: 40, 4: 200, 5: 15, 6: 30, 8: 310}
    kept = np.cumsum([tokens[i] for i in perm]) <= 250
    assert run_select(tmp_path, "--rule", "random", "--budget-tokens", "250", "--seed", "5") == (
        0, sorted(perm[:int(kept.sum())]))
    code, got = run_select(tmp_path, "--rule", "random", "--top", "1", "--group-by", "task", "--seed", "5")
    assert code == 0 and len(got) == 4  # one of each of code, chat, math and the missing value


def test_the_card_records_the_rule_and_the_scores(tmp_path):
    assert run_select(tmp_path, "--top", "1", "--group-by", "task", "--budget-tokens", "400")[0] == 0
    text = (tmp_path/"sel.jsonl.README.md").read_text()
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["configs"][0]["data_files"] == "sel.jsonl"
    info = meta["ifd_nb"]
    assert info["rule"] == "top" and info["key"] == "ifd" and info["top"] == 1 and info["budget_tokens"] == 400
    assert info["group_by"] == "task" and info["selected"] == 4 and info["rows"] == 9
    assert info["groups"] == {"(missing)": [1, 1], "chat": [3, 1], "code": [2, 1], "math": [1, 1]}
    assert info["scored_with"] == {"mode": "default", "template": "auto: the tokenizer's chat template",
                                   "scored_by": "embedded"}
    assert info["counts"]["eligible"] == 7 and info["counts"]["ifd_at_or_above_1.0"] == 1


def test_budgets_and_groups_are_refused_where_they_do_not_apply(tmp_path, capsys):
    assert run_select(tmp_path, "--rule", "cherry", "--rate", "0.5", "--budget-tokens", "100")[0] == 2
    assert run_select(tmp_path, "--budget-tokens", "0")[0] == 2
    assert run_select(tmp_path, "--top", "1", "--group-by", "kind")[0] == 2
    err = capsys.readouterr().err
    assert "work with --rule top, longest and random" in err and "positive number of tokens" in err
    assert "--group-by kind: the table has no such column" in err
    assert not (tmp_path/"sel.jsonl").exists()
