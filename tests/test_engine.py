"""The engine: equal to the reference scorer, resumable after SIGKILL (SIGTERM and Ctrl-C first write what is in
flight), corrupt shards recomputed (also by two ranks resuming together) and killed writes' temporary files removed,
rows tokenized a chunk at a time, each rank only its own, two processes = one (under torchrun and accelerate launch),
compiled = eager and compiled once, the float16 overflow guard, one host thread while a model on GPUs scores."""
import os, random, shutil, subprocess, sys
import numpy as np
import pandas as pd
import pytest
from ifd_nb.data import demo_data_path, read_rows
from ifd_nb.engine import score_dataset
from ifd_nb.ifd import score_rows

EXE = shutil.which("ifd_nb")


@pytest.mark.slow
def test_engine_equals_reference_scorer_on_real_data(embedded, short_alpaca_rows):
    model, tok = embedded
    rows = random.Random().sample(short_alpaca_rows, 16)
    ref = pd.DataFrame(score_rows(rows, model, tok, backend="reference", progress=False))
    for bt, packing in ((1024, False), (8192, False), (2048, True)):
        df = score_dataset(rows, model, tok, batch_tokens=bt, packing=packing, progress=False, verbose=False)
        assert list(df.status) == list(ref.status)
        np.testing.assert_allclose(df.ifd, ref.ifd, rtol=0, atol=1e-5)


def test_default_budget_is_said_and_scores_as_any_other(embedded, capsys):
    model, tok = embedded
    rows = read_rows(demo_data_path())[:6]
    df = score_dataset(rows, model, tok, progress=False, verbose=True)
    assert "of 2,048 token positions" in capsys.readouterr().out  # `default_batch_tokens` for SmolLM2-135M on a CPU
    whole = score_dataset(rows, model, tok, batch_tokens=65536, progress=False, verbose=False)  # all rows in one batch
    np.testing.assert_allclose(df.ifd, whole.ifd, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="positive"): score_dataset(rows, model, tok, batch_tokens=0, progress=False, verbose=False)

def _score(inp, out, *extra, env=None):
    cmd = [EXE, "score", str(inp), "-o", str(out), "--model", "embedded", "--limit", "40", "-q", "--batch-tokens", "2048", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=900)


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_table(tmp_path):
    inp = demo_data_path()
    # chunks (and shards) of 8 samples make the kill land mid-run (with the next chunk in flight); the uninterrupted
    # run uses the same chunking
    small = {"IFD_NB_CHUNK_ROWS": "8"}
    full = _score(inp, tmp_path/"full.parquet", env=small)
    assert full.returncode == 0, full.stderr
    env = {"IFD_NB_KILL_AFTER_SHARDS": "3", **small}
    killed = _score(inp, tmp_path/"r.parquet", env=env)
    assert killed.returncode == -9, (killed.returncode, killed.stderr[-500:])
    assert not (tmp_path/"r.parquet").exists()
    n_shards = len(list((tmp_path/"r.parquet.shards").glob("shard-*.parquet")))
    assert n_shards == 3
    resumed = _score(inp, tmp_path/"r.parquet", env=small)
    assert resumed.returncode == 0, resumed.stderr
    assert "already scored" in resumed.stdout + resumed.stderr
    a, b = pd.read_parquet(tmp_path/"full.parquet"), pd.read_parquet(tmp_path/"r.parquet")
    assert len(b) == 40 and list(b["index"]) == list(range(40))
    pd.testing.assert_frame_equal(a, b, check_exact=True)  # exactly the same table: no row lost, none duplicated


@pytest.mark.slow
def test_sigterm_writes_the_chunks_in_flight_then_resume_gives_the_same_table(tmp_path):
    """SIGTERM (a scheduler's preemption) while shard 3 is written: the engine writes chunk 3 and the queued chunk 4
    before it stops (SIGKILL at the same point keeps 3 chunks), exits 130, and the resumed run equals an uninterrupted one."""
    from ifd_nb.store import ShardStore
    inp, small = demo_data_path(), {"IFD_NB_CHUNK_ROWS": "8"}
    assert all(r.get("output", "").strip() for r in read_rows(inp)[:40])  # no skip shards: shards are chunks
    termed = _score(inp, tmp_path/"t.parquet", env={"IFD_NB_KILL_AFTER_SHARDS": "3", "IFD_NB_KILL_SIGNAL": "TERM", **small})
    assert termed.returncode == 130 and "interrupted" in termed.stderr, (termed.returncode, termed.stderr[-500:])
    assert len(ShardStore(tmp_path/"t.parquet.shards").load()) == 32
    assert _score(inp, tmp_path/"t.parquet", env=small).returncode == 0
    assert _score(inp, tmp_path/"full.parquet", env=small).returncode == 0
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path/"full.parquet"), pd.read_parquet(tmp_path/"t.parquet"), check_exact=True)


