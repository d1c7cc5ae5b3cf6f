"""The package's floors, read from the source: who may import whom, no circles, no private names across modules, the
benchmark wing and the CLI on top, `.ci/` holding the CI only, and the kernels documented.

Each rule is a function over an import graph, tested on the real package and on a small graph that breaks it."""
import ast, json, re
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT/"ifd_nb"

# module -> floor; a module imports only modules on lower floors. bench/* (floor 9, the benchmark wing) may import each
# other and anything in the library except the CLI; nothing below imports them.
FLOORS = {"store": 0, "data": 0, "ce": 0, "reflection": 4.5, "settings": 1, "history": 1, "select": 1, "budgets": 1,
          "selection_files": 1, "superfiltering_d": 1, "models": 1,
          # the kernels subpackage, one op a file: launch rules and segments, then each op, then the dispatch
          "kernels.launch": 2, "kernels.segments": 2, "kernels.token_ce": 2.1, "kernels.torch_paths": 2.1,
          "kernels.linear_ce": 2.2, "kernels.dispatch": 2.3,
          "forward": 3, "ifd": 4,
          "turns": 5, "train": 5, "scores": 5, "embed": 5, "batch_encode": 6, "engine": 7, "analysis": 7,
          "experience": 7, "sifd": 7.5, "reports": 8, "cli": 9}
BENCH_FLOOR = 9


def module_name(path: Path) -> str:
    "'forward' for ifd_nb/forward.py, 'bench.timing' for ifd_nb/bench/timing.py."
    return ".".join(path.relative_to(PKG).with_suffix("").parts)


def package_sources() -> dict:
    "{module name: its source} for every module of the package but `_modidx` and the `__init__` files."
    return {module_name(p): p.read_text() for p in sorted(PKG.rglob("*.py"))
            if p.name not in ("_modidx.py", "__init__.py")}


