"""Selection rules on hand-made score tables whose right answer is known, and the `ifd_nb select` command."""
import json
import numpy as np
import pandas as pd
import pytest
from ifd_nb.cli import main
from ifd_nb.select import (select_top_ifd, select_cherry, select_superfiltering, select_random, select_per_cluster,
                           select_facility_location, eligible)

TABLE = pd.DataFrame({
    "index": range(10),
    "instruction": [f"q{i}" for i in range(10)],
    "output": [f"a{i}" for i in range(10)],
    "ifd":     [0.30, 0.95, 0.95, np.nan, 0.60, 1.00, 1.40, 0.80, 0.10, 0.95],
    "ifd_ppl": [0.30, 0.95, 0.95, np.nan, 0.60, 1.00, 1.40, 0.80, 0.10, 0.95],
    "status":  ["ok", "ok", "ok", "nonfinite", "ok", "ok", "ok", "empty_answer", "ok", "ok"],
})


def test_top_rate_rounds_down_drops_bad_rows_and_keeps_input_order():
    sel, c = select_top_ifd(TABLE, rate=0.5)  # eligible: 0,1,2,4,8,9 (6) -> 3
    assert list(sel["index"]) == [1, 2, 9]
    assert c == {"rows": 10, "not_ok": 2, "nan_score": 0, "ifd_at_or_above_1.0": 2, "eligible": 6, "selected": 3}


def test_ties_break_by_input_position():
    assert list(select_top_ifd(TABLE, top=2)[0]["index"]) == [1, 2]
    assert list(select_cherry(TABLE, number=2)["index"]) == [5, 9]  # cherry: IFD 1.0 kept; output in input order


def test_cherry_and_superfiltering_rules():
    # cherry keeps IFD <= 1 among ok rows: 0,1,2,4,5,8,9 -> int(7 * 0.3) = 2 -> (1.0, 5) and (0.95, 9)
    assert list(select_cherry(TABLE, rate=0.3)["index"]) == [5, 9]
    # superfiltering keeps ifd_ppl < 1 whatever the status (the script has no status): 0,1,2,4,7,8,9 -> int(10*0.3)=3
    assert list(select_superfiltering(TABLE, rate=0.3)["index"]) == [1, 2, 9]


def test_empty_and_all_nan_selections():
    assert len(select_top_ifd(TABLE, rate=0.1)[0]) == 0
    nan = TABLE.assign(ifd=np.nan)
    sel, c = select_top_ifd(nan, rate=1.0)
    assert len(sel) == 0 and c["nan_score"] == 8
    assert len(select_cherry(nan, rate=1.0)) == 0


def test_random_baseline_is_seeded_and_sized():
    a, b = select_random(TABLE, 4, seed=3), select_random(TABLE, 4, seed=3)
    assert list(a["index"]) == list(b["index"]) and len(a) == 4 and list(a["index"]) == sorted(a["index"])


@pytest.mark.parametrize("ext", ["json", "jsonl", "parquet", "csv"])
def test_cli_select(tmp_path, ext):
    scores = tmp_path/"scores.parquet"
    TABLE.to_parquet(scores, index=False)
    out = tmp_path/f"sel.{ext}"
    assert main(["select", str(scores), "-o", str(out), "--rate", "0.5"]) == 0
    if ext == "json": got = pd.DataFrame(json.loads(out.read_text()))
    elif ext == "jsonl": got = pd.read_json(out, lines=True)
    elif ext == "parquet": got = pd.read_parquet(out)
    else: got = pd.read_csv(out)
    assert list(got["index"]) == [1, 2, 9]
    assert {"instruction", "output", "ifd", "ifd_ppl", "status"} <= set(got.columns)
    assert main(["select", str(scores), "-o", str(tmp_path/"t.json"), "--top", "1", "--rule", "cherry"]) == 0
    assert [r["index"] for r in json.loads((tmp_path/"t.json").read_text())] == [5]


def test_cli_select_rejects_a_non_scores_file(tmp_path):
    p = tmp_path/"x.jsonl"; p.write_text('{"instruction": "a", "output": "b"}\n')
    assert main(["select", str(p), "-o", str(tmp_path/"y.json"), "--rate", "0.1"]) == 2


