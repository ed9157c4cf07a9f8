"""Scan benchmark: followup's scan against the wire's own limit, on a private Dovecot.

Needs root and dovecot-imapd, like the tests. Mailboxes are written as maildir files once
into ``build/bench-cache/`` (Dovecot indexes them on first SELECT, and keeps its index
there too), so a later run starts at once. Prints, in one run, at ``--messages``:

- the raw limit: the same UID FETCH commands (same batches, several in flight) on a plain
  socket, bytes read and dropped: what server and wire cost;
- imapclient's ``fetch`` of the same items in the same batches;
- ``followup scan`` as a process (first scan, fresh database), its ratio to both; and the
  same in one process (no worker process: agent.scanwork);
- a no-change rescan as a process (interpreter and CLI start-up included), and the CLI's
  start-up alone (``followup --help``);
- where a first scan's time goes (bench/phases.py: timers around each phase);
- the same first scan over a simulated link (bench/linkproxy.py: 20 ms each way, 50 Mbit/s),
  FETCHes sent ahead and one at a time (adaptive batches), against the link's floor
  (bytes ÷ bandwidth + one round trip per folder);
- the first scan, its raw limit and its peak RSS at each of ``--rss-sizes`` (the raw read
  first, so that Dovecot has the header fields in its cache, as in the 100,000 run).

    .venv/bin/python bench/scan.py [--messages 100000] [--batch 500]
                                   [--rss-sizes 10000,100000,1000000] [--no-link]

Figures are printed, never asserted: see the README ("How fast") for measured numbers.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the test kit: tests.mailgen, tests.servers

import imapclient  # noqa: E402

from agent.mailbox.fetch import FETCH_BODY  # noqa: E402
from agent.mailbox.pipeline import fetch_command  # noqa: E402
from bench.linkproxy import LinkProxy  # noqa: E402
from tests.mailgen import realistic  # noqa: E402
from tests.servers.account import ImapAccount  # noqa: E402
from tests.servers.dovecot import Dovecot  # noqa: E402
from tests.servers.tls import make_self_signed_cert  # noqa: E402

NOW = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
ME = "me@example.org"
CACHE = ROOT / "build" / "bench-cache"
ITEMS = ("INTERNALDATE", "FLAGS", FETCH_BODY)
FOLDERS = ("INBOX", "Sent")
DELAY = 0.020  # each way: 40 ms round trip
BANDWIDTH = 50e6  # bits per second
#: Folders of the rescan over the link: a freelancer's project and client folders.
PROJECTS = tuple(f"Projekte/Kunde {n:02d}" for n in range(30))
RESCANS = 11  # no-change rescans timed (this machine's noise is ±30 %: a median, not one run)
DEPTH = 4  # FETCHes in flight for the raw limit, as followup's PIPELINE_DEPTH
_MAILDIR_FLAGS = {"\\Seen": "S", "\\Flagged": "F", "\\Answered": "R", "\\Draft": "D"}


# --------------------------------------------------------------------------- the mailbox


def maildir(n: int) -> tuple[Path, float | None]:
    """The cached maildir of ``n`` realistic messages (INBOX and .Sent), built if missing:
    (its path, seconds the build took or None when it was there)."""
    final = CACHE / f"maildir-{n}"
    if (final / "cur").is_dir():
        return final, None
    started = time.perf_counter()
    building = CACHE / f"maildir-{n}.building"
    shutil.rmtree(building, ignore_errors=True)
    for folder in (building, building / ".Sent"):
        for sub in ("cur", "new", "tmp"):
            (folder / sub).mkdir(parents=True)
    for number, (folder, raw, flags, when) in enumerate(
            realistic(n, n, now=NOW, me=ME, sent="Sent")):
        stamp = int(when.timestamp())
        letters = "".join(sorted(_MAILDIR_FLAGS[f] for f in flags if f in _MAILDIR_FLAGS))
        where = building if folder == "INBOX" else building / ".Sent"
        path = where / "cur" / f"{stamp}.M{number}P1.bench,S={len(raw)}:2,{letters}"
        path.write_bytes(raw)
        os.utime(path, (stamp, stamp))  # maildir's INTERNALDATE is the file's mtime
    building.rename(final)
    return final, time.perf_counter() - started


def attach(server: Dovecot, tree: Path) -> ImapAccount:
    """A new user whose Maildir is the cached tree (owned by the mail user for Dovecot)."""
    account = server.new_account()
    home = server._path("home", account.username)
    subprocess.run(["chown", "-R", f"{server.mail_uid}:{server.mail_gid}", str(tree)],
                   check=True)
    (home / "Maildir").symlink_to(tree)
    return account


def warm(account: ImapAccount) -> float:
    """SELECT every folder once (Dovecot indexes a new maildir then): seconds taken."""
    started = time.perf_counter()
    with account.client() as client:
        for folder in FOLDERS:
            client.select_folder(folder, readonly=True)
    return time.perf_counter() - started


# --------------------------------------------------------------------------- the limits


def _uids(client: imapclient.IMAPClient, folder: str) -> list[int]:
    """Every UID, searched in windows: one SEARCH answer of a million UIDs is a line longer
    than imaplib reads (as followup does: agent.mailbox)."""
    uidnext = int(client.select_folder(folder, readonly=True)[b"UIDNEXT"])
    return sorted(uid for low in range(1, uidnext, 80_000)
                  for uid in client.search(["UID", f"{low}:{low + 79_999}"]))


def raw_limit(account: ImapAccount, batch: int) -> tuple[float, int]:
    """The same FETCHes on a plain socket, DEPTH in flight, bytes read and dropped:
    (seconds, bytes read)."""
    with account.client() as client:
        plan = {folder: _uids(client, folder) for folder in FOLDERS}
    started = time.perf_counter()
    total = 0
    with socket.create_connection((account.host, account.port)) as sock:
        reader = sock.makefile("rb", buffering=1 << 20)

        def until(tag: bytes) -> int:
            read = 0
            while True:
                line = reader.readline()
                if not line:
                    raise SystemExit("raw limit: connection closed")
                read += len(line)
                if line.startswith(tag + b" "):
                    if not line.startswith(tag + b" OK"):
                        raise SystemExit(f"raw limit: {line!r}")
                    return read
                if line.endswith(b"}\r\n"):  # a literal: read it whole, drop it
                    size = int(line[line.rindex(b"{") + 1:-3])
                    read += len(reader.read(size))

        total += len(reader.readline())  # greeting
        sock.sendall(b"r0 LOGIN %s %s\r\n" % (account.username.encode(),
                                              account.password.encode()))
        total += until(b"r0")
        for number, (folder, uids) in enumerate(plan.items(), 1):
            sock.sendall(b"s%d EXAMINE %s\r\n" % (number, folder.encode()))
            total += until(b"s%d" % number)
            chunks = [uids[i:i + batch] for i in range(0, len(uids), batch)]
            tags = [b"f%d.%d" % (number, i) for i in range(len(chunks))]
            for i, chunk in enumerate(chunks[:DEPTH]):
                sock.sendall(fetch_command(tags[i], chunk, ITEMS))
            for i, tag in enumerate(tags):
                total += until(tag)
                if i + DEPTH < len(chunks):
                    sock.sendall(fetch_command(tags[i + DEPTH], chunks[i + DEPTH], ITEMS))
        sock.sendall(b"z LOGOUT\r\n")
    return time.perf_counter() - started, total


def imapclient_fetch(account: ImapAccount, batch: int) -> tuple[float, int]:
    """imapclient ``fetch`` of the same items, same batches, one at a time."""
    started = time.perf_counter()
    count = 0
    with account.client() as client:
        for folder in FOLDERS:
            uids = _uids(client, folder)
            for i in range(0, len(uids), batch):
                count += len(client.fetch(uids[i:i + batch], list(ITEMS)))
    return time.perf_counter() - started, count


# --------------------------------------------------------------------------- followup


@dataclass
class Run:
    wall: float  # seconds, the whole process
    reported: float  # seconds followup reports for the scan
    rss_mb: float  # peak RSS of the process
    worker_mb: float = 0.0  # peak RSS of its worker process (0: none, or not measured)

    @property
    def total_mb(self) -> str:
        """Peak RSS of the scan and of its worker (together at most the sum)."""
        if not self.worker_mb:
            return f"{self.rss_mb:.0f} MB"
        return f"{self.rss_mb:.0f} MB + worker {self.worker_mb:.0f} MB"


def write_config(account: ImapAccount, directory: Path, batch: int, port: int,
                 folders: Sequence[str] | None = FOLDERS) -> Path:
    """A config for ``account`` through ``port``; ``folders`` None: every folder (the
    default a user gets)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "followup.db").unlink(missing_ok=True)
    path = directory / "config.toml"
    path.write_text(f"""
[account]
email = "{ME}"
[imap]
host = "127.0.0.1"
port = {port}
security = "none"
username = "{account.username}"
batch_size = {batch}
timeout = 600
{'' if folders is None else 'folders = [' + ', '.join(f'"{f}"' for f in folders) + ']'}
[storage]
path = "{directory / 'followup.db'}"
""")
    path.chmod(0o600)
    return path


