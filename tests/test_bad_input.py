"""Bad input gets a named, counted status or one clear error line; no row is ever dropped."""
import json, os, shutil, subprocess, sys
import pandas as pd
import pytest
from ifd_nb.cli import main
from ifd_nb.ifd import score_rows
from ifd_nb.models import tiny_model, load_tokenizer

BAD = [
    '{"instruction": "Name a colour.", "output": "Blue."}',
    '{"instruction": "No answer here."}',
    '{"output": "An answer without an instruction."}',
    '{"instruction": "Empty answer.", "output": "   "}',
    '{"instruction": 42, "output": "not a string instruction"}',
    '{"instruction": "A list answer.", "output": ["a", "b"]}',
    'this line is not JSON',
    '{"instruction": "' + "very long prompt " * 400 + '", "output": "x"}',
    '{"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello there!"}]}',
    '{"instruction": "Name a fruit.", "output": "Apple."}',
]
EXPECTED = ["ok", "missing_field", "missing_field", "empty_answer", "non_text", "non_text", "invalid_json",
            "prompt_too_long", "ok", "ok"]


@pytest.fixture(scope="module")
def bad_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("bad")/"bad.jsonl"
    p.write_text("\n".join(BAD) + "\n")
    return p


def test_every_bad_row_gets_a_named_status(bad_file):
    tok = load_tokenizer("embedded")
    recs = score_rows(str(bad_file), tiny_model(), tok, max_length=256, batch_size=4, progress=False)
    assert [r["status"] for r in recs] == EXPECTED


@pytest.mark.parametrize("ext", ["parquet", "jsonl", "csv"])
def test_cli_score_writes_one_row_per_input_row(bad_file, tmp_path, ext):
    out = tmp_path/f"scores.{ext}"
    chunks = ["--chunk-rows", "3"] if ext == "jsonl" else []  # bad rows spread over 4 chunks: each still gets its status
    assert main(["score", str(bad_file), "-o", str(out), "--max-length", "256", "-q", *chunks]) == 0
    df = pd.read_parquet(out) if ext == "parquet" else pd.read_json(out, lines=True) if ext == "jsonl" else pd.read_csv(out)
    assert list(df["index"]) == list(range(len(BAD)))
    assert list(df.status) == EXPECTED
    for c in ["loss_cond", "loss_bare", "ifd", "ifd_ppl", "n_prompt_tokens", "n_answer_tokens", "truncated", "status", "instruction", "output"]:
        assert c in df.columns
    ok = df[df.status == "ok"]
    assert ok.ifd.notna().all() and df[df.status != "ok"].ifd.isna().all()


def test_truncation_is_flagged(tmp_path):
    tok = load_tokenizer("embedded")
    rows = [{"instruction": "Say something.", "output": "word " * 300}]
    rec = score_rows(rows, tiny_model(), tok, max_length=64, progress=False)[0]
    assert rec["status"] == "ok" and rec["truncated"] and rec["n_prompt_tokens"] + rec["n_answer_tokens"] == 64