def imports_of(source: str, name: str) -> list[tuple[str, str | None]]:
    "(module of the package imported, name taken from it or None) for every import in `source`, function bodies too."
    out, pkg = [], name.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(a.name.removeprefix("ifd_nb."), None) for a in node.names if a.name.startswith("ifd_nb.")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from .x import y, from . import x
                base = pkg[:len(pkg) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").startswith("ifd_nb"): mod = node.module.removeprefix("ifd_nb").lstrip(".")
            else: continue
            for a in node.names: out.append((f"{mod}.{a.name}".lstrip("."), None) if not mod else (mod, a.name))
    return out


def import_graph(sources: dict) -> dict:
    "{module: {(imported module, name or None)}}, the imported module resolved to one of `sources`."
    graph = {}
    for name, src in sources.items():
        deps = set()
        for mod, what in imports_of(src, name):
            while mod and mod not in sources: mod, what = mod.rpartition(".")[0], None  # a name of the module, not a module
            if mod and mod != name: deps.add((mod, what))
        graph[name] = deps
    return graph


def floor(module: str) -> int:
    return BENCH_FLOOR if module.startswith("bench.") else FLOORS[module]


def floor_violations(graph: dict) -> list[str]:
    "Imports of a module on the same floor or above, of the CLI, or of the benchmark wing from the library."
    bad = []
    for m, deps in graph.items():
        for d, _ in deps:
            if d == "cli": bad.append(f"{m} imports the CLI")
            elif d.startswith("bench.") and not m.startswith("bench."): bad.append(f"{m} imports the benchmark wing ({d})")
            elif not (m.startswith("bench.") and d.startswith("bench.")) and floor(d) >= floor(m):
                bad.append(f"{m} (floor {floor(m)}) imports {d} (floor {floor(d)})")
    return sorted(set(bad))


def circles(graph: dict) -> list[list[str]]:
    "The import circles of `graph` (strongly connected groups of more than one module, or a module importing itself)."
    adj = {m: {d for d, _ in deps} for m, deps in graph.items()}
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = counter[0]; counter[0] += 1; stack.append(v); on.add(v)
        for w in adj.get(v, ()):
            if w not in index: visit(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1 or v in adj.get(v, ()): out.append(sorted(comp))
    for v in adj:
        if v not in index: visit(v)
    return out


def private_imports(graph: dict) -> list[str]:
    "Names starting with one underscore that a module takes from another module of the package."
    return sorted(f"{m} imports {d}.{w}" for m, deps in graph.items() for d, w in deps
                  if w and w.startswith("_") and not w.startswith("__"))


def private_attributes(sources: dict) -> list[str]:
    "`mod._name` uses in a module, where `mod` names another module of the package that it imported."
    bad = []
    for name, src in sources.items():
        tree = ast.parse(src)
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                aliases |= {(a.asname or a.name): a.name for a in node.names if a.name.startswith("ifd_nb.")}
            elif isinstance(node, ast.ImportFrom):
                pkg = name.split(".")[:-1]
                if node.level: mod = ".".join(pkg[:len(pkg) - node.level + 1] + ([node.module] if node.module else []))
                elif (node.module or "").startswith("ifd_nb"): mod = node.module.removeprefix("ifd_nb").lstrip(".")
                else: continue
                aliases |= {(a.asname or a.name): f"ifd_nb.{mod + '.' if mod else ''}{a.name}" for a in node.names
                            if f"{mod + '.' if mod else ''}{a.name}" in sources}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                bad.append(f"{name} uses {aliases[node.value.id]}.{node.attr}")
    return sorted(set(bad))


@pytest.fixture(scope="module")
def sources(): return package_sources()


@pytest.fixture(scope="module")
def graph(sources): return import_graph(sources)


def test_every_module_has_a_floor(sources):
    assert set(m for m in sources if not m.startswith("bench.")) == set(FLOORS)


def test_floors_hold(graph):
    assert floor_violations(graph) == []


def test_no_import_circle(graph):
    assert circles(graph) == []


def test_no_private_name_crosses_modules(graph, sources):
    assert private_imports(graph) == [] and private_attributes(sources) == []


def test_the_rules_catch_what_they_forbid(sources):
    "Each rule finds its violation when one is planted: the engine importing the CLI, a circle, a private name."
    planted = dict(sources)
    planted["engine"] += "\nfrom .cli import main\n"
    assert "engine imports the CLI" in floor_violations(import_graph(planted))
    assert any({"cli", "engine"} <= set(c) for c in circles(import_graph(planted)))
    planted = dict(sources, store=sources["store"] + "\ndef f():\n    from ifd_nb.bench.timing import write_result\n")
    assert any("store imports the benchmark wing" in v for v in floor_violations(import_graph(planted)))
    planted = dict(sources, ifd=sources["ifd"] + "\nfrom .forward import _per_sequence_attention\n")
    assert private_imports(import_graph(planted)) == ["ifd imports forward._per_sequence_attention"]
    planted = dict(sources, scores=sources["scores"] + "\nimport ifd_nb.engine as E\nE._launch_chunk\n")
    assert private_attributes(planted) == ["scores uses ifd_nb.engine._launch_chunk"]
    planted = dict(sources, data=sources["data"] + "\nfrom .forward import batch_layout\n")
    assert "data (floor 0) imports forward (floor 3)" in floor_violations(import_graph(planted))


def test_ci_folder_holds_the_ci_only():
    assert sorted(p.name for p in (ROOT/".ci").iterdir()) == ["make_readme.py", "run"]


def exported_from(path: Path) -> str:
    "The notebook a module says it is exported from (its AUTOGENERATED line)."
    m = re.search(r"File to edit: \.\./(?:\.\./)?nbs/(\S+\.ipynb)", path.read_text())
    return m.group(1) if m else ""


def test_every_module_is_exported_from_a_notebook_of_its_kind():
    "Library and lesson modules come from nbs/library or nbs/lessons, one notebook each; bench modules from nbs/bench."
    seen = {}
    for p in sorted(PKG.rglob("*.py")):
        if p.name in ("_modidx.py", "__init__.py"): continue
        nb = exported_from(p)
        assert nb, f"{p} names no notebook"
        kind = nb.split("/")[0]
        if p.parent.name == "bench": assert kind == "bench", (p, nb)
        else: assert kind in ("lessons", "library"), (p, nb)
        assert nb not in seen, f"{nb} exports both {seen.get(nb)} and {p.name}"
        seen[nb] = p.name
        assert (ROOT/"nbs"/nb).exists()


def test_three_kinds_of_notebook():
    """The docs sidebar's three sections: every notebook but the landing page and the workshop plan (a page of the
    course, beside the lessons in the sidebar) sits in lessons/, library/ or bench/."""
    nbs = ROOT/"nbs"
    assert {p.parent.relative_to(nbs).as_posix() for p in nbs.rglob("*.ipynb")} == {".", "lessons", "library", "bench"}
    assert sorted(p.name for p in nbs.glob("*.ipynb")) == ["index.ipynb", "workshop.ipynb"]


def triton_kernels(source: str) -> list[ast.FunctionDef]:
    "The `@triton.jit` functions of a module whose name ends in `_kernel` (the launched ones)."
    jit = lambda d: "triton.jit" in ast.unparse(d)
    return [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef) and n.name.endswith("_kernel")
            and any(jit(d) for d in n.decorator_list)]


def test_each_kernel_documents_its_pointers_constexprs_and_steps(sources):
    kernels = triton_kernels(sources["kernels.token_ce"]) + triton_kernels(sources["kernels.linear_ce"])
    assert len(kernels) == 3
    for k in kernels:
        doc = ast.get_docstring(k) or ""
        for word in ("Pointers:", "Constexprs:", "Steps:"): assert word in doc, f"{k.name}: no {word}"
        assert all(len(line) <= 120 for line in doc.splitlines()), k.name
        for arg in k.args.args:
            if arg.annotation is not None and "constexpr" in ast.unparse(arg.annotation):
                assert arg.arg in doc, f"{k.name}: constexpr {arg.arg} not described"
            elif arg.arg.endswith("_ptr"): assert arg.arg in doc, f"{k.name}: pointer {arg.arg} not described"


DATED = re.compile(r"\b\d{1,2} (January|February|March|April|May|June|July|August|September|October|November|December)\b"
                   r"|\b(January|February|March|April|May|June|July|August|September|October|November|December) 20\d\d\b"
                   r"|\b20\d\d-\d\d-\d\d\b")
NOTEBOOK_NUMBER = re.compile(r"\((0\d|10)[,)]|, (0\d|10)\)|\b(0\d|10)'s\b|nbs/\d\d_")


def texts_of(source: str) -> list[str]:
    "The docstrings, string constants and comments of a module: what a user reads of it."
    import io, tokenize
    return [t.string for t in tokenize.generate_tokens(io.StringIO(source).readline)
            if t.type in (tokenize.STRING, tokenize.COMMENT)]


def test_no_dated_measurement_or_notebook_number_in_the_code(sources):
    "Measurements live in BENCHMARKS.md and the result files; the package's texts name modules, not notebook numbers."
    bad = [f"{m}: {t[:80]}" for m, src in sources.items() if m != "bench.report"  # the generator of BENCHMARKS.md itself
           for t in texts_of(src) if DATED.search(t) or NOTEBOOK_NUMBER.search(t)]
    assert bad == []
    assert texts_of('x = 1  # on 27 November, 2 cores (05)\n') and NOTEBOOK_NUMBER.search("(05)") and DATED.search("4 December")


def test_score_dataset_reads_as_phases(sources):
    "`score_dataset` opens the run, scores this rank's share and finishes, without a closure mutating its counters."
    tree = ast.parse(sources["engine"])
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "score_dataset")
    calls = [n.func.id for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    assert {"open_run", "score_share", "finish_run"} <= set(calls)
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Nonlocal)]
    assert fn.end_lineno - fn.lineno < 60


