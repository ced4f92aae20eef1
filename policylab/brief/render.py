"""Impact briefs: an experiment's results folder (docs/contracts.md) rendered to HTML and PDF.

:func:`write_brief` reads the folder (:func:`~policylab.brief.results.load`, nothing is
rerun), builds the templates' context section by section
(:func:`~policylab.brief.sections.context`, in the order of the registry
``sections.SECTIONS``), renders ``brief.html`` with jinja2 (autoescaping on) and turns the
same templates, rendered with ``paged`` true, into ``brief.pdf`` with WeasyPrint: the paged
HTML leaves out what is shown on screen only (the long full tables, class ``screen-only``),
which the PDF would hide anyway, so WeasyPrint never styles it. The HTML is one
self-contained file (CSS and PNG figures inline); the PDF renderer is given no way to fetch
anything but inline ``data:`` URLs.

Templates are looked up first in ``template_dir`` (an analyst's copy), then among the
defaults shipped as ``policylab.templates`` (the repository's ``templates/`` folder), so
a custom folder needs only the files it changes; any template may extend or include the
defaults as ``default/NAME`` (``{% extends "default/brief.html" %}`` then override the
block named after one section).

Templates are input, not code: they render in Jinja's immutable sandbox (no attribute
starting with ``_``, no mutation of the context, bounded ``range``, powers and
repetition), the context is plain data (``sections.plain``), and the loader reads only
files inside its folders (no ``..``, no absolute names, no symbolic link leading out).
Bad input (a missing or malformed results file, an unknown format or paper, a broken,
hostile or escaping template) raises :class:`~policylab.errors.InputError` with one line
before anything is written; both files are written under temporary names and renamed
into place together.
"""

from __future__ import annotations

import os
import traceback
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from policylab.atomic import write_all
from policylab.brief import figures
from policylab.brief.results import load
from policylab.brief.sections import context, paper_size
from policylab.errors import InputError

FORMATS = ("html", "pdf")
MAX_EXPONENT = 100  # largest exponent of ``**`` in a template
MAX_REPEAT = 100_000  # largest length of a string or list made by ``*`` in a template


class TemplateRefused(jinja2.TemplateError):
    """A template name or file the loader will not read: outside its folder or not UTF-8.
    ``path`` is the refused file, when the refusal is about a file rather than a name."""

    def __init__(self, message: str, path: Path | Traversable | None = None):
        super().__init__(message)
        self.path = path


class FolderLoader(jinja2.BaseLoader):
    """Templates from one folder and nothing outside it: a name with an empty, ``.`` or
    ``..`` part is refused, and so is a file whose real path (symbolic links followed)
    leaves the folder."""

    def __init__(self, root: Path | Traversable, label: str):
        self.root, self.label = root, label
        self.real_root = root.resolve() if isinstance(root, Path) else None

    def get_source(self, environment: jinja2.Environment, template: str):
        parts = template.split("/")
        if any(p in ("", ".", "..") or "\0" in p for p in parts):
            raise TemplateRefused(f"template {template!r} leaves {self.label}; allowed: a relative path inside "
                                  "it, without '.' or '..' parts")
        path = self.root.joinpath(*parts)
        if self.real_root is not None and not path.resolve().is_relative_to(self.real_root):
            raise TemplateRefused(f"leads outside {self.label} (a symbolic link); allowed: files inside it", path)
        if not path.is_file():
            raise jinja2.TemplateNotFound(template)
        try:
            source = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise TemplateRefused("not UTF-8 text; allowed: UTF-8 templates", path) from None
        return source, str(path), lambda: True


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, with ``**`` and sequence ``*`` bounded so a template
    cannot hang the process or exhaust memory with one expression."""

    intercepted_binops = frozenset({"**", "*"})

    def call_binop(self, context, operator, left, right):
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"exponent {right} is over {MAX_EXPONENT}")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > MAX_REPEAT:
                    raise SecurityError(f"repetition to length {len(seq) * n} is over {MAX_REPEAT}")
        return super().call_binop(context, operator, left, right)


def environment(template_dir: str | os.PathLike | None = None) -> jinja2.Environment:
    """Sandboxed templates from ``template_dir`` first, then the defaults (also as ``default/NAME``)."""
    defaults = FolderLoader(resources.files("policylab.templates"), "the default templates")
    loaders: list[jinja2.BaseLoader] = [jinja2.PrefixLoader({"default": defaults}), defaults]
    if template_dir is not None:
        if not Path(template_dir).is_dir():
            raise InputError(f"--template-dir: {template_dir} is not a folder; allowed: a folder of templates")
        loaders.insert(0, FolderLoader(Path(template_dir), f"the template folder {template_dir}"))
    return Sandbox(loader=jinja2.ChoiceLoader(loaders), undefined=jinja2.StrictUndefined,
                   autoescape=jinja2.select_autoescape(("html", "xml"), default_for_string=True),
                   trim_blocks=True, lstrip_blocks=True)


_TEMPLATE_FRAMES = ("template", "top-level template code")  # names jinja2 gives a template's traceback frames


def _where(e: BaseException) -> str:
    """``file:line: `` of the innermost template line in ``e``'s traceback ("" if none)."""
    for frame in reversed(traceback.extract_tb(e.__traceback__)):
        if frame.name in _TEMPLATE_FRAMES or frame.name.startswith("block "):
            return f"{frame.filename}:{frame.lineno}: "
    return ""