def followup(config: Path, password: str, *args: str, depth: int | None = None,
             worker: bool = True, first: bool = False, statuses: bool = True) -> Run:
    """``followup ARGS`` in its own process; ``depth`` sets PIPELINE_DEPTH in it, ``worker``
    False keeps the scan in that one process (no agent.scanwork worker); ``first`` (a first
    scan) also reports the worker's peak RSS (the process's waited children); ``statuses``
    False asks each folder's STATUS alone (as before Mailbox.statuses)."""
    # Without PYTHONDONTWRITEBYTECODE: an installed package has its bytecode compiled (pip
    # does that), and compiling ours on every start would add ~0.1 s that no user pays.
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
           "FOLLOWUP_CONFIG": str(config), "FOLLOWUP_IMAP_PASSWORD": password,
           "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}
    command = [sys.executable, "-m", "agent", *args]
    if depth is not None or not worker or first or not statuses:
        alone = "" if statuses else "c.Mailbox.statuses = lambda self, folders: {}; "
        command = [sys.executable, "-c",
                   "import sys, atexit, resource; import agent.mailbox.client as c; "
                   "import agent.scanwork as w; "
                   f"{alone}"
                   f"c.PIPELINE_DEPTH = {depth or 'c.PIPELINE_DEPTH'}; "
                   f"w.WORKER_MIN_MESSAGES = {'w.WORKER_MIN_MESSAGES' if worker else 2**62}; "
                   # The worker's own peak, read before it ends (its ru_maxrss would count
                   # the scan's pages it was forked with, before its exec).
                   "peaks = [0]; close = w.Worker.close\n"
                   "def closing(self):\n"
                   "    if self._process is not None:\n"
                   "        status = open(f'/proc/{self._process.pid}/status').read()\n"
                   "        peaks.append(int(status.split('VmHWM:')[1].split()[0]))\n"
                   "    close(self)\n"
                   "w.Worker.close = closing; "
                   "atexit.register(lambda: print('peak RSS', resource.getrusage("
                   "resource.RUSAGE_SELF).ru_maxrss, max(peaks), file=sys.stderr)); "
                   "from agent.cli.root import main; sys.argv[0] = 'followup'; main()", *args]
    with tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   text=True, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own peak RSS (KiB)
        wall = time.perf_counter() - started
        out.seek(0)
        text = out.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"followup {' '.join(args)} failed:\n{text}")
    match = re.search(r"in ([\d.]+) s", text)
    # wait4's ru_maxrss is the largest of the process and its children (the worker); the
    # process itself says which is which (the worker's from /proc: Linux).
    peaks = re.search(r"peak RSS (\d+) (\d+)", text)
    rss, worker_rss = (int(peaks[1]), int(peaks[2])) if peaks else (usage.ru_maxrss, 0)
    return Run(wall, float(match[1]) if match else wall, rss / 1024, worker_rss / 1024)


