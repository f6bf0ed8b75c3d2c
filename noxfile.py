"""
The support matrix: Django 5.2 LTS on Python 3.11 and Django 6.x on Python
3.13, each on SQLite and PostgreSQL. `make test` runs the first in .venv;
CI (`.ci/run`) also runs `nox -s django6`.
"""

import glob
import os
import shutil
import subprocess

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["django52", "django6"]


def interpreter(version: str) -> str:
    """python<version> from PATH if it runs, else from pyenv's versions folder."""
    found = shutil.which(f"python{version}")
    if found and subprocess.run([found, "-c", ""], capture_output=True).returncode == 0:
        return found
    roots = [os.environ.get("PYENV_ROOT", ""), os.path.expanduser("~/.pyenv")]
    if shutil.which("pyenv"):
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True)
        roots.insert(0, root.stdout.strip())
    for root in filter(None, roots):
        pattern = os.path.join(
            root, "versions", f"{version}*", "bin", f"python{version}"
        )
        matches = sorted(glob.glob(pattern))
        if matches:
            return matches[-1]
    return version  # nox reports it missing


def run_suite(session: nox.Session, django: str) -> None:
    session.install("-e", ".[test]", f"Django{django}")
    session.run("python", "-m", "django", "--version")
    session.run("python", "-m", "pytest")
    require = ["--require"] if os.environ.get("PG_REQUIRED") else []
    session.run("python", "tests/pgserver.py", *require, "--", "python", "-m", "pytest")


@nox.session(python=interpreter("3.11"))
def django52(session: nox.Session) -> None:
    run_suite(session, "~=5.2.0")


@nox.session(python=interpreter("3.13"))
def django6(session: nox.Session) -> None:
    run_suite(session, ">=6.0,<7")