@pytest.fixture
def counted(monkeypatch):
    """The tiny model, the tokenizer, 32 shuffled rows (two that cannot be scored), their scores in one process, and
    the sizes of the row lists `encode_samples` gets from now on."""
    import ifd_nb.engine as E
    from ifd_nb.models import load_tokenizer, tiny_model
    tok, model = load_tokenizer("embedded"), tiny_model()
    rows = read_rows(demo_data_path())[:30] + [{"instruction": "no answer", "output": ""}, {"instruction": "x", "output": "y"}]
    random.Random().shuffle(rows)
    whole = score_dataset(rows, model, tok, progress=False, verbose=False)
    assert "ok" in set(whole.status) and len(set(whole.status)) > 1
    real, sizes = E.encode_samples, []
    monkeypatch.setattr(E, "encode_samples", lambda tok_, rows_, *a: sizes.append(len(rows_)) or real(tok_, rows_, *a))
    return model, tok, rows, whole, sizes


def test_rows_are_tokenized_a_chunk_at_a_time_with_the_same_scores(counted):
    """Rows are tokenized a chunk at a time, as the chunk before is computed (only chunks in flight hold token ids):
    never more than `chunk_rows` rows at once, and the scores equal one big chunk's, skipped rows included."""
    model, tok, rows, whole, sizes = counted
    chunked = score_dataset(rows, model, tok, chunk_rows=7, progress=False, verbose=False)
    assert sizes == [7, 7, 7, 7, 4]
    assert list(chunked.status) == list(whole.status)
    np.testing.assert_allclose(chunked.ifd, whole.ifd, rtol=0, atol=1e-5)


class _Rank:
    "A stand-in for accelerate's PartialState: process `rank` of `world` on the CPU."
    def __init__(self, rank, world): self.process_index, self.num_processes, self.device = rank, world, "cpu"
    def wait_for_everyone(self): pass


def test_each_rank_tokenizes_only_its_share(counted, monkeypatch, tmp_path):
    """Rank 1 of 2 tokenizes and scores half of the rows, no more; one process resuming from its shards tokenizes and
    scores just the other half, and the merged table equals a single uninterrupted process's."""
    import ifd_nb.engine as E
    model, tok, rows, whole, sizes = counted
    monkeypatch.setattr(E, "distributed_state", lambda device=None: _Rank(1, 2))
    monkeypatch.setattr(E, "all_keys", lambda rows, spec, state: E.sample_keys(rows, spec))  # no process group to exchange keys in
    kw = dict(shard_dir=tmp_path, chunk_rows=3, progress=False, verbose=False)
    assert score_dataset(rows, model, tok, **kw) is None  # rank 1 writes its shards; rank 0 merges
    assert sizes == [3, 3, 3, 3, 3, 1]  # 16 of the 32 rows, in chunks of 3
    assert {p.name[:10] for p in tmp_path.glob("shard-*.parquet")} == {"shard-r001"}
    sizes.clear()
    monkeypatch.setattr(E, "distributed_state", lambda device=None: _Rank(0, 1))
    merged = score_dataset(rows, model, tok, **kw)
    assert sizes == [3, 3, 3, 3, 3, 1]  # the 16 rows rank 1 did not take, and nothing else
    assert list(merged.status) == list(whole.status)
    np.testing.assert_allclose(merged.ifd, whole.ifd, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_corrupt_shard_is_recomputed_and_stale_temporaries_removed(tmp_path):
    inp = demo_data_path()
    assert _score(inp, tmp_path/"s.parquet", env={"IFD_NB_CHUNK_ROWS": "16"}).returncode == 0
    a = pd.read_parquet(tmp_path/"s.parquet")
    shards = sorted((tmp_path/"s.parquet.shards").glob("shard-*.parquet"))
    shards[-1].write_bytes(shards[-1].read_bytes()[:100])  # truncate the last shard
    stale, fresh = tmp_path/"s.parquet.shards"/".shard-x.parquet.tmp", tmp_path/"s.parquet.shards"/".shard-y.parquet.tmp"
    for p in (stale, fresh): p.write_bytes(shards[0].read_bytes()[:100])  # what killed writes leave
    os.utime(stale, (0, 0))  # untouched for decades: no write is in progress
    r = _score(inp, tmp_path/"s.parquet", env={"IFD_NB_CHUNK_ROWS": "16"})
    assert r.returncode == 0 and "set aside unreadable shard" in r.stdout + r.stderr
    assert "removed 1 temporary shard file left by an interrupted run" in r.stdout and not stale.exists() and fresh.exists()
    pd.testing.assert_frame_equal(a, pd.read_parquet(tmp_path/"s.parquet"), check_exact=True)


LAUNCHERS = {"torchrun": ["torchrun", "--nproc_per_node", "2", "--no-python"],
             # accelerate's multi-GPU launcher starts the same torch.distributed processes; without GPUs they run on CPU (gloo)
             "accelerate": ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                            "--mixed_precision", "no", "--dynamo_backend", "no", "--no_python"]}


