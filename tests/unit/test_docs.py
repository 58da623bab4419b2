"""The documentation a newcomer reads: the README stays short, every relative
link and #anchor in the Markdown pages points at something that exists, and
the pages describe the code, not the issues it came from.

Pure text checks (no torch), so they run in well under a second."""

import glob
import os
import re
from urllib.parse import unquote

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
README_MAX_LINES = 300


def repo_path(*parts):
    return os.path.join(REPO, *parts)


def linked_pages():
    """Every Markdown page whose links are checked, as absolute paths."""
    pages = [repo_path("README.md"), repo_path("benchmarks", "README.md")]
    pages += sorted(glob.glob(repo_path("docs", "*.md")))
    pages += sorted(glob.glob(repo_path("recipes", "*", "README.md")))
    return [page for page in pages if os.path.isfile(page)]


def prose_pages():
    """The pages that must not cite issues: the README, docs/ and benchmarks."""
    pages = [repo_path("README.md"), repo_path("benchmarks", "README.md")]
    pages += sorted(glob.glob(repo_path("docs", "*.md")))
    return [page for page in pages if os.path.isfile(page)]


def relative(path):
    return os.path.relpath(path, REPO)


FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
INLINE_CODE = re.compile(r"(`+)(?:.+?)\1")
# [text](target) and ![alt](target), with an optional "title"
INLINE_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
# [label]: target
REFERENCE_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
ATX_HEADING = re.compile(r"^\s{0,3}(#{1,6})(?:\s+(.*?))?\s*$")
SETEXT_UNDERLINE = re.compile(r"^\s{0,3}(=+|-+)\s*$")
HTML_ANCHOR = re.compile(r"<a\s[^>]*(?:name|id)\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def prose_lines(text):
    """``(line number, line)`` of the lines outside fenced code blocks."""
    fence = None
    for number, line in enumerate(text.split("\n"), 1):
        match = FENCE.match(line)
        if fence is None:
            if match:
                fence = match.group(1)
                continue
            yield number, line
        elif match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence) \
                and not line.strip()[len(match.group(1)):].strip():
            fence = None


def links(text):
    """``(line number, target)`` of every link and image outside code."""
    found = []
    for number, line in prose_lines(text):
        line = INLINE_CODE.sub("", line)
        definition = REFERENCE_DEFINITION.match(line)
        if definition:
            found.append((number, definition.group(1)))
            continue
        for match in INLINE_LINK.finditer(line):
            found.append((number, match.group(1)))
    return [(number, target.strip("<>")) for number, target in found]


def slug(heading):
    """GitHub's anchor of a heading: its text (Markdown stripped), lowercase,
    without punctuation other than hyphens and spaces, spaces as hyphens."""
    text = re.sub(r"!?\[((?:[^\]\\]|\\.)*)\]\([^)]*\)", r"\1", heading)  # links -> their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text):
    """Every anchor a page defines: its headings' slugs (repeats get -1, -2, ...
    as on GitHub) and explicit ``<a name=...>``/``id=...`` anchors."""
    found, seen = set(), {}
    previous = None
    for _, line in prose_lines(text):
        heading = None
        atx = ATX_HEADING.match(line)
        if atx:
            heading = re.sub(r"\s+#+\s*$", "", atx.group(2) or "")
        elif previous and previous.strip() and SETEXT_UNDERLINE.match(line) \
                and not ATX_HEADING.match(previous) and "|" not in previous:
            heading = previous.strip()
        if heading is not None:
            base = slug(heading)
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
        found.update(HTML_ANCHOR.findall(line))
        previous = line
    return found


def is_external(target):
    return bool(SCHEME.match(target)) or target.startswith("//")


def resolve(page, target):
    """``(absolute path, anchor or None)`` a relative link of ``page`` points at."""
    path, _, anchor = target.partition("#")
    path = unquote(path)
    if not path:
        resolved = page
    elif path.startswith("/"):
        resolved = repo_path(path.lstrip("/"))
    else:
        resolved = os.path.normpath(os.path.join(os.path.dirname(page), path))
    return resolved, (unquote(anchor) if anchor else None)


def read(path):
    with open(path, encoding="utf-8") as fin:
        return fin.read()


def test_the_readme_is_at_most_300_lines():
    lines = read(repo_path("README.md")).count("\n")
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines (at most {README_MAX_LINES}): "
        "move long sections to a page under docs/ and link it")


def broken_links(pages):
    """``page:line: target -> path does not exist`` for each relative link of
    ``pages`` whose file is missing (an #anchor is stripped first)."""
    missing = []
    for page in pages:
        for number, target in links(read(page)):
            if is_external(target) or target.startswith("#"):
                continue
            path, _ = resolve(page, target)
            if not os.path.exists(path):
                missing.append(f"{relative(page)}:{number}: {target} -> {relative(path)} does not exist")
    return missing


