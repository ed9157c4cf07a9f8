"""The template renderer: user dir over the packaged defaults, strict, escaped, falling back with
file and line when a user template breaks; filters; export; and the templates in a wheel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from agent import render
from agent.errors import TemplateError
from agent.render import Renderer, check_user_templates, default_templates_dir, export_templates
from tests.kit import make_config

REPO = Path(__file__).resolve().parent.parent
DIGEST_TEMPLATES = ("digest.html.j2", "digest.txt.j2", "digest.subject.j2",
                    "_digest_row.html.j2", "_digest_row.txt.j2")


@pytest.fixture
def user_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "mine"
    directory.mkdir()
    return directory


# --------------------------------------------------------------------------- filters


def test_days_ago_in_both_languages() -> None:
    assert [render.days_ago(n, "de") for n in (0, 1, 93)] == ["heute", "gestern", "vor 93 Tagen"]
    assert [render.days_ago(n, "en") for n in (0, 1, 93)] == ["today", "yesterday",
                                                              "93 days ago"]


def test_dates_are_shown_in_the_users_time_zone(user_dir: Path) -> None:
    (user_dir / "when.txt.j2").write_text(
        "{{ moment|short_date }} {{ moment|long_date }} {{ moment|weekday }} "
        "{{ (moment|local).hour }}")
    late = datetime(2026, 3, 28, 23, 30, tzinfo=UTC)  # already Sunday the 29th in Berlin
    de = Renderer(make_config(templates=user_dir, language="de")).render("when.txt.j2", moment=late)
    en = Renderer(make_config(templates=user_dir, language="en")).render("when.txt.j2", moment=late)
    assert de == "29.03.2026 29. März 2026 Sonntag 0"
    assert en == "2026-03-29 29 March 2026 Sunday 0"
    (user_dir / "day.txt.j2").write_text("{{ day|short_date }} {{ day|weekday }}")
    assert Renderer(make_config(templates=user_dir, language="de")).render(
        "day.txt.j2", day=date(2026, 3, 28)) == "28.03.2026 Samstag"  # a date stays as it is


# --------------------------------------------------------------------------- lookup, escaping


def test_user_templates_win_and_missing_ones_come_from_the_defaults(user_dir: Path) -> None:
    (user_dir / "digest.subject.j2").write_text("mine: {{ picks|length }}")
    renderer = Renderer(make_config(templates=user_dir))
    assert renderer.render("digest.subject.j2", picks=[1, 2]) == "mine: 2"
    assert renderer.source_of("digest.subject.j2").is_user
    assert not renderer.source_of("digest.html.j2").is_user
    assert renderer.problems == []


def test_html_is_escaped_and_text_is_not(user_dir: Path) -> None:
    (user_dir / "x.html.j2").write_text("<b>{{ name }}</b>")
    (user_dir / "x.txt.j2").write_text("{{ name }}")
    renderer = Renderer(make_config(templates=user_dir))
    evil = "<script>alert(1)</script>"
    # `name` is a template variable like any other (the template's name is positional-only).
    assert renderer.render("x.html.j2", name=evil) == (
        "<b>&lt;script&gt;alert(1)&lt;/script&gt;</b>")
    assert renderer.render("x.txt.j2", name=evil) == evil


def test_undefined_variables_are_errors_not_blanks(user_dir: Path) -> None:
    (user_dir / "only-mine.txt.j2").write_text("Hi {{ nobody }}")
    with pytest.raises(TemplateError, match=r"only-mine\.txt\.j2, line 1: 'nobody' is undefined"):
        Renderer(make_config(templates=user_dir)).render("only-mine.txt.j2")


def test_unknown_template_is_a_clear_error() -> None:
    with pytest.raises(TemplateError, match=r"template nope\.j2 not found"):
        Renderer(make_config()).render("nope.j2")


# --------------------------------------------------------------------------- broken user templates


def test_syntax_error_falls_back_with_file_and_line(user_dir: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    broken = user_dir / "digest.subject.j2"
    broken.write_text("ok\n\n{% if picks %}never closed\n")
    renderer = Renderer(make_config(templates=user_dir))
    subject = renderer.render("digest.subject.j2", picks=[], day=date(2026, 11, 26))
    assert subject.startswith("Nobody to contact today")  # the packaged default
    assert len(renderer.problems) == 1
    assert renderer.problems[0].startswith(f"template {broken.resolve()}, line 3:")
    assert "using the default template instead" in caplog.text


def test_runtime_error_in_a_user_partial_falls_back(user_dir: Path) -> None:
    """A broken user partial breaks the packaged template that includes it: fall back too."""
    partial = user_dir / "_digest_row.txt.j2"
    partial.write_text("{% macro pick(row, number) %}{{ row.nope }}{% endmacro %}\n"
                       "{% macro line(row) %}{{ 1 // 0 }}{% endmacro %}\n")
    config = make_config(templates=user_dir)
    from agent import digest
    from tests.test_digest import NOW, make_plan

    renderer = Renderer(config)
    rendered = digest.render(config, make_plan(config), NOW, renderer)
    assert "Jürgen Weiß" in rendered.text  # the default text, whole
    assert len(rendered.problems) == 1
    assert f"{partial.resolve()}, line 1" in rendered.problems[0]
    assert "nope" in rendered.problems[0]


def test_a_user_template_including_a_missing_file(user_dir: Path) -> None:
    (user_dir / "digest.subject.j2").write_text('{% include "gone.j2" %}')
    renderer = Renderer(make_config(templates=user_dir))
    assert renderer.render("digest.subject.j2", picks=[],
                           day=date(2026, 11, 26)).startswith("Nobody")
    assert "includes gone.j2, which does not exist" in renderer.problems[0]


def test_any_exception_in_a_user_template_falls_back(user_dir: Path) -> None:
    (user_dir / "digest.subject.j2").write_text("{{ 1 / 0 }}")
    renderer = Renderer(make_config(templates=user_dir))
    assert renderer.render("digest.subject.j2", picks=[],
                           day=date(2026, 11, 26)).startswith("Nobody")
    assert "ZeroDivisionError" in renderer.problems[0]
    assert f"{(user_dir / 'digest.subject.j2').resolve()}, line 1" in renderer.problems[0]


def test_check_user_templates_reports_syntax_errors(user_dir: Path) -> None:
    (user_dir / "a.txt.j2").write_text("fine {{ x }}")
    (user_dir / "b.html.j2").write_text("line\n{% for %}")
    problems = list(check_user_templates(make_config(templates=user_dir)))
    assert len(problems) == 1
    assert problems[0].startswith(f"template {user_dir / 'b.html.j2'}, line 2:")
    assert list(check_user_templates(make_config())) == []


# --------------------------------------------------------------------------- export


def test_export_copies_every_default_and_keeps_the_users_files(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    copied, kept = export_templates(target)
    assert {p.name for p in copied} >= set(DIGEST_TEMPLATES)
    assert kept == []
    for path in copied:
        assert path.read_bytes() == (default_templates_dir() / path.name).read_bytes()
    (target / "digest.txt.j2").write_text("mine")
    copied, kept = export_templates(target)
    assert copied == [] and target / "digest.txt.j2" in kept
    assert (target / "digest.txt.j2").read_text() == "mine"
    copied, _ = export_templates(target, overwrite=True)
    assert (target / "digest.txt.j2").read_text() != "mine"


def test_exported_templates_render_like_the_defaults(tmp_path: Path) -> None:
    from agent import digest
    from tests.test_digest import NOW, make_plan

    export_templates(tmp_path / "copy")
    mine, packaged = make_config(templates=tmp_path / "copy"), make_config()
    assert digest.render(mine, make_plan(mine), NOW, Renderer(mine)) == digest.render(
        packaged, make_plan(packaged), NOW, Renderer(packaged))


# --------------------------------------------------------------------------- the wheel


def _build_requirements_met() -> bool:
    """Whether this venv can build without isolation (pyproject wants setuptools>=68, wheel)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        major = int(version("setuptools").split(".")[0])
        version("wheel")
    except (PackageNotFoundError, ValueError):
        return False
    return major >= 68