@pytest.mark.slow
@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_two_processes_equal_one(tmp_path, launcher):
    if shutil.which(LAUNCHERS[launcher][0]) is None: pytest.skip(f"{launcher} is not installed")
    inp = demo_data_path()
    one = _score(inp, tmp_path/"one.csv")
    assert one.returncode == 0, one.stderr
    cmd = [*LAUNCHERS[launcher], EXE, "score", str(inp), "-o", str(tmp_path/"two.csv"),
           "--model", "embedded", "--limit", "40", "-q", "--batch-tokens", "2048"]
    small = {"IFD_NB_CHUNK_ROWS": "4"}  # each rank's share in chunks of 4
    two = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1", **small})
    assert two.returncode == 0, two.stderr[-2000:]
    assert "to score on 2 processes" in two.stdout + two.stderr
    assert {p.name[:10] for p in (tmp_path/"two.csv.shards").glob("shard-*.parquet")} >= {"shard-r000", "shard-r001"}
    a, b = pd.read_csv(tmp_path/"one.csv"), pd.read_csv(tmp_path/"two.csv")
    pd.testing.assert_frame_equal(a, b, check_exact=False, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_two_processes_resume_a_killed_run_with_a_corrupt_shard(tmp_path):
    """Two ranks resume the shards of a killed one-process run, one of them truncated: both read the same shards (the
    corrupt one set aside once), split the remaining rows alike, and the merged table equals an uninterrupted run's."""
    if shutil.which("torchrun") is None: pytest.skip("torchrun is not installed")
    inp, small = demo_data_path(), {"IFD_NB_CHUNK_ROWS": "8"}
    assert _score(inp, tmp_path/"full.csv", env=small).returncode == 0
    killed = _score(inp, tmp_path/"r.csv", env={"IFD_NB_KILL_AFTER_SHARDS": "3", **small})
    assert killed.returncode == -9
    shards = sorted((tmp_path/"r.csv.shards").glob("shard-*.parquet"))
    assert len(shards) == 3
    shards[1].write_bytes(shards[1].read_bytes()[:100])
    cmd = [*LAUNCHERS["torchrun"], EXE, "score", str(inp), "-o", str(tmp_path/"r.csv"),
           "--model", "embedded", "--limit", "40", "-q", "--batch-tokens", "2048", "--chunk-rows", "4"]
    two = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert two.returncode == 0, two.stderr[-2000:]
    out = two.stdout + two.stderr
    assert "set aside unreadable shard" in out and "16 already scored, 24 to score on 2 processes" in out
    assert len(list((tmp_path/"r.csv.shards").glob("*.corrupt"))) == 1
    a, b = pd.read_csv(tmp_path/"full.csv"), pd.read_csv(tmp_path/"r.csv")
    pd.testing.assert_frame_equal(a, b, check_exact=False, atol=1e-5, rtol=0)


def test_device_map_with_offloaded_layers_equals_plain_load(tmp_path):
    "device_map='auto' under a memory cap: accelerate offloads layers and the head to disk; scores do not change."
    import torch
    from ifd_nb.models import tiny_model, load_tokenizer, load_model
    tok = load_tokenizer("embedded")
    tiny = tiny_model(); tiny.save_pretrained(tmp_path/"tiny"); tok.save_pretrained(tmp_path/"tiny")
    rows = read_rows(demo_data_path())[:12]
    ref = pd.DataFrame(score_rows(rows, tiny, tok, backend="reference", progress=False))
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(tmp_path/"tiny", dtype=torch.float32, device_map="auto",
                                             max_memory={"cpu": "1MB"}, offload_folder=str(tmp_path/"offload")).eval()
    assert "disk" in set(m.hf_device_map.values()), m.hf_device_map
    df = score_dataset(rows, m, tok, batch_tokens=1024, progress=False, verbose=False)
    assert list(df.status) == list(ref.status)
    np.testing.assert_allclose(df.ifd, ref.ifd, rtol=0, atol=1e-5)


def test_cli_packing_and_attention_options_give_the_same_scores(tmp_path):
    from ifd_nb.cli import main
    inp = demo_data_path()
    assert main(["score", str(inp), "-o", str(tmp_path/"a.csv"), "--limit", "12", "-q"]) == 0
    assert main(["score", str(inp), "-o", str(tmp_path/"b.csv"), "--limit", "12", "-q", "--packing", "on",
                 "--attn", "eager", "--batch-tokens", "2048"]) == 0
    a, b = pd.read_csv(tmp_path/"a.csv"), pd.read_csv(tmp_path/"b.csv")
    assert list(a.status) == list(b.status)
    np.testing.assert_allclose(a.ifd, b.ifd, rtol=0, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("packing", ["auto", False])
def test_compiled_backbone_gives_the_same_scores_and_compiles_once(packing):
    """Compiled = eager, packed (`packed_causal_attention` is an operator the compiler calls as it is: no graph break)
    and padded; one graph, and a second run on other rows, batch sizes and boundaries adds none (one compile serves
    every batch)."""
    import torch
    from torch._dynamo.utils import counters
    from ifd_nb.models import load_tokenizer, tiny_model
    torch._dynamo.reset(); counters.clear()
    tok, model = load_tokenizer("embedded"), tiny_model()
    rows = read_rows(demo_data_path())
    first, other = random.Random().sample(rows[:64], 24), rows[64:104]
    plain = score_dataset(first, model, tok, batch_tokens=2048, packing=packing, progress=False, verbose=False)
    plain_other = score_dataset(other, model, tok, batch_tokens=1024, packing=False, progress=False, verbose=False)
    compiled = score_dataset(first, model, tok, batch_tokens=2048, packing=packing, compile_backbone=True, progress=False, verbose=False)
    assert getattr(model.base_model, "_compiled_call_impl", None) is not None
    assert list(compiled.status) == list(plain.status)
    np.testing.assert_allclose(compiled.ifd, plain.ifd, rtol=0, atol=1e-5)
    graphs = counters["stats"]["unique_graphs"]
    assert graphs == 1  # the whole backbone, attention included
    assert not counters["graph_break"], dict(counters["graph_break"])  # no break (packed: the attention inside the graph)
    again = score_dataset(other, model, tok, batch_tokens=1024, packing=packing, compile_backbone=True, progress=False, verbose=False)
    assert counters["stats"]["unique_graphs"] == graphs  # no recompile for new batch shapes
    np.testing.assert_allclose(again.ifd, plain_other.ifd, rtol=0, atol=1e-5)


def test_interrupt_writes_every_computed_chunk(tmp_path, monkeypatch):
    """Ctrl-C while chunk 3 is being queued: chunks 1 and 2 were computed (2 waits behind 3 in the pipeline) and are
    written before the interrupt goes on; the resumed run scores only the rest and equals an uninterrupted one."""
    import ifd_nb.engine as E
    from ifd_nb.store import ShardStore
    from ifd_nb.models import load_tokenizer, tiny_model
    tok, model = load_tokenizer("embedded"), tiny_model()
    rows = read_rows(demo_data_path())[:20]
    real, write, events = E._losses, ShardStore.write, []
    def interrupted(*a, **k):  # one batch per chunk at this budget: the third call queues chunk 3
        events.append("queue")
        if events.count("queue") == 3: raise KeyboardInterrupt
        return real(*a, **k)
    def logged(self, records):
        if records: events.append("write")
        return write(self, records)
    monkeypatch.setattr(E, "_losses", interrupted); monkeypatch.setattr(ShardStore, "write", logged)
    with pytest.raises(KeyboardInterrupt):
        score_dataset(rows, model, tok, batch_tokens=65536, chunk_rows=4, shard_dir=tmp_path, progress=False, verbose=False)
    assert events == ["queue", "queue", "write", "queue", "write"]  # chunk k+1 is queued before chunk k is written
    assert len(ShardStore(tmp_path).load()) == 8
    monkeypatch.setattr(E, "_losses", real)
    resumed = score_dataset(rows, model, tok, batch_tokens=65536, chunk_rows=4, shard_dir=tmp_path, progress=False, verbose=False)
    whole = score_dataset(rows, model, tok, batch_tokens=65536, chunk_rows=4, progress=False, verbose=False)
    pd.testing.assert_frame_equal(resumed, whole)


def test_fp16_overflow_guard_recomputes_in_float32(capsys):
    """A float16 model whose first MLP overflows (weights finite, activations past 65,504): every sequence is
    recomputed in float32 and scores as the float32 model does; the model is float16 and unchanged afterwards."""
    import copy, torch
    from ifd_nb.models import load_tokenizer, tiny_model
    tok, m32 = load_tokenizer("embedded"), tiny_model()
    with torch.no_grad():
        m32.model.layers[0].mlp.up_proj.weight.mul_(2000); m32.model.layers[0].mlp.gate_proj.weight.mul_(2000)
    m16 = copy.deepcopy(m32).half()
    before = {k: v.clone() for k, v in m16.state_dict().items()}
    rows = read_rows(demo_data_path())[:12]
    want = score_dataset(rows, m32, tok, batch_tokens=2048, progress=False, verbose=False)
    raw = score_dataset(rows, m16, tok, batch_tokens=2048, fp16_guard=False, progress=False, verbose=False)
    assert set(raw.status) == {"nonfinite"}  # the overflow is real
    got = score_dataset(rows, m16, tok, batch_tokens=2048, progress=False, verbose=True)
    assert "24 sequences recomputed in float32" in capsys.readouterr().out
    assert list(got.status) == ["ok"] * 12
    np.testing.assert_allclose(got.ifd, want.ifd, rtol=0, atol=1e-5)
    assert m16.dtype == torch.float16 and all(torch.equal(v, m16.state_dict()[k]) for k, v in before.items())


def test_model_on_gpus_scores_with_one_host_thread(monkeypatch):
    """While a model wholly on GPUs scores (simulated: `_on_gpus` says so), PyTorch's CPU operations run on one thread
    and the count is put back after, also after an interrupt; `host_threads=None`, or a model on the CPU, keeps it."""
    import torch
    import ifd_nb.engine as E
    from ifd_nb.models import load_tokenizer, tiny_model
    tok, model = load_tokenizer("embedded"), tiny_model()
    rows = read_rows(demo_data_path())[:6]
    original = before = torch.get_num_threads(); seen = []
    if before < 2: torch.set_num_threads(2); before = 2  # one core: two threads, so that one is a change
    try:
        model.model.register_forward_hook(lambda *a: seen.append(torch.get_num_threads()))
        for on_gpus, kw, want in ((True, {}, 1), (True, dict(host_threads=None), before), (False, {}, before)):
            monkeypatch.setattr(E, "_on_gpus", lambda m: on_gpus)
            seen.clear()
            score_dataset(rows, model, tok, progress=False, verbose=False, **kw)
            assert seen and set(seen) == {want}, (on_gpus, kw, seen)
            assert torch.get_num_threads() == before
        monkeypatch.setattr(E, "_on_gpus", lambda m: True)
        def stop(*a, **k): raise KeyboardInterrupt
        monkeypatch.setattr(E, "_losses", stop)
        with pytest.raises(KeyboardInterrupt): score_dataset(rows, model, tok, progress=False, verbose=False)
        assert torch.get_num_threads() == before
    finally: torch.set_num_threads(original)


@pytest.mark.parametrize("flag,want", [([], 1), (["--host-threads", "3"], 3), (["--host-threads", "0"], None)])
def test_cli_host_threads_reaches_the_engine(monkeypatch, tmp_path, flag, want):
    "`ifd_nb score --host-threads N` is the engine's `host_threads` (0: None, PyTorch's own count)."
    import ifd_nb.cli as cli
    from ifd_nb.cli import main
    got = {}
    monkeypatch.setattr(cli, "score_dataset", lambda *a, **k: got.update(k) or None)
    assert main(["score", str(demo_data_path()), "-o", str(tmp_path/"s.parquet"), *flag]) == 0
    assert got["host_threads"] == want


def test_cli_host_threads_must_not_be_negative(tmp_path, capsys):
    from ifd_nb.cli import main
    assert main(["score", str(demo_data_path()), "-o", str(tmp_path/"s.parquet"), "--host-threads", "-1"]) == 2
    assert "--host-threads must be 0" in capsys.readouterr().err and not (tmp_path/"s.parquet").exists()