def long_lines(path: Path, root: Path = ROOT) -> list[str]:
    "Lines over 120 characters, but for nbdev's generated `__all__` list (nbdev wraps it, not us)."
    out, in_all = [], False
    for n, line in enumerate(path.read_text().split("\n"), 1):
        in_all = in_all or line.startswith("__all__ = [")
        if len(line) > 120 and not in_all: out.append(f"{path.relative_to(root)}:{n}: {len(line)} characters")
        in_all = in_all and not line.rstrip().endswith("]")
    return out


def test_no_line_over_120_characters():
    "The lint step's line rule (ruff checks the unused imports, the README's test command runs it)."
    bad = [x for p in sorted(PKG.rglob("*.py")) if p.name != "_modidx.py" for x in long_lines(p)]
    assert bad == []


def test_long_lines_finds_them(tmp_path):
    f = tmp_path/"probe.py"
    f.write_text("__all__ = ['" + "a" * 130 + "',\n           'b']\nx = 1\ny = '" + "b" * 130 + "'\n")
    assert long_lines(f, tmp_path) == ["probe.py:4: 136 characters"]


def unresolved_imports(sources: dict) -> list[str]:
    "`from <package module> import name` statements (function bodies too) whose name that module does not define."
    import importlib
    bad = []
    for name, src in sources.items():
        pkg = name.split(".")[:-1]
        for node in ast.walk(ast.parse(src)):
            if not isinstance(node, ast.ImportFrom): continue
            if node.level: mod = ".".join(["ifd_nb"] + pkg[:len(pkg) - node.level + 1] + ([node.module] if node.module else []))
            elif (node.module or "").startswith("ifd_nb"): mod = node.module
            else: continue
            try: m = importlib.import_module(mod)
            except ImportError: bad.append(f"{name}:{node.lineno}: no module {mod}"); continue
            for a in node.names:
                if hasattr(m, a.name): continue
                try: importlib.import_module(f"{mod}.{a.name}")
                except ImportError: bad.append(f"{name}:{node.lineno}: {mod}.{a.name}")
    return bad


