"""The compatibility modes reproduce the reference scripts; the default mode matches float64 exactly."""
import copy, math, random
import numpy as np
import pytest
import torch
from ifd_nb.data import get_template
from ifd_nb.ifd import score_rows, encode_sample, Encoded


CHERRY_SCRIPT_PROMPTS = {  # PROMPT_DICT_* of data_analysis_vic.py, with the bare-pass text and the window's extra
    "alpaca": (("Below is an instruction that describes a task. Write a response that appropriately completes the "
                "request.\n\n### Instruction:\n{instruction}\n\n### Response:"),
               ("Below is an instruction that describes a task, paired with an input that provides further context. "
                "Write a response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n"
                "### Input:\n{input}\n\n### Response:"), "### Response:", 4),
    "wiz": ("{instruction}\n\n### Response:", "{instruction}\n{input}\n\n### Response:", "### Response:", 4),
    "vicuna": (("A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
                "detailed, and polite answers to the user's questions. USER: {instruction} ASSISTANT:"),
               ("A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
                "detailed, and polite answers to the user's questions. USER: {instruction}\nInput:\n{input} "
                "ASSISTANT:"), "ASSISTANT:", 6),
}


def cherry_script(model, tok, data_i, max_length=512, prompt="alpaca"):
    """Cherry_LLM's published pair ported line by line: data_analysis.py --mod cherry (token-wise losses of both texts,
    each cut at its window), then data_by_IFD.py (the losses sliced by re-tokenizing, its skips, mean_2 / mean_1).
    The `_vic` pair is the same with the prompt's bare text and window. None where data_by_IFD skips the row."""
    no_input, with_input, direct_answer_prompt, prompt_specific_len = CHERRY_SCRIPT_PROMPTS[prompt]
    instruct_i, output_i = data_i["instruction"], data_i["output"]
    input_i = data_i["input"] if "input" in data_i.keys() else ""
    direct_answer_text = direct_answer_prompt + output_i
    if input_i == "": promt_to_use = no_input.format_map({"instruction": instruct_i})
    else: promt_to_use = with_input.format_map({"instruction": instruct_i, "input": input_i})
    whole_text, instruct_i = promt_to_use + output_i, promt_to_use

    def token_losses(text, max_length):  # get_perplexity_and_embedding_part_text's `losses`
        input_ids = tok.encode(text, return_tensors="pt", truncation=True, max_length=max_length)
        with torch.no_grad(): logits = model(input_ids).logits
        log_prob_dist = torch.log_softmax(logits[0, :-1], -1)  # the script's log_softmax(logits[0, i-1]), every i at once
        return (-log_prob_dist[torch.arange(len(log_prob_dist)), input_ids[0, 1:]]).tolist()  # its nll_loss per token
    instruct_i_len = tok.encode(instruct_i, return_tensors="pt", truncation=True, max_length=max_length).shape[1]
    loss_1_list = token_losses(direct_answer_text, max_length - instruct_i_len + prompt_specific_len)
    loss_2_list = token_losses(whole_text, max_length)

    def get_loss_part_text(text, target_span, max_length, loss_list_):  # data_by_IFD.py
        input_ids = tok.encode(text, return_tensors="pt", truncation=True, max_length=max_length)
        start_token = len(tok.encode(text[:text.rfind(target_span)]))
        end_token_real = input_ids.shape[1]
        return end_token_real - start_token, np.array(loss_list_[start_token - 1:end_token_real - 1])
    if max_length - instruct_i_len > 0:
        len_1, loss_list_1 = get_loss_part_text(direct_answer_text, output_i, max_length - instruct_i_len
                                                + prompt_specific_len, loss_1_list)
        len_2, loss_list_2 = get_loss_part_text(whole_text, output_i, max_length, loss_2_list)
        if len_1 <= 0 or len_2 <= 0: return None
        if instruct_i_len + len_1 > max_length: return None
        return loss_list_2.mean() / loss_list_1.mean()
    return None


