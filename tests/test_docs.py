"""The docs build and read as pages. Every notebook passes nbdev's docs processing (`nbdev_proc_nbs`, with a stand-in
`quarto` first on PATH so that nothing gets installed); each processed page is rendered to HTML with tools available
offline (nbconvert to Markdown, then pandoc with MathML) and opened in headless Chromium (driven by Playwright): its
math rendered, its images loaded, no raw `#|` directive, traceback or error output on it, and no link to another page
that does not exist. One screenshot per page is kept in `docs_check/` at the project root, for a person to look at
(CI keeps it as an artifact). Needs pandoc and Chromium (Debian: `apt-get install pandoc chromium`); without them the page check skips
and says so, and docs processing still runs."""
import json, os, re, shutil, subprocess, sys
from pathlib import Path
import pytest

pytestmark = pytest.mark.slow  # docs processing and every page in a browser: minutes

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "docs_check"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
PANDOC = shutil.which("pandoc")
NOTEBOOKS = sorted((ROOT / "nbs").rglob("*.ipynb"))
STUB_QUARTO = "#!/bin/sh\n# a stand-in for quarto: docs processing only asks for its version\necho 1.5.57\n"


def project_copy(dest: Path) -> Path:
    "The files git would commit (tracked, and untracked ones not ignored), copied to `dest`."
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for f in filter(None, files):
        if (ROOT / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dest / f)
    return dest


def test_a_title_cell_holds_only_the_title_and_description():
    "nbdev turns a notebook's first cell into the page's title and description and drops everything else in it."
    for nb in NOTEBOOKS:
        first = "".join(json.loads(nb.read_text())["cells"][0]["source"]).strip()
        lines = [l for l in first.splitlines() if l.strip()]
        assert len(lines) == 2 and lines[0].startswith("# ") and lines[1].startswith("> "), nb.relative_to(ROOT)


@pytest.fixture(scope="module")
def processed(tmp_path_factory) -> Path:
    "The project's notebooks after nbdev's docs processing, in a copy of the project: its `_proc` folder."
    root = project_copy(tmp_path_factory.mktemp("docs") / "project")
    stub = root.parent / "bin"
    stub.mkdir()
    (stub / "quarto").write_text(STUB_QUARTO)
    (stub / "quarto").chmod(0o755)
    env = os.environ | {"PATH": f"{stub}{os.pathsep}{os.environ['PATH']}", "TRITON_INTERPRET": "1",
                        "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    exe = Path(sys.executable).parent / "nbdev_proc_nbs"
    r = subprocess.run([str(exe)], cwd=root, env=env, capture_output=True, text=True, timeout=1200)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-5000:]
    assert "Found cells containing imports and other code" not in out, out[-3000:]
    assert "nstall" not in r.stdout, "docs processing tried to install something"
    return root / "_proc"


def test_docs_processing_covers_every_notebook(processed):
    got = {p.relative_to(processed) for p in processed.rglob("*.ipynb")}
    assert got == {p.relative_to(ROOT / "nbs") for p in NOTEBOOKS}
    assert (processed / "styles.css").exists() and (processed / "sidebar.yml").exists()
    sidebar = (processed / "sidebar.yml").read_text()
    assert sidebar.index("Lessons") < sidebar.index("Library") < sidebar.index("Benchmarks")


def page_name(ipynb: Path, nb: dict) -> str:
    "The file name quarto gives a processed notebook's page: its `output-file`, else the notebook's stem."
    fm = nb["cells"][0]["source"] if nb["cells"] else ""
    m = re.search(r"output-file:\s*(\S+)", "".join(fm))
    return m.group(1) if m else ipynb.stem + ".html"


DOC_HOST = "https://ifd-nb.github.io/ifd_nb/"  # settings.ini's doc_host and doc_baseurl: show_doc's links


def as_quarto_shows(ipynb: Path, dest: Path) -> Path:
    """A processed notebook as quarto shows it: a cell marked `echo: false` without its code, `include: false` not at
    all, `output: false` without its outputs, and no `#|` line left in any code."""
    nb = json.loads(ipynb.read_text())
    cells = []
    for c in nb["cells"]:
        if c["cell_type"] == "code":
            src = "".join(c["source"])
            opts = dict(re.findall(r"^#\|\s*([\w-]+)\s*:\s*(\S+)", src, flags=re.M))
            if opts.get("include") == "false": continue
            if opts.get("output") == "false": c["outputs"] = []
            c["source"] = "\n".join(l for l in src.splitlines() if not l.startswith("#|")).strip("\n")
            if opts.get("echo") == "false" or not c["source"]:
                c.setdefault("metadata", {})["tags"] = ["remove_input"]
        cells.append(c)
    nb["cells"] = cells
    dest.write_text(json.dumps(nb))
    return dest