@pytest.mark.slow
def test_default_templates_ship_in_the_wheel(tmp_path: Path) -> None:
    # Build from a clean copy: a stale build/ directory in the checkout would leak old files.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "agent", source / "agent", ignore=ignore)
    shutil.copytree(REPO / "templates", source / "templates", ignore=ignore)
    dist = tmp_path / "dist"
    command = [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q",
               "-w", str(dist)]
    if _build_requirements_met():
        command.append("--no-build-isolation")
    # Otherwise pip fetches the build requirements from the package index, as users' pip does.
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = dist.glob("followup_agent-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for template in DIGEST_TEMPLATES:
            assert f"agent/templates/{template}" in names
        # Every module of every subpackage ships (a package missing from pyproject's list
        # makes an installed followup unable to start).
        modules = {p.relative_to(REPO).as_posix() for p in (REPO / "agent").rglob("*.py")}
        assert modules <= names, f"not in the wheel: {sorted(modules - names)}"
        archive.extractall(tmp_path / "unpacked")
    packaged = {Path(n).name for n in names if n.startswith("agent/templates/")}
    assert packaged == {p.name for p in (REPO / "templates").glob("*.j2")}

    # With the unpacked wheel first on sys.path, the defaults come from inside the package.
    probe = ("import agent.render as r; d = r.default_templates_dir(); print(d); "
             "print(sorted(p.name for p in d.glob('*.j2')))")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "unpacked")}
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           env=env, cwd=tmp_path, timeout=60, check=False)
    assert found.returncode == 0, found.stderr
    where, listing = found.stdout.splitlines()
    assert Path(where) == (tmp_path / "unpacked" / "agent" / "templates").resolve()
    for template in DIGEST_TEMPLATES:
        assert template in listing
