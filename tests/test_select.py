"""Selection rules on hand-made score tables whose right answer is known, and the `ifd_nb select` command."""
import json
import numpy as np
import pandas as pd
import pytest
from ifd_nb.cli import main
from ifd_nb.select import (select_top_ifd, select_cherry, select_cherry_v2, select_superfiltering, select_random, select_per_cluster,
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


def test_cherry_v2_rule_and_command(tmp_path):
    "select_from_ifd_json.py: IFD <= 1 (NaN out; no status read, the script has none), descending and stable."
    assert list(select_cherry_v2(TABLE, rate=0.5)["index"]) == [5, 1, 2, 9, 7]  # int(10 * 0.5) = 5: all rows count
    scores = TABLE.to_parquet(tmp_path/"scores.parquet", index=False) or tmp_path/"scores.parquet"
    assert main(["select", str(scores), "-o", str(tmp_path/"v2.json"), "--rate", "0.3", "--rule", "cherry-v2"]) == 0
    assert [r["index"] for r in json.loads((tmp_path/"v2.json").read_text())] == [5, 1, 2]  # the script's order


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


def test_superfiltering_top_keeps_exactly_that_many_rows():
    "--top N through the Superfiltering rule: N rows at every size, where a share N/n then int(n * share) loses one."
    from ifd_nb.select import select_superfiltering
    lost = 0
    for n in range(1, 120):
        t = pd.DataFrame({"ifd_ppl": np.linspace(0.05, 0.95, n), "status": ["ok"] * n})
        for top in range(1, n + 1):
            lost += int(n * (top / n)) < top
            assert len(select_superfiltering(t, number=top)) == top
    assert lost > 100  # the sizes where the share would have lost a row


def test_top_rule_ranks_superfiltering_scores_by_their_own_score(tmp_path, tiny_model_folder, capsys):
    "A table scored in the Superfiltering mode is ranked by `ifd_ppl`, as its script ranks; other modes by `ifd`."
    rows = [{"instruction": f"Say {w}.", "output": f"{w}, {w} and {w} again."} for w in ("one", "two", "three", "four")]
    data = tmp_path/"d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for mode, key in (("superfiltering", "ifd_ppl"), ("default", "ifd")):
        out = tmp_path/f"{mode}.parquet"
        assert main(["score", str(data), "-o", str(out), "--model", str(tiny_model_folder), "--mode", mode, "-q"]) == 0
        assert set(pd.read_parquet(out)["mode"]) == {mode}
        capsys.readouterr()
        assert main(["select", str(out), "-o", str(tmp_path/f"{mode}.json"), "--top", "2"]) == 0
        assert f"rows by {key} (top)" in capsys.readouterr().err


def test_longest_and_random_baselines_on_the_command_line(tmp_path, capsys):
    "The baselines IFD is compared with: the longest answers (ties by input order) and a seeded draw, scored rows only."
    t = TABLE.assign(n_answer_tokens=[5, 40, 40, 90, 7, 12, 40, 99, 3, 8])  # rows 3 and 7 are not scored
    scores = tmp_path/"scores.jsonl"
    t.to_json(scores, orient="records", lines=True)
    run = lambda *a: main(["select", str(scores), "-o", str(tmp_path/"sel.jsonl"), *a])
    read = lambda: [r["index"] for r in map(json.loads, (tmp_path/"sel.jsonl").read_text().splitlines())]
    assert run("--rule", "longest", "--top", "2") == 0 and read() == [1, 2]  # 40, 40 before row 6's 40
    assert run("--rule", "longest", "--rate", "0.5") == 0 and read() == [1, 2, 5, 6]  # 40, 40, 12, 40: input order
    assert run("--rule", "random", "--top", "3", "--seed", "1") == 0
    first = read()
    assert len(first) == 3 and not {3, 7} & set(first) and first == sorted(first)
    assert run("--rule", "random", "--top", "3", "--seed", "1") == 0 and read() == first
    assert run("--rule", "random", "--rate", "0.5") == 0 and len(read()) == 4  # half of the 8 scored rows


def do_fla_port(json_data, embedding_of, ifd_num, fla_num, key_name="ifd_ppl", ifd_lupper=1.0):
    """Superfiltering's code_diversity_fla/do_fla.py ported line by line (emb_type 'whole'), the embedding model
    replaced by fixed vectors and submodlib's dense euclidean FacilityLocation by its kernel and the plain greedy."""
    import math
    def sort_key(x):
        if math.isnan(x[key_name]): return (0, 0)
        return (1, x[key_name])
    filtered_data = [x for x in json_data if (isinstance(x[key_name], (int, float)) and x[key_name] < ifd_lupper)]
    new_data = sorted(filtered_data, key=sort_key, reverse=True)[:ifd_num]
    sent_all = []
    for dict_i in new_data:
        if "input" in dict_i.keys(): instruction_i = dict_i["instruction"] + "\n" + dict_i["input"] + "\n"
        else: instruction_i = dict_i["instruction"] + "\n"
        sent_all.append(instruction_i + dict_i["output"])
    X = np.stack([embedding_of[s] for s in sent_all]).astype(np.float64)
    from sklearn.metrics.pairwise import euclidean_distances
    S = np.exp(-euclidean_distances(X) * (1 / X.shape[1]))  # submodlib create_kernel, metric 'euclidean'
    best, picks = np.zeros(len(S)), []
    for _ in range(min(fla_num, len(S))):
        gains = np.maximum(S - best[:, None], 0).sum(0)
        gains[picks] = -np.inf
        picks.append(len(gains) - 1 - int(np.argmax(gains[::-1])))
        best = np.maximum(best, S[:, picks[-1]])
    return [new_data[i] for i in picks]


@pytest.mark.parametrize("seed", range(3))
def test_superfiltering_d_equals_a_port_of_do_fla(seed):
    from ifd_nb.superfiltering_d import select_superfiltering_d, superfiltering_d_texts
    rng = np.random.default_rng(seed)
    n = 300
    rows = [{"instruction": f"task {i}", "output": f"answer {i}", "ifd_ppl": float(v)}
            for i, v in enumerate(rng.uniform(0.3, 1.3, n))]
    for i in rng.choice(n, 20, replace=False): rows[i]["ifd_ppl"] = float("nan")
    for i in rng.choice(n, 100, replace=False): rows[i]["input"] = ["", "some context"][int(i) % 2]
    for i in range(0, n, 37): rows[i]["ifd_ppl"] = 0.9  # ties in the ranking
    df = pd.DataFrame(rows).assign(index=range(n))
    texts = superfiltering_d_texts(df)
    vectors = rng.normal(size=(n, 24))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    embedding_of = dict(zip(texts, vectors))
    want = do_fla_port(rows, embedding_of, ifd_num=60, fla_num=15)
    got = select_superfiltering_d(df, lambda ts: np.stack([embedding_of[t] for t in ts]), ifd_num=60, fla_num=15)
    assert [r["instruction"] for r in want] == list(got["instruction"])


def test_superfiltering_d_on_the_command_line(tmp_path, capsys):
    "With no encoder at hand: one line that says how to get it. With an encoder folder: the picks, by ifd_ppl."
    from transformers import BertConfig, BertModel
    from ifd_nb.models import load_tokenizer
    t = TABLE.assign(ifd_ppl=[0.30, 0.95, 0.90, np.nan, 0.60, 1.00, 1.40, 0.80, 0.10, 0.85])
    scores = tmp_path/"scores.jsonl"
    t.to_json(scores, orient="records", lines=True)
    args = ["select", str(scores), "-o", str(tmp_path/"sel.json"), "--rule", "superfiltering-d", "--top", "2"]
    assert main(args + ["--embed-model", str(tmp_path/"nothing")]) == 2
    assert "huggingface-cli download sentence-transformers/all-MiniLM-L6-v2" in capsys.readouterr().err
    tok = load_tokenizer("embedded")
    BertModel(BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(tmp_path/"encoder")
    tok.save_pretrained(tmp_path/"encoder")
    assert main(args + ["--embed-model", str(tmp_path/"encoder"), "--ifd-num", "4", "--device", "cpu"]) == 0
    assert "selected 2 of 10 rows by ifd_ppl (superfiltering-d)" in capsys.readouterr().err
    picked = {r["index"] for r in json.loads((tmp_path/"sel.json").read_text())}
    assert picked <= {1, 2, 9, 7}  # among the 4 highest ifd_ppl below 1


def test_the_card_escapes_what_it_shows_and_knows_its_own_front_matter(tmp_path):
    "Group values and file names that are markup stay text in the card's body; a rerun rewrites the same card."
    from ifd_nb.selection_files import front_matter
    scores = tmp_path/"<b>scores&amp;.parquet"
    TABLE.assign(category=["<script>alert(1)</script>", "a|b"] * 5).to_parquet(scores, index=False)
    for _ in range(2):
        assert main(["select", str(scores), "-o", str(tmp_path/"sel.jsonl"), "--rate", "1", "--group-by",
                     "category", "-q"]) == 0
        assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".md") == ["sel.jsonl.README.md"]
    text = (tmp_path/"sel.jsonl.README.md").read_text()
    body = text.split("\n---\n", 1)[1]
    assert "<script>" not in body and "<b>" not in body and "&lt;script&gt;" in body and "a&#124;b" in body
    assert front_matter(text)["ifd_nb"]["selected"] == len(pd.read_json(tmp_path/"sel.jsonl", lines=True))