@pytest.fixture(scope="module")
def bos_tokenizer():
    "The embedded tokenizer made to put a BOS token in front of every text, as Llama's does."
    from tokenizers.processors import TemplateProcessing
    from ifd_nb.models import load_tokenizer
    tok = copy.deepcopy(load_tokenizer("embedded"))
    tok.backend_tokenizer.post_processor = TemplateProcessing(single="<|im_start|> $A",
                                                              special_tokens=[("<|im_start|>", 1)])
    return tok


@pytest.mark.parametrize("bos", [False, True])
@pytest.mark.parametrize("mode,prompt", [("cherry", "alpaca"), ("cherry-v2", "wiz"), ("cherry-v2", "vicuna")])
def test_cherry_modes_equal_a_port_of_the_published_scripts(bos_tokenizer, mode, prompt, bos):
    """Truncated rows and whole ones, with a tokenizer that adds BOS and one that adds nothing: the same rows skipped,
    the same IFD to 1e-5 relative (a tiny random model in float32)."""
    from ifd_nb.data import read_rows, demo_data_path
    from ifd_nb.models import tiny_model, load_tokenizer
    tok = bos_tokenizer if bos else load_tokenizer("embedded")
    assert (tok.encode("x")[0] == 1) == bos
    model = tiny_model(seed=7)
    rows = random.Random(3).sample([r for r in read_rows(demo_data_path()) if r["output"].strip()], 12)  # fixed: the
    # counts below depend on which rows are cut, and equality holds for any rows (the other tests draw fresh ones)
    rows = [r | {"output": " ".join([r["output"]] * 20)} if k % 2 else r for k, r in enumerate(rows)]  # half long
    outcomes = {"whole": 0, "truncated": 0, "skipped": 0}
    for max_length in (512, 96):  # 96: the long answers cut, some prompts too long for the window
        ours = score_rows(rows, model, tok, mode=mode, template=prompt, max_length=max_length, batch_size=6,
                          progress=False)
        for row, rec in zip(rows, ours):
            want = cherry_script(model, tok, row, max_length, prompt)
            if want is None:
                assert rec["status"] != "ok", (row, rec)
                outcomes["skipped"] += 1
                continue
            assert rec["status"] == "ok", (row, rec)
            np.testing.assert_allclose(rec["ifd"], want, rtol=1e-5)
            outcomes["truncated" if rec["truncated"] else "whole"] += 1
    assert outcomes["whole"] >= 6 and outcomes["truncated"] + outcomes["skipped"] >= 4, outcomes
    # with BOS the Alpaca-style windows score the cut answers; without it (or with Vicuna's longer bare text here) the
    # scripts skip every cut row: their windows count on the bare text's token count
    assert (outcomes["truncated"] >= 4) == (bos and prompt != "vicuna"), outcomes


def test_cherry_modes_refuse_templates_their_scripts_lack():
    from ifd_nb.settings import ScoringSettings
    with pytest.raises(ValueError, match="cherry-v2 has wiz and vicuna"): ScoringSettings("cherry", "vicuna")
    with pytest.raises(ValueError, match="not 'custom'"): ScoringSettings("cherry-v2", "Q: {instruction}\nA:")
    with pytest.raises(ValueError, match="not 'chat'"): ScoringSettings("cherry", "chat")


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


@pytest.mark.slow
def test_superfiltering_mode_equals_reference(embedded, short_alpaca_rows):
    model, tok = embedded
    rows = random.Random().sample(short_alpaca_rows, 12)  # fresh samples every run
    ours = score_rows(rows, model, tok, mode="superfiltering", batch_size=4, progress=False)
    for row, rec in zip(rows, ours):
        ppl_c, ppl_a = superfiltering_reference(model, tok, row)
        if rec["status"] != "ok":  # e.g. a one-token output: the script's bare pass scores no token and gives NaN
            assert rec["status"] == "answer_truncated_away" and math.isnan(ppl_a)
            continue
        np.testing.assert_allclose(rec["ifd_ppl"], ppl_c / ppl_a, rtol=1e-4)