def broken_anchors(pages):
    """``page:line: target: ...`` for each #anchor of ``pages`` into a Markdown
    file (the page itself or another) that names none of its headings."""
    cache, broken = {}, []
    for page in pages:
        for number, target in links(read(page)):
            if is_external(target) or "#" not in target:
                continue
            path, anchor = resolve(page, target)
            if not anchor or not path.endswith(".md") or not os.path.isfile(path):
                continue  # a missing file is broken_links' finding
            if path not in cache:
                cache[path] = anchors(read(path))
            if anchor not in cache[path]:
                broken.append(f"{relative(page)}:{number}: {target}: {relative(path)} has no heading "
                              f"with the anchor #{anchor}")
    return broken


def test_every_relative_link_points_at_a_file_that_exists():
    missing = broken_links(linked_pages())
    assert not missing, "broken relative links:\n" + "\n".join(missing)


def test_every_anchor_names_a_heading_of_its_page():
    broken = broken_anchors(linked_pages())
    assert not broken, "anchors that name no heading:\n" + "\n".join(broken)


ISSUE = re.compile(r"\bissues? \d+\b", re.IGNORECASE)


def issue_references(pages):
    """``page:line: 'issue N' in '<line>'`` for each issue reference of ``pages``."""
    cited = []
    for page in pages:
        for number, line in enumerate(read(page).split("\n"), 1):
            match = ISSUE.search(line)
            if match:
                cited.append(f"{relative(page)}:{number}: {match.group(0)!r} in {line.strip()!r}")
    return cited


def code_files():
    """Code, recipe YAMLs and recipe READMEs: they describe what things do, not
    the issues they came from (this file's own checker examples aside)."""
    patterns = [("lobes", "**", "*.py"), ("recipes", "**", "*.py"), ("recipes", "*", "hparams", "*.yaml"),
                ("recipes", "*", "README.md"), ("tests", "**", "*.py"), ("benchmarks", "**", "*.py")]
    files = sorted({path for pattern in patterns for path in glob.glob(repo_path(*pattern), recursive=True)})
    return [path for path in files if os.path.abspath(path) != os.path.abspath(__file__)]


def test_the_docs_cite_no_issue_numbers():
    cited = issue_references(prose_pages() + code_files())
    assert not cited, ("issue references (describe what the code does and why; "
                       "history goes in CHANGELOG.md):\n" + "\n".join(cited))


# The checker itself.

def test_slug_follows_githubs_rule():
    assert slug("Is N layers as good as all of them? Intervals and non-inferiority") == \
        "is-n-layers-as-good-as-all-of-them-intervals-and-non-inferiority"
    assert slug("Faster CNN front-end: normalising in the convolution's layout") == \
        "faster-cnn-front-end-normalising-in-the-convolutions-layout"
    assert slug("A quick check (`foundation.py`)") == "a-quick-check-foundationpy"
    assert slug("The SSL-AASIST setting: XLS-R + AASIST + RawBoost") == \
        "the-ssl-aasist-setting-xls-r--aasist--rawboost"
    assert slug("See [the docs](docs/x.md) now") == "see-the-docs-now"
    assert slug("run_folder layout") == "run_folder-layout"


def test_anchors_number_repeated_headings_and_skip_code():
    text = "# Setup\n\n## Setup\n\n```bash\n# not a heading\n```\n\nTitle\n-----\n"
    assert anchors(text) == {"setup", "setup-1", "title"}


def test_links_skip_code_and_read_titles_and_references():
    text = (
        "See [a](docs/a.md#x) and ![img](pic.png \"title\").\n"
        "`[not](code.md)` here\n"
        "```\n[not](fenced.md)\n```\n"
        "  ```python\n  [not](indented.md)\n  ```\n"
        "[ref]: <other.md>\n"
    )
    assert links(text) == [(1, "docs/a.md#x"), (1, "pic.png"), (9, "other.md")]


def test_resolve_is_relative_to_the_page(tmp_path):
    page = str(tmp_path / "docs" / "page.md")
    assert resolve(page, "../README.md#quick-start") == (str(tmp_path / "README.md"), "quick-start")
    assert resolve(page, "#here") == (page, "here")
    assert is_external("https://example.org") and is_external("mailto:a@b.c")
    assert not is_external("docs/a.md")


def test_the_checks_name_the_page_line_and_link(tmp_path):
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "page.md"
    other = tmp_path / "other.md"
    other.write_text("# Other page\n\n## Known section\n")
    page.write_text(
        "# Page\n\n"
        "[ok](../other.md#known-section) [self](#page) [web](https://example.org/x.md#nope)\n"
        "[gone](missing.md#x) [bad anchor](../other.md#unknown)\n"
        "[bad self](#nowhere) fixed in issue 12\n"
    )
    name = os.path.relpath(str(page), REPO)
    assert broken_links([str(page)]) == [
        f"{name}:4: missing.md#x -> {os.path.relpath(str(tmp_path / 'docs' / 'missing.md'), REPO)} does not exist"]
    assert broken_anchors([str(page)]) == [
        f"{name}:4: ../other.md#unknown: {os.path.relpath(str(other), REPO)} has no heading with the anchor #unknown",
        f"{name}:5: #nowhere: {name} has no heading with the anchor #nowhere"]
    assert issue_references([str(page)]) == [
        f"{name}:5: 'issue 12' in '[bad self](#nowhere) fixed in issue 12'"]