def _cli(*args, env=None):
    exe = shutil.which("ifd_nb")
    assert exe, "the ifd_nb console script is not installed"
    return subprocess.run([exe, *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_unknown_model_offline_is_one_clear_line(bad_file, tmp_path):
    r = _cli("score", str(bad_file), "-o", str(tmp_path/"x.csv"), "--model", "no-such-org/no-such-model",
             env={"HF_HUB_OFFLINE": "1"})
    assert r.returncode == 2
    assert "ifd_nb: error: cannot load" in r.stderr and "Traceback" not in r.stderr


def test_missing_input_and_bad_output_suffix(tmp_path):
    r = _cli("score", str(tmp_path/"nope.jsonl"), "-o", str(tmp_path/"x.csv"))
    assert r.returncode == 2 and "no such input file" in r.stderr and "Traceback" not in r.stderr
    assert main(["score", str(tmp_path/"nope.jsonl"), "-o", str(tmp_path/"x.xlsx")]) == 2


def test_demo_runs_and_ranks(tmp_path, capsys):
    assert main(["demo", "--limit", "24", "-o", str(tmp_path/"demo.parquet"), "-q"]) == 0
    out = capsys.readouterr().out
    assert "IFD ranking of the demo set" in out and "have IFD >= 1" in out
    assert len(pd.read_parquet(tmp_path/"demo.parquet")) == 24


@pytest.mark.parametrize("flag", ["--chunk-rows", "--batch-tokens"])
def test_sizes_below_one_are_one_clear_error(bad_file, tmp_path, capsys, flag):
    assert main(["score", str(bad_file), "-o", str(tmp_path/"x.csv"), flag, "-2", "-q"]) == 2
    assert "must be a positive number" in capsys.readouterr().err


DOLLY = [{"instruction": "Summarise the text.", "context": "Cats sleep up to sixteen hours a day.", "response": "Cats sleep a lot.",
          "category": "summarization"},
         {"instruction": "Name a prime number.", "context": "", "response": "Seven.", "category": "open_qa"},
         {"instruction": "Say hi.", "context": "", "response": "   ", "category": "open_qa"}]
ALPACA = [{"instruction": r["instruction"], "input": r["context"], "output": r["response"]} for r in DOLLY]


def test_other_column_names_score_as_alpaca_and_resume(tmp_path, capsys):
    from ifd_nb.engine import score_dataset
    tok, model = load_tokenizer("embedded"), tiny_model()
    want = score_rows(ALPACA, model, tok, progress=False)
    assert score_rows(DOLLY, model, tok, progress=False) == want  # found by `FIELD_ALIASES`
    assert [r["status"] for r in want] == ["ok", "ok", "empty_answer"]
    kw = dict(tokenizer=tok, output=tmp_path/"s.parquet", progress=False)
    df = score_dataset(DOLLY, model, **kw)
    assert "fields: input <- 'context', output <- 'response'; text columns not read: category" in capsys.readouterr().out
    assert list(df.columns[:5]) == ["index", "instruction", "context", "response", "category"]  # the table keeps the originals
    assert list(df.status) == [r["status"] for r in want]
    assert abs(df.ifd[:2] - [r["ifd"] for r in want[:2]]).max() < 1e-6
    again = score_dataset(DOLLY, model, **kw)  # the renamed rows are what is hashed: the rerun reuses every shard
    assert "3 rows: 3 already scored, 0 to score" in capsys.readouterr().out
    pd.testing.assert_frame_equal(again, df)
    named = [{"q": r["instruction"], "a": r["response"]} for r in DOLLY]
    got = score_dataset(named, model, tokenizer=tok, fields="instruction=q,output=a", progress=False, verbose=False)
    assert list(got.status) == [r["status"] for r in want]


@pytest.mark.parametrize("rows,fields,message", [
    ([{"id": 1, "prompt": "An evaluation prompt."}], "auto", "no column for 'output'"),
    ([{"prompt": "p", "question": "q", "output": "o"}], "auto", "could each be the 'instruction'"),
    (DOLLY, "output=answer", "no column 'answer'"),
    (DOLLY, {"reply": "response"}, "unknown field 'reply'"),
])
def test_unreadable_columns_stop_before_the_model_loads(rows, fields, message):
    from ifd_nb.engine import score_dataset
    with pytest.raises(ValueError, match=message):  # a model that cannot load would raise `ModelNotFound` if reached
        score_dataset(rows, "no-such-org/no-such-model", fields=fields, progress=False)


def test_cli_fields_flag(tmp_path):
    p = tmp_path/"qa.jsonl"
    p.write_text("".join(json.dumps({"question": r["instruction"], "answer": r["response"], "response": "unused"}) + "\n" for r in DOLLY))
    r = _cli("score", str(p), "-o", str(tmp_path/"x.csv"), "-q")  # answer and response could both be the output
    assert r.returncode == 2 and "could each be the 'output'" in r.stderr and "(CLI: --fields output=response)" in r.stderr
    r = _cli("score", str(p), "-o", str(tmp_path/"x.csv"), "-q", "--fields", "instruction=question,output=answer")
    assert r.returncode == 0, r.stderr
    assert "fields: instruction <- 'question', output <- 'answer'; text columns not read: response" in r.stdout + r.stderr
    assert list(pd.read_csv(tmp_path/"x.csv").status) == ["ok", "ok", "empty_answer"]


def test_cli_split_reaches_the_hub_loader(tmp_path, monkeypatch):
    import datasets
    calls = []
    def fake_load(name, split=None, **kw):  # stands in for the hub, which tests cannot reach
        calls.append((name, split))
        if split != "train_sft": raise ValueError(f"Unknown split {split!r}. Should be one of ['train_sft', 'test_sft'].")
        return datasets.Dataset.from_list(
            [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}])
    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    assert main(["score", "some-org/chat-set", "-o", str(tmp_path/"x.csv"), "-q"]) == 2  # default split: train
    assert main(["score", "some-org/chat-set", "-o", str(tmp_path/"x.csv"), "-q", "--split", "train_sft"]) == 0
    assert calls == [("some-org/chat-set", "train"), ("some-org/chat-set", "train_sft")]
    assert list(pd.read_csv(tmp_path/"x.csv").status) == ["ok"]
