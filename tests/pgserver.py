"""
Run a command against a throwaway PostgreSQL server on 127.0.0.1.

    python tests/pgserver.py [--require] -- COMMAND...

Starts a fresh server in a temporary folder, runs COMMAND with
VERSIONING_TEST_DATABASE_URL pointing at it, and stops the server afterwards,
also when COMMAND fails. Without PostgreSQL binaries it prints a loud notice
and exits 0, unless --require is given (CI), in which case it fails.
"""

import argparse
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile


def database_from_environment():
    """DATABASES["default"] for the server this script started, or None."""
    from urllib.parse import urlsplit

    url = os.environ.get("VERSIONING_TEST_DATABASE_URL")
    if not url:
        return None
    parts = urlsplit(url)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/") or "postgres",
        "USER": parts.username or "postgres",
        "PASSWORD": parts.password or "",
        "HOST": parts.hostname or "127.0.0.1",
        "PORT": parts.port or 5432,
    }


def find_bindir():
    explicit = os.environ.get("PG_BINDIR")
    if explicit:
        return explicit
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0,
    )
    for path in reversed(candidates):
        if os.path.exists(os.path.join(path, "initdb")):
            return path
    if shutil.which("pg_config"):
        path = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True
        ).stdout.strip()
        if os.path.exists(os.path.join(path, "initdb")):
            return path
    if shutil.which("initdb"):
        return os.path.dirname(shutil.which("initdb"))
    return None


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--require", action="store_true")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command

    bindir = find_bindir()
    if bindir is None:
        banner = "!" * 72
        message = "PostgreSQL binaries (initdb, pg_ctl) not found"
        if args.require:
            print(f"{banner}\n{message}: PostgreSQL is required here.\n{banner}")
            return 1
        print(
            f"{banner}\n{message}.\nThe PostgreSQL half of the suite did NOT run; "
            f"only SQLite was tested.\nInstall postgresql (Debian: apt-get install "
            f"postgresql) to run it.\n{banner}"
        )
        return 0

    as_root = os.geteuid() == 0
    run_as = ["runuser", "-u", "postgres", "--"] if as_root else []
    data = tempfile.mkdtemp(prefix="versioning-pg-")
    port = free_port()
    if as_root:
        user = pwd.getpwnam("postgres")
        os.chown(data, user.pw_uid, user.pw_gid)
    os.chmod(data, 0o700)
    pg_ctl = [*run_as, os.path.join(bindir, "pg_ctl"), "-D", data]
    quiet = {"cwd": "/tmp", "stdout": subprocess.DEVNULL}
    try:
        subprocess.run(
            [
                *run_as,
                os.path.join(bindir, "initdb"),
                "-D",
                data,
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=trust",
                "-E",
                "UTF8",
                "--no-locale",
            ],
            check=True,
            **quiet,
        )
        with open(os.path.join(data, "postgresql.conf"), "a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nunix_socket_directories = '{data}'\n"
                "max_connections = 50\n"
            )
        subprocess.run(
            [
                *pg_ctl,
                "-w",
                "-t",
                "60",
                "-l",
                os.path.join(data, "server.log"),
                "-o",
                f"-p {port}",
                "start",
            ],
            check=True,
            **quiet,
        )
        env = dict(os.environ)
        env["VERSIONING_TEST_DATABASE_URL"] = (
            f"postgresql://postgres@127.0.0.1:{port}/postgres"
        )
        print(f"PostgreSQL from {bindir} on 127.0.0.1:{port} (synchronous_commit=on)")
        return subprocess.run(command, env=env).returncode
    finally:
        subprocess.run(
            [*pg_ctl, "-m", "fast", "-w", "stop"], **quiet, stderr=subprocess.DEVNULL
        )
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
