"""The compatibility modes reproduce the reference scripts; the default mode matches float64 exactly."""
import copy, math, random
import numpy as np
import pytest
import torch
from ifd_nb.data import get_template
from ifd_nb.ifd import score_rows, encode_sample


def cherry_reference(model, tok, row, max_length=512):
    """Cherry_LLM's method written out directly: joint tokenization, rfind, `model(labels=...)`, batch 1.
    Returns (mean loss conditioned, mean loss direct) or None where its data_by_IFD.py skips the sample."""
    prompt = get_template("alpaca").render(row["instruction"], row.get("input", ""))
    output = row["output"]
    whole, direct = prompt + output, "### Response:" + output
    instruct_len = len(tok.encode(prompt, truncation=True, max_length=max_length))
    def part(text, ml):
        ids = tok.encode(text, return_tensors="pt", truncation=True, max_length=ml)
        start = len(tok.encode(text[:text.rfind(output)]))
        labels = ids.clone(); labels[0, :start] = -100
        with torch.no_grad(): loss = model(ids, labels=labels).loss
        return ids.shape[1] - start, float(loss)
    if max_length - instruct_len - 2 <= 4: return None
    len_1, loss_1 = part(direct, max_length - instruct_len - 2)
    len_2, loss_2 = part(whole, max_length)
    if len_1 == 0 or len_2 == 0 or instruct_len + len_1 > max_length: return None
    return loss_2, loss_1


def test_cherry_mode_equals_reference_on_100_alpaca_samples(embedded, alpaca_rows):
    model, tok = embedded
    rows = alpaca_rows[:100]
    ours = score_rows(rows, model, tok, mode="cherry", batch_size=8, progress=False)
    n_ok = 0
    for row, rec in zip(rows, ours):
        ref = cherry_reference(model, tok, row)
        if ref is None:
            assert rec["status"] != "ok"; continue
        assert rec["status"] == "ok"
        np.testing.assert_allclose([rec["loss_cond"], rec["loss_bare"], rec["ifd"]],
                                   [ref[0], ref[1], ref[0] / ref[1]], rtol=1e-4)
        n_ok += 1
    assert n_ok >= 95


def superfiltering_reference(model, tok, row, max_length=1024):
    "Superfiltering's data_analysis.py written out directly (template 'none'): (ppl conditioned, ppl direct)."
    inp = row.get("input", "")
    prompt = f"{row['instruction']}\n{inp}\n" if inp else f"{row['instruction']}\n"
    output, whole = row["output"], prompt + row["output"]
    instruct_len = len(tok.encode(prompt, truncation=True, max_length=max_length))
    ids = tok.encode(output, return_tensors="pt", truncation=True, max_length=max_length - instruct_len + 1)
    with torch.no_grad(): l_alone = float(model(ids, labels=ids).loss) if ids.shape[1] > 1 else math.nan
    ids = tok.encode(whole, return_tensors="pt", truncation=True, max_length=max_length)
    start = len(tok.encode(whole[:whole.rfind(output)]))
    labels = ids.clone(); labels[0, :start] = -100
    with torch.no_grad(): l_cond = float(model(ids, labels=labels).loss)
    return math.exp(l_cond), math.exp(l_alone)


def test_superfiltering_mode_equals_reference(embedded, alpaca_rows):
    model, tok = embedded
    rows = random.Random().sample(alpaca_rows, 12)  # fresh samples every run
    ours = score_rows(rows, model, tok, mode="superfiltering", batch_size=4, progress=False)
    for row, rec in zip(rows, ours):
        ppl_c, ppl_a = superfiltering_reference(model, tok, row)
        if rec["status"] != "ok":  # e.g. a one-token output: the script's bare pass scores no token and gives NaN
            assert rec["status"] == "answer_truncated_away" and math.isnan(ppl_a)
            continue
        np.testing.assert_allclose(rec["ifd_ppl"], ppl_c / ppl_a, rtol=1e-4)