def _template_error(e: Exception) -> InputError:
    """One line for anything a template raised: where, and what."""
    if isinstance(e, TemplateRefused) and e.path is not None:
        return InputError(f"{e.path}: template error: {e.message}")
    if isinstance(e, jinja2.TemplateSyntaxError):
        return InputError(f"{e.filename or e.name}:{e.lineno}: template error: {e.message}")
    if isinstance(e, jinja2.TemplateNotFound):
        return InputError(f"{_where(e)}template error: template {e.name!r} not found in the template folder or "
                          "the defaults")
    if isinstance(e, jinja2.TemplateError):
        return InputError(f"{_where(e)}template error: {e.message}")
    first = (str(e).strip().splitlines() or [""])[0]
    return InputError(f"{_where(e)}template error: {type(e).__name__}: {first}")


def brief_template(template_dir: str | os.PathLike | None = None) -> jinja2.Template:
    """The compiled brief template; every custom template is compiled too, so a syntax
    error, an escaping link or a file that is not UTF-8 is reported before any work is done."""
    env = environment(template_dir)
    try:
        if template_dir is not None:
            for path in sorted(Path(template_dir).rglob("*")):
                if path.is_file() and path.suffix in (".html", ".css"):
                    env.get_template(path.relative_to(template_dir).as_posix())
        return env.get_template("brief.html")
    except jinja2.TemplateError as e:
        raise _template_error(e) from None


def _render(template: jinja2.Template, ctx: dict) -> str:
    try:
        return template.render(ctx)
    except Exception as e:  # the context is plain data, so whatever fails here is the template's doing
        raise _template_error(e) from None


def render_html(ctx: dict, template_dir: str | os.PathLike | None = None) -> str:
    """The brief as one self-contained HTML document."""
    return _render(brief_template(template_dir), ctx)


def render_pdf(html: str) -> bytes:
    """The same HTML, paginated by WeasyPrint with the templates' print CSS. Only inline
    ``data:`` URLs are fetched: no network, no local files."""
    import weasyprint
    from weasyprint.urls import URLFetcher

    return weasyprint.HTML(string=html, url_fetcher=URLFetcher(allowed_protocols=("data",))).write_pdf()


def parse_formats(text: str) -> tuple[str, ...]:
    """``"html,pdf"`` -> ("html", "pdf"); raises InputError for anything else."""
    chosen = tuple(dict.fromkeys(f.strip().lower() for f in text.split(",") if f.strip()))
    bad = [f for f in chosen if f not in FORMATS]
    if bad or not chosen:
        raise InputError(f"--format: got {text!r}; allowed: {', '.join(FORMATS)} (comma-separated)")
    return chosen


def write_brief(folder: str | os.PathLike, formats: tuple[str, ...] = FORMATS, *,
                template_dir: str | os.PathLike | None = None, title: str | None = None,
                paper: str = "a4", firm_names: bool = False) -> list[Path]:
    """Render ``brief.html`` and/or ``brief.pdf`` into the results folder, with each
    figure's data as ``brief-data/<figure id>.csv`` beside them (linked from the HTML).
    Returns the paths, the brief's last. ``firm_names``: name venues as the scenario does
    instead of by archetype.

    Everything is rendered in memory first; the files are then written under temporary
    names and renamed into place, so a failure (OSError) leaves no half-written brief.
    """
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise InputError(f"--format: got {','.join(formats)!r}; allowed: {', '.join(FORMATS)} (comma-separated)")
    paper_size(paper)
    template = brief_template(template_dir)
    res = load(folder, firm_names=firm_names)
    ctx = context(res, title=title, paper=paper)
    content = {"html": _render(template, ctx).encode("utf-8")}
    if "pdf" in formats:
        content["pdf"] = render_pdf(_render(template, {**ctx, "paged": True}))
    tables = [(res.folder / figures.csv_name(f.id), f.data.to_csv(index=False).encode("utf-8"))
              for f in figures.draw_all(res)]
    if tables:
        (res.folder / figures.DATA_FOLDER).mkdir(exist_ok=True)
    written = write_all([(path, lambda p, data=data: p.write_bytes(data)) for path, data in tables]
                        + [(res.folder / f"brief.{fmt}", lambda p, data=content[fmt]: p.write_bytes(data))
                           for fmt in formats])
    return written