@pytest.mark.slow
def test_default_mode_token_losses_equal_float64(embedded, short_alpaca_rows):
    "Per-token losses of the scorer (model in float64) equal an independent float64 computation to 1e-5."
    model, tok = embedded
    m64 = copy.deepcopy(model).double()
    rows = random.Random().sample(short_alpaca_rows, 6)
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


@pytest.mark.slow
def test_scores_do_not_depend_on_batch_size_or_order(embedded, short_alpaca_rows):
    model, tok = embedded
    rows = random.Random().sample(short_alpaca_rows, 10)
    a = score_rows(rows, model, tok, batch_size=1, progress=False)
    b = score_rows(rows[::-1], model, tok, batch_size=5, progress=False)[::-1]
    np.testing.assert_allclose([r["ifd"] for r in a], [r["ifd"] for r in b], atol=1e-5)


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_kernel_backends_equal_reference_scorer(backend):
    "The fused path (backbone + kernels) gives the reference scorer's records; 'triton' runs in the interpreter on CPU."
    from ifd_nb.kernels.segments import HAS_TRITON
    from ifd_nb.kernels.launch import interpreting
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
    from ifd_nb.batch_encode import encode_samples, cuts_like_truncation
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
        got, n_cut = encode_samples(tok, rows, mode, max_length=ml), 0
        for row, g in zip(rows, got):
            try: want = encode_sample(tok, row, mode, max_length=ml)
            except SkipSample as s: want = s
            if isinstance(want, SkipSample): assert isinstance(g, SkipSample) and g.status == want.status
            else: assert g == want
            n_cut += want.truncated if isinstance(want, Encoded) else want.status != "missing_field"
        assert ml is None or n_cut > 50  # the short lengths do cut answers (cherry skips the cut rows without BOS)


def test_batched_encodings_equal_the_per_sample_encoders_on_bundled_and_bad_rows():
    """`encode_samples` gives `encode_sample`'s passes or skip for each of 30 demo rows and five bad ones, in every mode
    at its own and a short length, with the embedded tokenizer as it is and made to add BOS (batched path) or EOS
    (per-text path); the stand-in tokenizer is asked only the texts `mode_texts` lists."""
    from tokenizers.processors import TemplateProcessing
    from ifd_nb.batch_encode import BatchEncoded, cuts_like_truncation, encode_samples, mode_texts
    from ifd_nb.data import SkipSample, demo_data_path, prompt_and_answer, read_rows
    from ifd_nb.ifd import encode_cherry, encode_superfiltering
    from ifd_nb.models import load_tokenizer
    tok = load_tokenizer("embedded")

    def with_specials(single):  # the tokenizer adding special tokens around each text, as Llama's (BOS) or others' (EOS)
        t = copy.deepcopy(tok)
        t.backend_tokenizer.post_processor = TemplateProcessing(single=single, special_tokens=[("<|im_start|>", 1),
                                                                                                ("<|im_end|>", 2)])
        return t
    bos_tok, eos_tok = with_specials("<|im_start|> $A"), with_specials("$A <|im_end|>")
    assert [cuts_like_truncation(t) for t in (tok, bos_tok, eos_tok)] == [True, True, False]
    bad = [{"instruction": "Say hi.", "output": ""}, {"output": "no instruction"}, {"instruction": "x " * 600, "output": "y"},
           {"instruction": 3, "output": "z"}, {"instruction": "Name a color.", "input": "", "output": "Blue. " * 400}]
    rows = read_rows(demo_data_path())[:30] + bad
    cases = [(tok, "default", None), (tok, "default", 64), (tok, "cherry", None), (tok, "cherry", 96),
             (tok, "superfiltering", None), (tok, "superfiltering", 64), (bos_tok, "cherry", 96),
             (bos_tok, "superfiltering", 64), (eos_tok, "cherry", 96)]
    for t, mode, ml in cases:
        for row, got in zip(rows, encode_samples(t, rows, mode, max_length=ml)):
            try: want = encode_sample(t, row, mode, max_length=ml)
            except SkipSample as s: want = s
            if isinstance(want, SkipSample): assert isinstance(got, SkipSample) and got.status == want.status
            else: assert got == want
    assert [getattr(g, "status", "ok") for g in encode_samples(tok, bad)] == [
        "empty_answer", "missing_field", "ok", "non_text", "ok"]
    p, a = prompt_and_answer(rows[0], "alpaca", tok)
    for mode, fn in (("cherry", encode_cherry), ("superfiltering", encode_superfiltering)):
        stand_in = BatchEncoded(tok, mode_texts(mode, p, a))
        stand_in.tokenizer = None  # a text not batched would fail here
        assert fn(stand_in, p, a, 64) == fn(tok, p, a, 64)


