"""
The README's Quickstart runs as written. Its Python blocks are read from
README.md by heading, so this test follows the README.

- The block headed ``# pages/models.py`` is executed as it stands: it defines
  the quickstart's ``Page`` model, in an isolated app registry (so the test
  app's own ``Page`` is untouched) under the ``versioning`` app's label (so its
  table, ``versioning_page``, collides with nothing). Its table is created for
  this module and dropped afterwards. The registry holds Django's ``User``
  too, so that the ``changed_by`` key resolves and the model's system checks
  pass as they would in a project.
- The shell block runs statement by statement against that model. Its
  ``from pages... import`` line is not executed: there is no ``pages`` app
  here, and the namespace already holds the model that line would import.
  Where a bare expression carries a comment that starts with a Python literal
  (``page.version  # 2``, ``then.is_current  # False``), the expression must
  equal that literal, so the comments cannot drift either.
- The block headed ``# pages/views.py`` is executed without its
  ``from pages... import`` line, for the same reason; its view is then called
  with a request, and Django's ``render`` in its namespace is replaced by one
  that records what it was given, as the README's template does not exist here.

Runs on SQLite and PostgreSQL.
"""

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.http import Http404, HttpResponse
from django.test import RequestFactory
from django.test.utils import isolate_apps

README = Path(__file__).resolve().parent.parent / "README.md"
HEADING = "## Quickstart"
# The quickstart's model is registered under this app's label.
MODULE = "versioning.readme_quickstart"
USERS_APP = "pages"

pytestmark = pytest.mark.django_db


def section_blocks(heading: str) -> list[str]:
    """The Python code blocks of one README section, in order."""
    text = README.read_text()
    start = text.index(f"\n{heading}\n")
    level = heading.split(" ")[0]
    ends = [text.find(f"\n{marker} ", start + 1) for marker in ("##", level)]
    end = min((e for e in ends if e != -1), default=len(text))
    section = text[start:end]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def quickstart_blocks() -> list[str]:
    """The Python code blocks of the README's Quickstart section, in order."""
    return section_blocks(HEADING)


def block_for(first_line: str) -> str:
    matches = [b for b in quickstart_blocks() if b.startswith(first_line + "\n")]
    assert len(matches) == 1, f"one Quickstart block starts with {first_line!r}"
    return matches[0]


def shell_block() -> str:
    shell = [b for b in quickstart_blocks() if not b.startswith("# pages/")]
    assert len(shell) == 1, "one Quickstart block is the shell session"
    return shell[0]


def without_users_imports(code: str, app: str = USERS_APP) -> str:
    """``code`` without the lines that import the user's own app."""
    pattern = re.compile(rf"^(from {app}[.\s]|import {app}\b)")
    kept = [line for line in code.splitlines() if not pattern.match(line)]
    assert len(kept) < len(code.splitlines()), "the block imports from pages"
    return "\n".join(kept) + "\n"


def expected_from_comment(comment: str):
    """The Python literal a comment starts with, as (True, value), or (False, None)."""
    text = comment.lstrip("#").strip()
    for end in range(len(text), 0, -1):
        try:
            return True, ast.literal_eval(text[:end])
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return False, None


def comments_by_line(code: str) -> dict[int, str]:
    tokens = tokenize.generate_tokens(io.StringIO(code).readline)
    return {t.start[0]: t.string for t in tokens if t.type == tokenize.COMMENT}


def run_checking_comments(code: str, namespace: dict) -> int:
    """
    Execute ``code`` one top-level statement at a time; a bare expression
    whose comment starts with a literal must equal it. Returns how many did.
    """
    comments = comments_by_line(code)
    checked = 0
    for statement in ast.parse(code).body:
        source = ast.get_source_segment(code, statement)
        if isinstance(statement, ast.Expr):
            value = eval(
                compile(ast.Expression(statement.value), "README.md", "eval"), namespace
            )
            found, expected = expected_from_comment(
                comments.get(statement.end_lineno, "")
            )
            if found:
                assert value == expected, (
                    f"README: {source}  # {expected!r}, got {value!r}"
                )
                checked += 1
        else:
            exec(compile(ast.Module([statement], []), "README.md", "exec"), namespace)
    return checked