@pytest.fixture(scope="module")
def demo_scores(tmp_path_factory):
    "A scores file of 30 demo rows with seeded IFDs (two rows not ok), and the table."
    from ifd_nb.data import read_rows, demo_data_path
    df = pd.DataFrame(read_rows(demo_data_path())[:30])
    rng = np.random.default_rng(7)
    df = df.assign(index=range(30), ifd=rng.uniform(0.2, 1.1, 30), status=["ok"] * 28 + ["empty_answer", "non_text"])
    path = tmp_path_factory.mktemp("scores")/"scores.parquet"
    df.to_parquet(path, index=False)
    return path, df


def _all_embeddings(df, folder):
    from ifd_nb.embed import instruction_features
    from ifd_nb.models import load_model
    model, tok = load_model(str(folder), device="cpu")
    return instruction_features(model, tok, df.to_dict("records"))[0]


@pytest.fixture
def embedded_sizes(monkeypatch):
    "The number of rows of each `instruction_features` call made while the test runs (the real function still computes)."
    import ifd_nb.embed
    sizes, features = [], ifd_nb.embed.instruction_features
    monkeypatch.setattr(ifd_nb.embed, "instruction_features", lambda m, t, rows, *a, **k: sizes.append(len(rows)) or features(m, t, rows, *a, **k))
    return sizes


def test_cli_facility_location_embeds_only_candidates_and_picks_as_on_all_rows(demo_scores, tiny_model_folder, tmp_path, capsys,
                                                                                 embedded_sizes):
    path, df = demo_scores
    out, embedded = tmp_path/"fl.jsonl", embedded_sizes
    assert main(["select", str(path), "-o", str(out), "--rule", "facility", "--top", "5", "--candidates", "0.5",
                 "--embed-model", str(tiny_model_folder), "--device", "cpu", "-q", "--embeddings-dir", str(tmp_path/"emb")]) == 0
    got = pd.read_json(out, lines=True)
    want = select_facility_location(df, _all_embeddings(df, tiny_model_folder), 5, candidates=0.5)
    assert list(got["index"]) == list(want["index"]) and len(got) == 5
    assert embedded[0] == len(select_top_ifd(df, rate=0.5)[0]) < 30  # the CLI embedded the candidates only
    assert set(got["index"]) <= set(select_top_ifd(df, rate=0.5)[0]["index"]) and "selected 5 of 30 rows by ifd (facility)" in capsys.readouterr().err


def test_cli_per_cluster(demo_scores, tiny_model_folder, tmp_path):
    path, df = demo_scores
    out = tmp_path/"pc.csv"
    assert main(["select", str(path), "-o", str(out), "--rule", "per-cluster", "--clusters", "3", "--per-cluster", "2",
                 "--embed-model", str(tiny_model_folder), "--device", "cpu", "-q", "--embeddings-dir", str(tmp_path/"emb")]) == 0
    got = pd.read_csv(out)
    want = select_per_cluster(df, _all_embeddings(df, tiny_model_folder), 3, 2)
    assert list(got["index"]) == list(want["index"]) and len(got) == 6
    assert (got.status == "ok").all() and (got.ifd < 1).all()


def test_cli_per_cluster_past_fit_rows_embeds_a_sample_then_the_rest(demo_scores, tiny_model_folder, tmp_path, embedded_sizes):
    path, df = demo_scores
    out, embedded = tmp_path/"pc.jsonl", embedded_sizes
    assert main(["select", str(path), "-o", str(out), "--rule", "per-cluster", "--clusters", "3", "--per-cluster", "2",
                 "--fit-rows", "8", "--embed-model", str(tiny_model_folder), "--device", "cpu", "-q", "--embeddings-dir", str(tmp_path/"emb")]) == 0
    n = int(eligible(df)[0].sum())  # 24: ok and IFD < 1
    assert embedded == [8, n - 8]  # the KMeans sample, then the other eligible rows; never all at once
    got = pd.read_json(out, lines=True)
    want = select_per_cluster(df, _all_embeddings(df, tiny_model_folder), 3, 2, fit_rows=8)
    assert list(got["index"]) == list(want["index"]) and len(got) == 6