def test_default_mode_token_losses_equal_float64(embedded, alpaca_rows):
    "Per-token losses of the scorer (model in float64) equal an independent float64 computation to 1e-5."
    model, tok = embedded
    m64 = copy.deepcopy(model).double()
    rows = random.Random().sample(alpaca_rows, 6)
    recs = score_rows(rows, m64, tok, token_losses=True, batch_size=3, progress=False)
    for row, rec in zip(rows, recs):
        e = encode_sample(tok, row)
        # independent: the scored ids are the answer tokenized alone (both passes), then full log_softmax in float64.
        # (ids, not decoded text: one Alpaca answer, row 2164, holds control characters that decode does not give back)
        answer = tok(row["output"], add_special_tokens=False).input_ids
        scored = e.cond_ids[e.cond_start:]
        assert scored == answer[:len(scored)] and (e.truncated or len(scored) == len(answer))
        assert e.bare_ids[e.bare_start:] == scored
        for ids, start, ours in ((e.cond_ids, e.cond_start, rec["token_losses_cond"]),
                                 (e.bare_ids, e.bare_start, rec["token_losses_bare"])):
            with torch.no_grad(): lp = torch.log_softmax(m64(torch.tensor([ids])).logits[0], -1)
            ref = -lp[torch.arange(start - 1, len(ids) - 1), torch.tensor(ids[start:])]
            np.testing.assert_allclose(ours, ref.numpy(), rtol=0, atol=1e-5)


def test_scores_do_not_depend_on_batch_size_or_order(embedded, alpaca_rows):
    model, tok = embedded
    rows = random.Random().sample(alpaca_rows, 10)
    a = score_rows(rows, model, tok, batch_size=1, progress=False)
    b = score_rows(rows[::-1], model, tok, batch_size=5, progress=False)[::-1]
    np.testing.assert_allclose([r["ifd"] for r in a], [r["ifd"] for r in b], atol=1e-5)


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_kernel_backends_equal_reference_scorer(backend):
    "The fused path (backbone + kernels) gives the reference scorer's records; 'triton' runs in the interpreter on CPU."
    from ifd_nb.kernels import HAS_TRITON
    from ifd_nb.compile_facts import interpreting
    from ifd_nb.models import tiny_model, load_tokenizer
    if backend == "triton" and not (HAS_TRITON and (interpreting() or torch.cuda.is_available())):
        pytest.skip("triton needs a GPU or TRITON_INTERPRET=1")
    tok = load_tokenizer("embedded")
    model = tiny_model(seed=random.randrange(1000))
    rows = [{"instruction": "Name a colour.", "output": "Blue."}, {"instruction": "Add 2 and 3.", "output": "2 plus 3 is 5."},
            {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello there!"}]}]
    ref = score_rows(rows, model, tok, backend="reference", token_losses=True, progress=False)
    ours = score_rows(rows, model, tok, backend=backend, token_losses=True, progress=False)
    for a, b in zip(ref, ours):
        np.testing.assert_allclose(b["token_losses_cond"], a["token_losses_cond"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(b["token_losses_bare"], a["token_losses_bare"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(b["ifd"], a["ifd"], rtol=1e-5)


@pytest.mark.parametrize("specials", ["none", "bos", "eos"])
def test_batched_mode_encodings_equal_the_per_sample_encoders(alpaca_rows, specials):
    """The engine's batched tokenizing (`encode_samples`) gives each compatibility mode's per-sample encoder's passes,
    skips and truncation flags on 300 random Alpaca rows, at the modes' lengths and short ones that cut most answers,
    for the embedded tokenizer as it is and made to add BOS in front (batched path) or EOS behind (per-text path)."""
    from tokenizers.processors import TemplateProcessing
    from ifd_nb.ifd import encode_samples, cuts_like_truncation
    from ifd_nb.data import SkipSample
    from ifd_nb.models import load_tokenizer
    tok = load_tokenizer("embedded")
    if specials != "none":
        tok = copy.deepcopy(tok)
        single = {"bos": "<|im_start|> $A", "eos": "$A <|im_end|>"}[specials]
        tok.backend_tokenizer.post_processor = TemplateProcessing(single=single, special_tokens=[("<|im_start|>", 1), ("<|im_end|>", 2)])
    assert cuts_like_truncation(tok) == (specials != "eos")
    rows = random.Random().sample(alpaca_rows, 300)
    for mode, ml in (("cherry", None), ("cherry", 160), ("superfiltering", None), ("superfiltering", 160)):
        got, n_trunc = encode_samples(tok, rows, mode, max_length=ml), 0
        for row, g in zip(rows, got):
            try: want = encode_sample(tok, row, mode, max_length=ml)
            except SkipSample as s: want = s
            if isinstance(want, SkipSample): assert isinstance(g, SkipSample) and g.status == want.status
            else: assert g == want; n_trunc += want.truncated
        assert ml is None or n_trunc > 50  # the short lengths do cut answers