@pytest.fixture(scope="module")
def page_model(django_db_setup, django_db_blocker):
    """The Quickstart's Page model, defined by the README's own block, with a table."""
    namespace = {"__name__": MODULE}
    # Building the isolated registry runs these apps' ready() again; both only
    # make connections and replacements that are already in place.
    with isolate_apps("versioning", "django.contrib.auth") as registry:
        registry.register_model("auth", get_user_model())
        exec(compile(block_for("# pages/models.py"), "README.md", "exec"), namespace)
    model = namespace["Page"]
    assert model._meta.apps is registry and model._meta.db_table == "versioning_page"
    errors = [m for m in model.check() if m.is_serious()]
    assert errors == [], errors
    with django_db_blocker.unblock():
        with connection.schema_editor() as editor:
            editor.create_model(model)
        try:
            yield model
        finally:
            with connection.schema_editor() as editor:
                editor.delete_model(model)


def test_the_quickstart_shell_session_runs_and_its_comments_hold(page_model):
    namespace = {"__name__": "readme_shell", "Page": page_model}
    checked = run_checking_comments(without_users_imports(shell_block()), namespace)
    assert checked >= 10  # the comments were read, not skipped

    page = namespace["page"]
    assert page.is_current and page.version == 3
    assert [v.body for v in page.history()] == [
        "First draft",
        "Second draft",
        "First draft",
    ]
    assert page_model.all_versions.filter(identity=page.identity).count() == 3


def test_the_quickstart_view_routes_by_identity(page_model):
    namespace = {"__name__": "readme_views"}
    exec(
        compile(
            without_users_imports(block_for("# pages/views.py")), "README.md", "exec"
        ),
        namespace,
    )
    rendered = {}

    def render(request, template_name, context):
        rendered.update(template=template_name, **context)
        return HttpResponse("rendered")

    namespace.update(Page=page_model, render=render)
    page = page_model.objects.create(title="Hello", body="First draft")
    first_pk = page.pk
    page.body = "Second draft"
    page.save()

    request = RequestFactory().get(f"/pages/{page.identity}/")
    response = namespace["page_detail"](request, identity=page.identity)
    assert response.status_code == 200
    assert rendered["page"].pk == page.pk != first_pk
    assert rendered["page"].body == "Second draft"

    with pytest.raises(Http404):
        namespace["page_detail"](request, identity=page_model().identity)


RELATIONS = "### Relations"


@pytest.fixture(scope="module")
def blog_models(django_db_setup, django_db_blocker):
    """The Relations section's Author and Post, defined by its own block."""
    [models_block] = [b for b in section_blocks(RELATIONS) if b.startswith("# blog/")]
    namespace = {"__name__": MODULE}
    with isolate_apps("versioning", "django.contrib.auth") as registry:
        registry.register_model("auth", get_user_model())
        exec(compile(models_block, "README.md", "exec"), namespace)
    models = namespace["Author"], namespace["Post"]
    with django_db_blocker.unblock():
        with connection.schema_editor() as editor:
            for model in models:
                editor.create_model(model)
        try:
            yield models
        finally:
            with connection.schema_editor() as editor:
                for model in reversed(models):
                    editor.delete_model(model)


def test_the_relations_time_travel_example_runs_and_its_comments_hold(blog_models):
    """Models defined after start-up (as here) get scoped joins and time travel too."""
    author, post = blog_models
    [shell] = [b for b in section_blocks(RELATIONS) if b.startswith("from django")]
    namespace = {"__name__": "readme_relations", "Author": author, "Post": post}
    checked = run_checking_comments(without_users_imports(shell, "blog"), namespace)
    assert checked >= 8

    assert post.all_versions.count() == 2 and author.all_versions.count() == 2