def render(processed: Path, out: Path) -> dict[Path, Path]:
    "Each processed notebook as an HTML page (math as MathML, images beside it, as nbconvert wrote them): {notebook: page}."
    from nbconvert import MarkdownExporter
    from traitlets.config import Config
    exporter = MarkdownExporter(config=Config(TagRemovePreprocessor=dict(enabled=True,
                                                                          remove_input_tags=["remove_input"])))
    notebooks = sorted(processed.rglob("*.ipynb"))
    names = {p.relative_to(processed): page_name(p, json.loads(p.read_text())) for p in notebooks}
    pages = {}
    for ipynb in notebooks:
        rel = ipynb.relative_to(processed)
        folder = out / rel.parent
        folder.mkdir(parents=True, exist_ok=True)
        md, resources = exporter.from_filename(str(as_quarto_shows(ipynb, folder / ipynb.name)),
                                               resources=dict(output_files_dir=f"{ipynb.stem}_files"))
        for name, data in resources.get("outputs", {}).items():  # the images, where the Markdown points
            (folder / name).parent.mkdir(exist_ok=True)
            (folder / name).write_bytes(data)

        def to_page(m):  # a link to a notebook goes to its page, as quarto writes it
            target = Path(os.path.normpath(rel.parent / (m.group(1) + ".ipynb")))
            if target not in names: return m.group(0)  # left as it is: reported as broken below
            return f"]({os.path.relpath(target.parent / names[target], rel.parent)}{m.group(2) or ''})"

        md = re.sub(r"\]\(([^)\s:]+?)\.ipynb(#[^)]*)?\)", to_page, md)
        (folder / (ipynb.stem + ".md")).write_text(md)
        page = folder / names[rel]
        r = subprocess.run([PANDOC, ipynb.stem + ".md", "-f", "markdown", "-t", "html5", "-s", "--mathml",
                            "-o", page.name,
                            "--metadata", f"pagetitle={ipynb.stem}"],
                           cwd=folder, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        assert "Could not convert TeX math" not in r.stderr, f"{rel}: {r.stderr}"
        pages[rel] = page
    return pages


REQUIRED = os.environ.get("IFD_NB_DOCS_BROWSER") == "required"  # CI sets it where it could install both
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]  # a closed network: no background connections
OWN_IMAGES = "() => [...document.images].filter(i => !/^https?:/.test(i.getAttribute('src')))" \
             ".map(i => i.complete && i.naturalWidth > 0)"  # the page's own images (not the remote Colab badge)


@pytest.mark.skipif(not (CHROMIUM and PANDOC) and not REQUIRED,
                    reason="the page check needs pandoc and Chromium (apt-get install pandoc chromium)")
def test_every_page_renders_in_a_browser(processed, tmp_path):
    assert CHROMIUM and PANDOC, "IFD_NB_DOCS_BROWSER=required, but pandoc or Chromium is not installed"
    from playwright.sync_api import sync_playwright
    out = tmp_path / "html"
    pages = render(processed, out)
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir()
    problems = []
    names = {p.resolve() for p in pages.values()}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        tab = browser.new_page(viewport={"width": 1280, "height": 1000})
        tab.route("http*://**", lambda route: route.abort())  # offline: remote requests fail at once
        for rel, page in pages.items():
            tab.goto(page.as_uri(), wait_until="load")
            shot = SHOTS / (str(rel.with_suffix("")).replace(os.sep, "__") + ".png")
            height = min(tab.evaluate("() => document.body.scrollHeight"), 4000)
            tab.screenshot(path=str(shot), clip=dict(x=0, y=0, width=1280, height=height))
            text = tab.inner_text("body")
            source = "".join("".join(c["source"]) for c in json.loads((processed / rel).read_text())["cells"]
                             if c["cell_type"] == "markdown")
            if re.search(r"(^|\n)\s*#\|", text): problems.append(f"{rel}: a raw #| directive on the page")
            if "Traceback (most recent call last)" in text or re.search(r"\b\w+Error: ", text):
                problems.append(f"{rel}: an error on the page")
            if re.search(r"\$[^$\n]+\$", source) and not tab.evaluate("() => document.querySelectorAll('math').length"):
                problems.append(f"{rel}: math not rendered")
            if rel.as_posix() == "lessons/02_kernels.ipynb":  # the lesson shows its kernels, not only their API entries
                for shown in ("@triton.jit", "def token_ce_kernel(", "def linear_ce_pass1_kernel(", "def linear_ce_merge_kernel(",
                              "def linear_ce_triton("):
                    if shown not in text: problems.append(f"{rel}: {shown} not on the page")
            loaded = tab.evaluate(OWN_IMAGES)
            if not all(loaded): problems.append(f"{rel}: {loaded.count(False)} of {len(loaded)} images did not load")
            for href in tab.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))"):
                href = href.split("#")[0]
                if not href: continue
                if href.startswith(DOC_HOST): target = (out / href[len(DOC_HOST):]).resolve()
                elif re.match(r"[a-z]+:", href): continue
                else: target = (page.parent / href).resolve()
                if target not in names and not target.exists(): problems.append(f"{rel}: a broken link to {href}")
        browser.close()
    assert not problems, "\n".join(problems)