def phases(config: Path, password: str) -> str:
    """bench/phases.py's line: where a first scan's time goes, in its own process."""
    # As in followup(): bytecode written and read, as an installed package's is.
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
           "FOLLOWUP_CONFIG": str(config), "FOLLOWUP_IMAP_PASSWORD": password,
           "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "phases.py")], env=env,
                          cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench/phases.py failed:\n{done.stdout}{done.stderr}")
    return next(line for line in done.stdout.splitlines() if line.startswith("phases:"))


# --------------------------------------------------------------------------- the run


def machine() -> str:
    load = os.getloadavg()[0]
    dovecot = subprocess.run(["dovecot", "--version"], capture_output=True, text=True,
                             check=False).stdout.split()[0]
    return (f"{os.cpu_count()} cores, load {load:.2f} at start, Dovecot {dovecot}, "
            f"Python {sys.version.split()[0]}")


def run(messages: int, batch: int, rss_sizes: Sequence[int], link: bool) -> None:
    print(machine(), flush=True)
    trees = {}
    for n in sorted({messages, *rss_sizes}):
        tree, took = maildir(n)
        said = f"built in {took:.0f} s" if took is not None else "cached"
        print(f"maildir of {n} messages: {said} ({tree.relative_to(ROOT)})", flush=True)
        trees[n] = tree
    with tempfile.TemporaryDirectory(prefix="fu-bench-") as tmp:
        work = Path(tmp)
        tls = make_self_signed_cert(work)
        with Dovecot(tls) as server:
            accounts = {n: attach(server, tree) for n, tree in trees.items()}
            for n, account in accounts.items():
                print(f"first SELECT of {n} (Dovecot indexes if new): {warm(account):.1f} s",
                      flush=True)
            account = accounts[messages]
            print(f"\nat {messages} messages, batches of {batch}:", flush=True)
            raw = min(raw_limit(account, batch) for _ in range(3))
            print(f"  raw limit (same FETCHes, {DEPTH} in flight, bytes dropped): "
                  f"{raw[0]:.2f} s, {raw[1] / 1e6:.1f} MB", flush=True)
            client = imapclient_fetch(account, batch)
            print(f"  imapclient fetch: {client[0]:.2f} s ({client[1]} messages)", flush=True)
            config = write_config(account, work / "main", batch, account.port)
            first = followup(config, account.password, "scan", first=True)
            print(f"  followup scan (first): {first.reported:.2f} s reported, "
                  f"{first.wall:.2f} s process, peak RSS {first.total_mb}; "
                  f"{first.wall / raw[0]:.2f}x raw, {first.wall / client[0]:.2f}x imapclient",
                  flush=True)
            alone = followup(write_config(account, work / "alone", batch, account.port),
                             account.password, "scan", worker=False)
            print(f"  followup scan (first), in one process (no worker): {alone.wall:.2f} s "
                  f"process, peak RSS {alone.total_mb}; {alone.wall / raw[0]:.2f}x raw",
                  flush=True)
            rescans = sorted(followup(config, account.password, "scan").wall
                             for _ in range(RESCANS))
            print(f"  no-change rescan (process), {RESCANS} runs: best {rescans[0]:.3f} s, "
                  f"median {rescans[RESCANS // 2]:.3f} s, worst {rescans[-1]:.3f} s",
                  flush=True)
            startup = min(followup(config, account.password, "--help").wall for _ in range(3))
            print(f"  CLI start-up alone (followup --help): {startup:.3f} s", flush=True)
            config = write_config(account, work / "phases", batch, account.port)
            print("  first scan again, timers around each phase (bench/phases.py):\n    "
                  + phases(config, account.password), flush=True)

            if link:
                print(f"\nover a link of {2 * DELAY * 1000:.0f} ms round trip, "
                      f"{BANDWIDTH / 1e6:.0f} Mbit/s:", flush=True)
                for name, depth in (("sent ahead", None), ("one at a time", 1)):
                    with LinkProxy(account.host, account.port, delay=DELAY,
                                   bits_per_second=BANDWIDTH) as proxy:
                        config = write_config(account, work / f"link-{depth}", batch,
                                              proxy.port)
                        scan = followup(config, account.password, "scan", depth=depth)
                        floor = (proxy.bytes_down * 8 / BANDWIDTH
                                 + 2 * DELAY * len(FOLDERS))
                    print(f"  followup scan, FETCHes {name}: {scan.wall:.2f} s process "
                          f"({scan.reported:.2f} s reported); floor {floor:.2f} s "
                          f"({proxy.bytes_down / 1e6:.1f} MB down); "
                          f"{scan.wall / floor:.2f}x floor", flush=True)

                print(f"  no-change rescan of every folder ({len(PROJECTS)} project folders and "
                      "the usual ones), each folder's STATUS:", flush=True)
                small = server.new_account()
                for name in PROJECTS:
                    small.create_folder(name)
                    small.append(name, next(iter(realistic(7, 1, now=NOW)))[1])
                with LinkProxy(small.host, small.port, delay=DELAY,
                               bits_per_second=BANDWIDTH) as proxy:
                    config = write_config(small, work / "link-folders", batch, proxy.port,
                                          folders=None)
                    followup(config, small.password, "scan")
                    for name, at_once in (("at once", True), ("one at a time", False)):
                        runs = [followup(config, small.password, "scan", statuses=at_once).wall
                                for _ in range(3)]
                        print(f"    {name}: {min(runs):.2f} s (best of 3)", flush=True)

            print("\nfirst scan and its peak RSS by size (each after the raw read, which "
                  "fills Dovecot's cache as the 100,000 run's did):", flush=True)
            for n in rss_sizes:
                if n == messages:
                    result, limit = first, raw[0]
                else:
                    limit = raw_limit(accounts[n], batch)[0]
                    result = followup(write_config(accounts[n], work / f"rss-{n}", batch,
                                                   accounts[n].port),
                                      accounts[n].password, "scan", first=True)
                print(f"  {n:>9} messages: scan {result.wall:.1f} s, raw limit {limit:.1f} s "
                      f"({result.wall / limit:.1f}x), peak RSS {result.total_mb}",
                      flush=True)
    print(f"\nload at end: {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rss-sizes", default="10000,100000,1000000",
                        help="comma-separated mailbox sizes for peak RSS")
    parser.add_argument("--no-link", action="store_true", help="skip the link simulation")
    args = parser.parse_args()
    sizes = [int(s) for s in args.rss_sizes.split(",") if s]
    run(args.messages, args.batch, sizes, not args.no_link)


if __name__ == "__main__":
    main()
