"""Packed rows (`packed_attention`): exact against single sequences and the reference scorer for grouped-query Llama
and GPT-2, refusals instead of wrong answers (no boundaries, sliding windows, soft-capping), and the engine's fallback
to padded batches where a model cannot take packed rows."""
import random
import numpy as np
import pandas as pd
import pytest
import torch
from ifd_nb.data import demo_data_path, read_rows
from ifd_nb.engine import score_dataset
from ifd_nb.forward import (PACKED_ATTENTION, attention_implementation, batch_layout, packed_attention, register_packed_attention,
                            sequence_token_losses, packing_plan, packed_rows_agree)
from ifd_nb.ifd import score_rows
from ifd_nb.models import load_tokenizer, tiny_gpt2, tiny_model


@pytest.fixture(scope="module")
def tok(): return load_tokenizer("embedded")


@pytest.mark.parametrize("make", [lambda: tiny_model(n_kv_heads=2, seed=random.randrange(1000)),
                                  lambda: tiny_gpt2(vocab_size=49152, seed=random.randrange(1000))], ids=["llama_gqa", "gpt2"])
def test_engine_packed_equals_reference_scorer(make, tok):
    model, rows = make(), read_rows(demo_data_path())[:40]
    assert packing_plan(model) == PACKED_ATTENTION  # CPU: packed by default
    ref = pd.DataFrame(score_rows(rows, model, tok, backend="reference", progress=False))
    for bt in (512, 4096):
        df = score_dataset(rows, model, tok, batch_tokens=bt, progress=False, verbose=False)
        assert list(df.status) == list(ref.status)
        np.testing.assert_allclose(df.ifd, ref.ifd, rtol=0, atol=1e-5)
    assert model.config._attn_implementation == "sdpa"  # restored after the run


def test_packed_losses_equal_padded_on_random_lengths():
    model = tiny_model(vocab_size=1000, n_kv_heads=1, n_heads=4)
    rng = random.Random()
    seqs = [([rng.randrange(1000) for _ in range(n)], rng.randint(1, n)) for n in (rng.randint(1, 60) for _ in range(9))]
    padded = sequence_token_losses(model, seqs, backend="torch")
    with attention_implementation(model, PACKED_ATTENTION):
        packed = sequence_token_losses(model, seqs, backend="torch", packed=True)
    for a, b in zip(packed, padded): torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def _call(**kw):
    q = torch.randn(1, 4, 10, 8)
    return packed_attention(torch.nn.Module(), q, q, q, None, **kw)


def test_packed_attention_refuses_what_it_cannot_compute():
    from ifd_nb.forward import packed_boundaries
    b = packed_boundaries([4, 6])
    with pytest.raises(ValueError, match="boundaries"): _call()
    with pytest.raises(ValueError, match="sliding window"): _call(**b, sliding_window=5)
    with pytest.raises(ValueError, match="soft-capping"): _call(**b, softcap=30.0)
    out, _ = _call(**b, sliding_window=6)  # a window no sequence exceeds changes nothing
    assert out.shape == (1, 10, 4, 8)


def test_windowed_model_is_scored_padded(tok):
    from transformers import MistralConfig, MistralForCausalLM
    torch.manual_seed(0)
    cfg = MistralConfig(vocab_size=49152, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                        num_key_value_heads=2, sliding_window=8)
    model = MistralForCausalLM(cfg).eval()
    assert packing_plan(model) is None  # auto: a windowed model is not packed
    assert not packed_rows_agree(model) and packing_plan(model, True) is None  # asked: the check refuses it, padded
    rows = read_rows(demo_data_path())[:12]
    ref = pd.DataFrame(score_rows(rows, model, tok, backend="reference", progress=False))
    df = score_dataset(rows, model, tok, packing=True, progress=False, verbose=False)  # falls back to padded batches
    np.testing.assert_allclose(df.ifd, ref.ifd, rtol=0, atol=1e-5)


def test_register_is_idempotent():
    assert register_packed_attention() and register_packed_attention()


def test_a_second_definition_of_the_packed_operator_leaves_the_first_alone():
    """A notebook's copy of the forward module (nbdev_test runs several notebooks in one process) must not take over
    the operator the module registered: PyTorch lets a second `custom_op` of one name replace every holder's function,
    and collecting one definition unregisters the operator under the other."""
    from ifd_nb.forward import _as_operator, packed_causal_attention
    q = torch.randn(5, 2, 4)
    cu = torch.tensor([0, 2, 5], dtype=torch.int32)
    before = packed_causal_attention(q, q, q, cu, 3, None)
    copy = _as_operator(lambda q, k, v, cu, max_len, scale=None: q * 0, lambda *a, **k: a[0], "packed_causal_attention")
    assert torch.equal(packed_causal_attention(q, q, q, cu, 3, None), before)  # the module's own function still
    assert torch.equal(copy(q, q, q, cu, 3, None), before)  # the copy is the process's one definition