def test_every_import_resolves(sources):
    "Imports inside functions run only when called: each must still name something that exists."
    assert unresolved_imports(sources) == []
    probe = "def f():\n    from ifd_nb.ifd import packed_boundaries\n    from ..engine import score_dataset, attention_heads\n"
    assert unresolved_imports({"bench.probe": probe}) == ["bench.probe:2: ifd_nb.ifd.packed_boundaries",
                                                          "bench.probe:3: ifd_nb.engine.attention_heads"]


OLD_KERNEL_NAMES = re.compile(r"\b(kernel[12]_\w+|K2_TILES|_?lce_\w+|_?ce_logits_\w+|_kernel2\w*)\b")


def test_one_naming_scheme_for_the_kernels(sources):
    "The kernels' names say what they compute (`token_ce_*`, `linear_ce_*`), not which kernel number they were."
    from ifd_nb.kernels import dispatch, launch, linear_ce, segments, token_ce, torch_paths
    names = [n for m in (dispatch, launch, linear_ce, segments, token_ce, torch_paths) for n in vars(m)]
    assert not [n for n in names if OLD_KERNEL_NAMES.fullmatch(n)]
    used = {m: OLD_KERNEL_NAMES.findall(src) for m, src in sources.items() if not m.startswith("bench.")}
    assert not {m: u for m, u in used.items() if u}, used


def test_benchmarks_save_results_through_one_writer(sources):
    "Every benchmark writes its result file with `timing.save`: one header format (`run_header`), no header by hand."
    bad = {m: w for m, src in sources.items() if m.startswith("bench.") and m != "bench.timing"
           for w in ("write_result", "date=", "machine=") if w in src}
    assert bad == {}
    savers = [m for m, src in sources.items() if m.startswith("bench.") and re.search(r"\bsave\(\s*\"", src)]
    assert len(savers) >= 15, savers