def test_cli_facility_location_with_a_sentence_encoder(demo_scores, tmp_path):
    "A non-causal checkpoint (a tiny random BERT folder standing in for a sentence-transformers one) embeds through AutoModel."
    from transformers import BertConfig, BertModel
    from ifd_nb.embed import instruction_features
    from ifd_nb.models import load_tokenizer
    path, df = demo_scores
    enc_dir, tok = tmp_path/"encoder", load_tokenizer("embedded")
    enc = BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)).eval()
    enc.save_pretrained(enc_dir); tok.save_pretrained(enc_dir)
    assert main(["select", str(path), "-o", str(tmp_path/"fl.json"), "--rule", "facility", "--top", "4", "--candidates", "0.5",
                 "--embed-model", str(enc_dir), "--device", "cpu", "-q", "--embeddings-dir", str(tmp_path/"emb")]) == 0
    got = pd.DataFrame(json.loads((tmp_path/"fl.json").read_text()))
    want = select_facility_location(df, instruction_features(enc, tok, df.to_dict("records"))[0], 4, candidates=0.5)
    assert list(got["index"]) == list(want["index"])


def test_cli_selection_embeddings_are_kept_and_a_stopped_run_resumes(demo_scores, tiny_model_folder, tmp_path, monkeypatch, capsys):
    """A per-cluster run stopped while embedding the rows after its KMeans sample keeps the sample's embeddings: run
    again, it embeds only the rest and selects what an uninterrupted run selects; a facility pick after it embeds nothing."""
    import ifd_nb.embed
    path, df = demo_scores
    calls, features = [], ifd_nb.embed.instruction_features
    def stopping(m, t, rows, *a, **k):
        calls.append(len(rows))
        if len(calls) == 2 and stop: raise KeyboardInterrupt  # the second block: the rows after the sample
        return features(m, t, rows, *a, **k)
    monkeypatch.setattr(ifd_nb.embed, "instruction_features", stopping)
    args = lambda out, folder: ["select", str(path), "-o", str(out), "--rule", "per-cluster", "--clusters", "3", "--per-cluster", "2",
                                "--fit-rows", "8", "--embed-model", str(tiny_model_folder), "--device", "cpu", "-q", "--embeddings-dir", str(folder)]
    n = int(eligible(df)[0].sum())
    stop = True
    assert main(args(tmp_path/"a.jsonl", tmp_path/"emb")) == 130 and calls == [8, n - 8] and not (tmp_path/"a.jsonl").exists()
    stop, calls[:] = False, []
    assert main(args(tmp_path/"a.jsonl", tmp_path/"emb")) == 0 and calls == [n - 8]  # the sample read back
    assert "prompt embeddings: 8 read back" in capsys.readouterr().err
    assert main(args(tmp_path/"b.jsonl", tmp_path/"fresh")) == 0  # uninterrupted, from nothing
    assert list(pd.read_json(tmp_path/"a.jsonl", lines=True)["index"]) == list(pd.read_json(tmp_path/"b.jsonl", lines=True)["index"])
    calls[:] = []
    assert main(["select", str(path), "-o", str(tmp_path/"f.json"), "--rule", "facility", "--top", "3", "--embed-model", str(tiny_model_folder),
                 "--device", "cpu", "-q", "--embeddings-dir", str(tmp_path/"emb")]) == 0
    assert calls == []  # its candidates are eligible rows, all embedded before


@pytest.mark.parametrize("args,message", [
    (["--rule", "per-cluster", "--rate", "0.1"], "takes --clusters and --per-cluster, not --rate or --top"),
    (["--rule", "per-cluster", "--fit-rows", "0"], "--fit-rows must be positive"),
    (["--rule", "facility"], "needs --rate or --top"),
    (["--rule", "facility", "--top", "3", "--candidates", "1.5"], "--candidates must be a share"),
    (["--rule", "facility", "--top", "3", "-o", "sel.txt"], "selection output must end in"),
])
def test_cli_diverse_rules_fail_before_any_model_loads(demo_scores, tmp_path, capsys, args, message):
    path, _ = demo_scores
    out = ["-o", str(tmp_path/"sel.json")] if "-o" not in args else []
    assert main(["select", str(path), *out, *args, "--embed-model", "no/such-model-anywhere"]) == 2
    assert message in capsys.readouterr().err