def test_reflection_mode_scores_both_sides_and_selects_the_script_s_variants(tmp_path, tiny_model_folder, capsys):
    "`--mode reflection` on four variants of fresh rows, then `--rule reflection`: get_select_data.py's picks."
    import json, random
    import pandas as pd
    from ifd_nb.cli import main
    words = "the a cat sat on mat dog ran far near fire ice warm cold red blue sky sea".split()
    text = lambda n: " ".join(random.choices(words, k=n)).capitalize() + "."
    base = [{"instruction": text(random.randint(3, 9)), "output": text(random.randint(2, 20))} for _ in range(12)]
    variants = {"ori": base, "q": [dict(r, instruction=text(6)) for r in base],
                "a": [dict(r, output=text(12)) for r in base], "qa": [dict(instruction=text(6), output=text(12))
                                                                       for _ in base]}
    tables = {}
    for name, rows in variants.items():
        (tmp_path/f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        out = tmp_path/f"{name}.parquet"
        assert main(["score", str(tmp_path/f"{name}.jsonl"), "-o", str(out), "--model", str(tiny_model_folder),
                     "--mode", "reflection", "-q"]) == 0
        tables[name] = pd.read_parquet(out)
    t = tables["ori"]
    assert (t["mode"] == "reflection").all() and t["template"].iloc[0] == "vicuna" and t["max_length"].iloc[0] == 2048
    np.testing.assert_allclose(t.rifd_ppl, np.exp(t.loss_q_cond - t.loss_q_bare), rtol=1e-6)
    np.testing.assert_allclose(t.rifd, t.loss_q_cond / t.loss_q_bare, rtol=1e-6)
    sel = tmp_path/"sel.jsonl"
    assert main(["select", str(tmp_path/"ori.parquet"), "-o", str(sel), "--rule", "reflection", "--variants",
                 ",".join(str(tmp_path/f"{n}.parquet") for n in ("q", "a", "qa"))]) == 0
    def script(o, q, a, qa):  # get_select_data.py's loop, as ported in the reflection notebook
        keep = []
        for i in range(len(o)):
            if q[i]["ifd_ppl"] > o[i]["ifd_ppl"]:
                if qa[i]["rifd_ppl"] < q[i]["rifd_ppl"] and qa[i]["rifd_ppl"] < 1 and qa[i]["ifd_ppl"] < 1:
                    keep.append(qa[i])
            elif a[i]["rifd_ppl"] < o[i]["rifd_ppl"] and a[i]["rifd_ppl"] < 1 and a[i]["ifd_ppl"] < 1: keep.append(a[i])
        return keep
    want = script(*(tables[n].to_dict("records") for n in ("ori", "q", "a", "qa")))
    got = [json.loads(line) for line in sel.read_text().splitlines()]
    assert [(r["index"], r["output"]) for r in got] == [(r["index"], r["output"]) for r in want]
    code = main(["select", str(tmp_path/"ori.parquet"), "-o", str(sel), "--rule", "reflection", "--top", "3"])
    assert code == 2 and "--variants Q,A,QA" in capsys.readouterr().err
