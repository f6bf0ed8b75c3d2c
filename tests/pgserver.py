"""
Run a command against a throwaway PostgreSQL server on 127.0.0.1.

    python tests/pgserver.py [--require] -- COMMAND...

Starts a fresh server in a temporary folder, runs COMMAND with
VERSIONING_TEST_DATABASE_URL pointing at it, and stops the server afterwards,
also when COMMAND fails. Without PostgreSQL binaries it prints a loud notice
and exits 0, unless --require is given (CI), in which case it fails.

The replica tests use start_replica() to stream a hot standby from that
server, on 127.0.0.1 too.
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
from dataclasses import dataclass

#: Server programs' output is in their log; keep the caller's terminal quiet.
QUIET = {"cwd": "/tmp", "stdout": subprocess.DEVNULL}


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


def as_server_user():
    """initdb and postgres refuse to run as root: run them as postgres then."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def data_folder():
    """A new, empty data folder that only the server's user can read."""
    data = tempfile.mkdtemp(prefix="versioning-pg-")
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(data, user.pw_uid, user.pw_gid)
    os.chmod(data, 0o700)
    return data


@dataclass
class Server:
    """A server this module started: its programs, data folder and port."""

    bindir: str
    data: str
    port: int

    def program(self, name, *args):
        return [*as_server_user(), os.path.join(self.bindir, name), *args]

    def start(self):
        # Last setting wins: a replica's copy of its primary's configuration
        # is pointed at its own folder here.
        with open(os.path.join(self.data, "postgresql.conf"), "a") as conf:
            conf.write(
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.data}'\n"
                "max_connections = 50\n"
            )
        log = os.path.join(self.data, "server.log")
        subprocess.run(
            self.program("pg_ctl", "-D", self.data, "-w", "-t", "60", "-l", log)
            + ["-o", f"-p {self.port}", "start"],
            check=True,
            **QUIET,
        )

    def stop(self):
        """Stop the server and remove its folder (also when it never started)."""
        subprocess.run(
            self.program("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop"),
            **QUIET,
            stderr=subprocess.DEVNULL,
        )
        shutil.rmtree(self.data, ignore_errors=True)


def start_primary(bindir):
    server = Server(bindir, data_folder(), free_port())
    try:
        subprocess.run(
            server.program(
                "initdb",
                "-D",
                server.data,
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=trust",
                "-E",
                "UTF8",
                "--no-locale",
            ),
            check=True,
            **QUIET,
        )
        server.start()
    except BaseException:
        server.stop()
        raise
    return server


def start_replica(bindir, primary):
    """
    A hot standby of ``primary`` (a DATABASES entry) that streams its WAL:
    pg_basebackup -R copies the primary and writes the standby's settings.
    initdb's trust lines for host replication on 127.0.0.1 let it connect.
    """
    server = Server(bindir, data_folder(), free_port())
    try:
        subprocess.run(
            server.program(
                "pg_basebackup",
                "-D",
                server.data,
                "-h",
                str(primary["HOST"]),
                "-p",
                str(primary["PORT"]),
                "-U",
                primary["USER"],
                "--write-recovery-conf",
                "--wal-method=stream",
                "--checkpoint=fast",
            ),
            check=True,
            # It warns about the primary's sockets, which are in its folder.
            stderr=subprocess.PIPE,
            **QUIET,
        )
        server.start()
    except BaseException:
        server.stop()
        raise
    return server


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

    server = start_primary(bindir)
    try:
        env = dict(os.environ)
        env["VERSIONING_TEST_DATABASE_URL"] = (
            f"postgresql://postgres@127.0.0.1:{server.port}/postgres"
        )
        print(
            f"PostgreSQL from {bindir} on 127.0.0.1:{server.port} "
            "(synchronous_commit=on)"
        )
        return subprocess.run(command, env=env).returncode
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
