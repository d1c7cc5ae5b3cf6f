"""Per-turn IFD: every answer of a conversation from one conditioned pass equals scoring each prefix of the
conversation as its own row (float32, 1e-5), on rows cut by max_length and rows that are not; the conditioned pass
runs once per conversation; the turn rules; refusals."""
import copy, random
import numpy as np
import pandas as pd
import pytest
import ifd_nb.engine as engine
from ifd_nb.cli import main
from ifd_nb.engine import score_dataset
from ifd_nb.history import context_room, cut_context
from ifd_nb.ifd import encode_sample
from ifd_nb.turns import encode_turns
from ifd_nb.models import load_tokenizer, tiny_model

WORDS = "the a red blue cat dog runs sleeps quickly over under river stone light seven eleven why how".split()


def sentence(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def conversations(n=6, seed=None):
    "Fresh random conversations of 1 to 3 exchanges, one with a system turn."
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        msgs = [{"role": "system", "content": "Answer briefly."}] if i == 0 else []
        for _ in range(rng.randint(1, 3)):
            msgs += [{"role": "user", "content": sentence(rng, rng.randint(3, 12))},
                     {"role": "assistant", "content": sentence(rng, rng.randint(1, 25))}]
        rows.append({"messages": msgs})
    return rows


def prefixes(row):
    "Each prefix of a conversation that ends at an assistant turn, as its own row."
    msgs = row["messages"]
    return [{"messages": msgs[:i + 1]} for i, m in enumerate(msgs) if m["role"] == "assistant"]


@pytest.fixture(scope="module")
def tiny():
    return tiny_model(), load_tokenizer("embedded")


def score(rows, model, tok, **kw):
    return score_dataset(rows, model, tok, progress=False, verbose=False, **kw)


# 90 tokens: later turns cut or past the limit; with cut_history they lose their oldest context instead
@pytest.mark.parametrize("max_length,cut", [(2048, False), (90, False), (90, True), (40, True)])
def test_every_turn_equals_its_prefix_scored_as_a_row(tiny, max_length, cut):
    model, tok = tiny
    rows = conversations()
    by_turn = score(rows, model, tok, turns="weighted", max_length=max_length, cut_history=cut)
    flat = score([p for r in rows for p in prefixes(r)], model, tok, max_length=max_length, cut_history=cut)
    got = pd.DataFrame([t for ts in by_turn.turns for t in ts])
    assert list(got.status) == list(flat.status) and "ok" in set(got.status)
    if max_length == 90 and not cut: assert {"prompt_too_long"} <= set(got.status) or got.truncated.any()
    if cut: assert got.context_truncated.any() and "prompt_too_long" not in set(got.status)
    for c in ("n_prompt_tokens", "n_answer_tokens", "truncated", "context_truncated"):
        assert list(got[c]) == list(flat[c]), c
    ok = got.status == "ok"
    for c in ("loss_cond", "loss_bare", "ifd"):
        np.testing.assert_allclose(got[c][ok], flat[c][ok], rtol=1e-5, atol=0)
    last = score(rows, model, tok, turns="last", max_length=max_length, cut_history=cut)  # 'last': the row as today
    plain = score(rows, model, tok, max_length=max_length, cut_history=cut)
    assert list(last.status) == list(plain.status)
    assert list(last.context_truncated) == list(plain.context_truncated)
    np.testing.assert_allclose(last.ifd, plain.ifd, rtol=1e-5)


def test_the_conditioned_pass_runs_once_per_conversation(tiny, monkeypatch):
    model, tok = tiny
    rows = conversations(5, seed=3)
    seen = []
    real = engine.chunk_sequences
    monkeypatch.setattr(engine, "chunk_sequences", lambda chunk: seen.extend(real(chunk)) or real(chunk))
    df = score(rows, model, tok, turns="mean")
    cond = [tag for tag, _, _ in seen if tag[1] == 0]
    assert sorted(i for i, _ in cond) == list(range(len(rows)))  # one conditioned pass per conversation
    n_answers = [sum(m["role"] == "assistant" for m in r["messages"]) for r in rows]
    assert len(seen) - len(cond) == sum(n_answers)  # one bare pass per answer
    assert [len(t) for t in df.turns] == n_answers


def test_cut_context_drops_whole_turns_then_tokens():
    parts = [[1, 2, 3], [4, 5], [6, 7, 8, 9]]
    assert cut_context(parts, 9) == ([1, 2, 3, 4, 5, 6, 7, 8, 9], False)  # it fits: nothing cut
    assert cut_context(parts, 8) == ([4, 5, 6, 7, 8, 9], True)  # the oldest turn whole, not 1 token of it
    assert cut_context(parts, 6) == ([4, 5, 6, 7, 8, 9], True)
    assert cut_context(parts, 5) == ([6, 7, 8, 9], True)
    assert cut_context(parts, 3) == ([7, 8, 9], True)  # the newest piece alone too long: its oldest tokens
    assert cut_context(parts, 0) == ([], True)
    assert context_room(100, 30) == 70 and context_room(100, 80) == 50  # room for the answer, at least half


def test_cut_history_keeps_the_answer_and_its_nearest_context(tiny):
    model, tok = tiny
    long_chat = {"messages": [{"role": "user", "content": "Tell me about rivers. " * 30},
                              {"role": "assistant", "content": "Rivers flow to the sea. " * 20},
                              {"role": "user", "content": "And the last word of this question is stone?"},
                              {"role": "assistant", "content": "Yes, stone."}]}
    long_alpaca = {"instruction": "Repeat after me. " * 80 + "Now say hello.", "output": "Hello."}
    rows = [long_chat, long_alpaca, conversations(1, seed=4)[0]]
    plain = score(rows, model, tok, max_length=64)
    assert list(plain.status[:2]) == ["prompt_too_long"] * 2 and not plain.context_truncated.any()  # the default
    cut = score(rows, model, tok, max_length=64, cut_history=True)
    assert list(cut.status) == ["ok"] * 3 and list(cut.context_truncated) == [True, True, False]
    assert list(cut.truncated) == [False, False, False] and (cut.n_prompt_tokens <= 64 - cut.n_answer_tokens).all()
    assert set(cut.cut_history) == {True} and "cut_history" not in plain
    e = encode_sample(tok, long_chat, max_length=64, cut_history=True)
    context = tok.decode(e.cond_ids[:e.cond_start])
    assert "rivers" not in context.lower() and context.endswith("the last word of this question is stone?<|im_end|>\n"
                                                                "<|im_start|>assistant\n")  # the whole turn went first
    e = encode_sample(tok, long_alpaca, max_length=64, cut_history=True)
    assert tok.decode(e.cond_ids[:e.cond_start]).rstrip().endswith("Now say hello.<|im_end|>\n<|im_start|>assistant")
    np.testing.assert_allclose(cut.ifd[2], plain.ifd[2], rtol=1e-6)  # a row that fits is scored as before


def test_turn_rules(tiny):
    model, tok = tiny
    rows = conversations(4, seed=7)
    per = {rule: score(rows, model, tok, turns=rule) for rule in ("weighted", "mean", "min", "last")}
    for i, turns in enumerate(per["mean"].turns):
        t = pd.DataFrame(list(turns))
        n = t.n_answer_tokens
        np.testing.assert_allclose(per["mean"].ifd[i], t.ifd.mean(), rtol=1e-9)
        np.testing.assert_allclose(per["min"].ifd[i], t.ifd.min(), rtol=1e-9)
        np.testing.assert_allclose(per["last"].ifd[i], t.ifd.iloc[-1], rtol=1e-9)
        weighted = (n * t.loss_cond).sum() / (n * t.loss_bare).sum()
        np.testing.assert_allclose(per["weighted"].ifd[i], weighted, rtol=1e-5)
        assert per["weighted"].n_answer_tokens[i] == n.sum()


def test_a_template_that_rewrites_earlier_turns_is_a_named_skip(tiny):
    _, tok = tiny
    odd = copy.deepcopy(tok)
    odd.chat_template = ("{% for m in messages[-1:] %}{{ m['content'] }}{% endfor %}"
                         "{% if add_generation_prompt %} A:{% endif %}")  # only the last message is shown
    row = {"messages": conversations(3, seed=5)[2]["messages"] * 2}  # two exchanges at least
    with pytest.raises(Exception, match="turns_unaligned"): encode_turns(odd, row, "auto")
    e = encode_sample(odd, row)  # scored by its last answer, the row keeps the prompt as the template renders it
    assert odd.decode(e.cond_ids[:e.cond_start]) == odd.apply_chat_template(row["messages"][:-1], tokenize=False,
                                                                          add_generation_prompt=True)


def test_turns_refusals(tmp_path, capsys):
    rows = conversations(2, seed=2)
    pd.DataFrame(rows).to_json(tmp_path/"c.jsonl", orient="records", lines=True)
    args = ["score", str(tmp_path/"c.jsonl"), "-o", str(tmp_path/"s.parquet"), "--turns", "mean", "-q"]
    assert main([*args, "--mode", "cherry"]) == 2
    assert main([*args, "--template", "alpaca"]) == 2
    assert main([*args[:-3], "--cut-history", "--mode", "superfiltering", "-q"]) == 2
    err = capsys.readouterr().err
    assert "turns is for the default mode" in err and "scoring every turn needs a chat template" in err
    assert "cut_history is for the default mode" in err
    assert not (tmp_path/"s.parquet").exists()


def test_select_answers_of_a_table_scored_by_turn(tmp_path, tiny_model_folder, capsys):
    from ifd_nb.data import chat_demo_path
    scores = tmp_path/"s.jsonl"
    assert main(["score", str(chat_demo_path()), "-o", str(scores), "--model", str(tiny_model_folder), "--turns", "min",
                 "-q"]) == 0
    table = pd.read_json(scores, lines=True)
    n_answers = sum(len(t) for t in table.turns)
    assert main(["select", str(scores), "-o", str(tmp_path/"a.jsonl"), "--per-turn", "--rule", "random",
                 "--rate", "1"]) == 0
    picked = pd.read_json(tmp_path/"a.jsonl", lines=True)
    assert len(picked) == n_answers  # every answer a row
    for _, r in picked.iterrows():  # the conversation up to the answer, with that answer's own score
        assert len(r.messages) == 2 * r.turn and r.ifd == table.turns[r["index"]][r.turn - 1]["ifd"]
    assert main(["select", str(scores), "-o", str(tmp_path/"b.jsonl"), "--per-turn", "--top", "5",
                 "--format", "messages"]) == 0
    assert [len(m) % 2 for m in pd.read_json(tmp_path/"b.jsonl", lines=True).messages] == [0] * 5
    plain = tmp_path/"plain.jsonl"
    assert main(["score", str(chat_demo_path()), "-o", str(plain), "--model", str(tiny_model_folder), "-q"]) == 0
    assert main(["select", str(plain), "-o", str(tmp_path/"c.jsonl"), "--per-turn", "--top", "5"]) == 2
    assert "no per-turn scores" in capsys.readouterr().err
