"""Plot functions draw what they claim (points, lines, labels) on synthetic score tables; plot/report commands work."""
import matplotlib
matplotlib.use("Agg")
import numpy as np
import pandas as pd
import pytest
from ifd_nb.analysis import (plot_ifd_distribution, plot_cond_vs_bare, plot_ifd_vs_length, plot_token_losses,
                             plot_agreement, plot_task_breakdown, scorer_agreement, mismatch_report, make_mismatched,
                             task_breakdown)
from ifd_nb.reports import compare_scores
from ifd_nb.cli import main


@pytest.fixture
def table():
    rng = np.random.default_rng()
    n = 120
    bare = rng.uniform(1, 4, n); cond = bare * rng.uniform(0.2, 1.3, n)
    df = pd.DataFrame({"index": range(n), "loss_cond": cond, "loss_bare": bare, "ifd": cond / bare,
                       "ifd_ppl": np.exp(cond - bare), "n_prompt_tokens": rng.integers(20, 200, n),
                       "n_answer_tokens": rng.integers(1, 300, n), "truncated": False, "status": "ok",
                       "instruction": rng.choice(["Write a poem.", "Rewrite this.", "Explain why.", "List things."], n),
                       "output": "x"})
    df.loc[:4, "status"] = "empty_answer"; df.loc[:4, ["loss_cond", "loss_bare", "ifd", "ifd_ppl"]] = np.nan
    return df


def test_distribution(table):
    ax = plot_ifd_distribution(table).axes[0]
    xs = sorted(l.get_xdata()[0] for l in ax.lines)
    elig = table.ifd[(table.status == "ok") & (table.ifd < 1)].sort_values(ascending=False)
    assert 1.0 in xs and elig.iloc[int(len(elig) * .05) - 1] in xs and elig.iloc[int(len(elig) * .1) - 1] in xs


def test_cond_vs_bare_points_and_iso_lines(table):
    ax = plot_cond_vs_bare(table).axes[0]
    iso = [l for l in ax.lines if (l.get_gid() or "").startswith("iso-ifd")]
    assert len(ax.collections[0].get_offsets()) == 115 and len(iso) == 3
    slopes = sorted(round(l.get_ydata()[1] / l.get_xdata()[1], 6) for l in iso)
    assert slopes == [0.5, 1.0, 1.5]


def test_length_and_tokens_and_tasks(table):
    f = plot_ifd_vs_length(table)
    assert [len(a.collections[0].get_offsets()) for a in f.axes] == [115, 115]
    f = plot_token_losses(["a", "b", "c"], [1, 2, 3], [2, 2, 2])
    assert [p.get_height() for p in f.axes[1].patches] == [1, 0, -1]
    f = plot_task_breakdown(table, min_count=3)
    assert len(f.axes[0].get_yticklabels()) == len(task_breakdown(table, min_count=3)) == 4


def test_agreement_and_mismatch():
    a = np.arange(100.0)
    r = scorer_agreement(a, a[::-1].copy())
    assert r["spearman"] == pytest.approx(-1) and r["overlap"][50] == 0.0
    f = plot_agreement(a, a)
    assert len(f.axes[0].collections[0].get_offsets()) == 100
    rows = [{"instruction": str(i), "output": str(i)} for i in range(50)]
    mm, mask = make_mismatched(rows, 0.3, seed=1)
    df = pd.DataFrame({"ifd": np.where(mask, 1.2, 0.5), "status": "ok"})
    rep = mismatch_report(df, mask)
    assert rep["auc"] == 1.0 and rep["mismatched_ge_1"] == 15 and rep["true_ge_1"] == 0


def test_plot_and_report_commands(table, tmp_path):
    p = tmp_path/"s.parquet"; table.to_parquet(p, index=False)
    assert main(["plot", str(p), "-o", str(tmp_path/"figs")]) == 0
    assert sorted(x.name for x in (tmp_path/"figs").iterdir()) == [".ifd_nb", "cond_vs_bare.png", "ifd_distribution.png",
                                                                   "ifd_vs_length.png", "task_breakdown.png"]
    assert main(["report", str(p), "-o", str(tmp_path/"r.html")]) == 0
    html = (tmp_path/"r.html").read_text()
    assert html.count("data:image/png;base64,") == 4 and "Highest IFD" in html


def test_compare_command_matches_rows_by_index(table, tmp_path, capsys):
    rng = np.random.default_rng()
    other = table.assign(ifd=table.ifd * rng.uniform(0.9, 1.1, len(table))).iloc[::-1]  # another scorer, rows reversed
    table.to_parquet(tmp_path/"a.parquet", index=False); other.to_csv(tmp_path/"b.csv", index=False)
    assert main(["compare", str(tmp_path/"a.parquet"), str(tmp_path/"b.csv"), "--rates", "0.1", "--plot", str(tmp_path/"agree.png")]) == 0
    err = capsys.readouterr().err
    want = scorer_agreement(table.ifd.values, other.set_index("index").ifd.reindex(table["index"]).values)
    assert f"120 rows matched, {want['n']} scored in both; Spearman {want['spearman']:.3f}" in err and want["n"] == 115
    assert "kept by both" in err and (tmp_path/"agree.png").stat().st_size > 0
    r = compare_scores(table, other, rates=[0.1])
    assert 0 <= r["top 0.1: kept by both"] <= 1 and abs(r["spearman"] - want["spearman"]) < 1e-12
    assert main(["compare", str(tmp_path/"a.parquet"), str(tmp_path/"nope.csv")]) == 2
