"""BENCHMARKS.md is generated from the result files, and a run's commentary lives in its own file (`notes`), not in the
generator: what the page says about a run changes when the run's notes change, and the generator holds no prose."""
import ast, json, re, shutil
from pathlib import Path

from ifd_nb.bench import report
from ifd_nb.bench.timing import results_dir, repo_root

SOURCE = Path(report.__file__).read_text()


def literal_prose(source: str) -> list[tuple[int, str]]:
    "(line, text) of every string in `source`, f-strings joined, that is not a docstring; `{}` marks a field."
    tree, docs, out = ast.parse(source), set(), []
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant): docs.add(id(first.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            out.append((node.lineno, "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            out.append((node.lineno, node.value))
    return out


def commentary(source: str, most_words: int = 11) -> list[tuple[int, str]]:
    "Strings of more than `most_words` words that are neither table lines nor the page's own introduction."
    intro = next(ast.literal_eval(n.value) for n in ast.parse(source).body
                 if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "PAGE_INTRO")
    found = []
    for line, text in literal_prose(source):
        words = [w for w in text.replace("{}", " ").split() if w.isalpha()]
        if len(words) > most_words and not text.lstrip().startswith("|") and text != intro:
            found.append((line, text))
    return found


def test_generator_holds_no_commentary():
    assert commentary(SOURCE) == []


def test_commentary_check_finds_prose():
    planted = SOURCE + '\nout = ["The engine ran faster than the loop on every model we tried that day, by far."]\n'
    assert [t for _, t in commentary(planted)] == ["The engine ran faster than the loop on every model we tried that "
                                                   "day, by far."]


def test_page_is_current():
    assert report.render() == (repo_root()/"BENCHMARKS.md").read_text()


def test_every_section_has_its_runs_title():
    headings = re.findall(r"^#+ (.*)$", report.render(), re.M)
    assert len(headings) > 20 and not [h for h in headings if h.endswith(".json")]


def test_a_runs_notes_make_its_prose(tmp_path, monkeypatch):
    shutil.copytree(results_dir(), tmp_path/"results")
    monkeypatch.setenv("IFD_NB_RESULTS", str(tmp_path/"results"))
    path = tmp_path/"results"/"cpu_merge_2026-12-04.json"
    run = json.loads(path.read_text())
    run["notes"]["reading"] = "Read again: equal {same}, over {rows:,} rows."
    del run["notes"]["title"]
    path.write_text(json.dumps(run))
    page = report.render()
    assert "Read again: equal yes, over 1,000,000 rows." in page
    assert "## cpu_merge_2026-12-04.json\n" in page  # no title: the file's name
    assert page != (repo_root()/"BENCHMARKS.md").read_text()
