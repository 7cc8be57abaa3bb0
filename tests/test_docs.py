"""The documentation site (mkdocs.yml, docs/) builds offline with warnings as errors, every page of its nav is
built, and the API reference is generated from the docstrings. (Its command lines: tests/test_command_line.py.)"""
import os
import re
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def nav_pages(nav):
    """Every Markdown file named in mkdocs.yml's nav, in order."""
    for item in nav:
        if isinstance(item, str):
            yield item
        else:
            for value in item.values():
                yield from ([value] if isinstance(value, str) else nav_pages(value))


def built_path(site, page):
    """Where mkdocs (use_directory_urls) writes a page: x/index.md -> x/index.html, x/y.md -> x/y/index.html."""
    stem = page[:-len(".md")]
    if os.path.basename(stem) == "index":
        return os.path.join(site, stem + ".html")
    return os.path.join(site, stem, "index.html")


def test_site_builds_strict_with_every_nav_page(tmp_path):
    config = yaml.safe_load(open(os.path.join(ROOT, "mkdocs.yml"), encoding="utf-8"))
    pages = list(nav_pages(config["nav"]))
    assert len(pages) >= 30 and len(pages) == len(set(pages))
    for page in pages:
        assert os.path.isfile(os.path.join(ROOT, "docs", page)), page
    # nothing that downloads at build time (Material's privacy/social plugins), no web fonts
    plugins = [p if isinstance(p, str) else next(iter(p)) for p in config["plugins"]]
    assert not {"privacy", "social", "material/privacy", "material/social"} & set(plugins)
    assert config["theme"].get("font") is False

    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", "mkdocs.yml", "-d", str(site)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WARNING" not in proc.stderr, proc.stderr

    for page in pages:
        path = built_path(str(site), page)
        assert os.path.isfile(path) and os.path.getsize(path) > 1000, page
    # the API reference is generated from the docstrings, not written by hand
    optvis = open(built_path(str(site), "api/optvis.md"), encoding="utf-8").read()
    assert 'id="lucidtl.optvis.render.render_vis"' in optvis
    assert "doc-function" in optvis and "Renderer" in optvis
    for page in (p for p in pages if p.startswith("api/") and p != "api/index.md"):
        source = open(os.path.join(ROOT, "docs", page), encoding="utf-8").read()
        html = open(built_path(str(site), page), encoding="utf-8").read()
        for module in re.findall(r"^::: (\S+)$", source, re.M):
            assert f'id="{module}"' in html, (page, module)
    # the deviations keep their numbers: each group of the list starts where the last one stopped
    deviations = open(built_path(str(site), "deviations.md"), encoding="utf-8").read()
    for start in (8, 12, 16, 19, 20, 24, 30, 32):
        assert f'<ol start="{start}">' in deviations, start
    # the tour's picture is there, small
    picture = site / "img" / "tour.png"
    assert picture.is_file() and picture.stat().st_size < 200_000


def test_readme_is_short_and_links_to_the_site():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    assert len(text.splitlines()) < 250
    assert "](docs/img/tour.png)" in text
    links = re.findall(r"\]\((docs/[^)#]+)\)", text)
    assert len(links) >= 20
    for link in links:
        assert os.path.exists(os.path.join(ROOT, link)), link


def test_api_reference_covers_every_library_module():
    """Each module of the library packages (not the entry points) has its `::: module` on an API page; a
    package whose __init__ is empty needs none."""
    documented = set()
    for page in os.listdir(os.path.join(ROOT, "docs", "api")):
        text = open(os.path.join(ROOT, "docs", "api", page), encoding="utf-8").read()
        documented |= set(re.findall(r"^::: (\S+)$", text, re.M))
    expected = {"lucidtl.attribution"}
    packages = ("optvis", "misc", "recipes", "models", "data", "train", "analysis", "atlas", "study", "stylegan2",
                "export")
    for package in packages:
        for folder, _, files in os.walk(os.path.join(ROOT, "lucidtl", package)):
            for name in files:
                path = os.path.join(folder, name)
                module = os.path.relpath(path, ROOT)[:-len(".py")].replace(os.sep, ".")
                if not name.endswith(".py") or name == "__main__.py":
                    continue
                if name == "__init__.py":
                    if not open(path, encoding="utf-8").read().strip():
                        continue
                    module = module[:-len(".__init__")]
                if not any(part.startswith("_") for part in module.split(".")):
                    expected.add(module)
    from cli_entries import ENTRY_MODULES

    for name in os.listdir(os.path.join(ROOT, "lucidtl")):  # top-level library modules (not the entry points)
        module = f"lucidtl.{name[:-len('.py')]}"
        if name.endswith(".py") and name != "__init__.py" and module not in ENTRY_MODULES:
            expected.add(module)
    assert len(expected) > 60
    assert sorted(expected - documented) == []
