"""Scan benchmark: followup's scan against a bare header FETCH on a local Dovecot.

Builds a mailbox of N realistic messages in a private Dovecot (needs root and
dovecot-imapd, like the tests), then prints, in one run:

- the bare header-FETCH baseline: imapclient, the same fields, the same batches;
- `followup scan` (a separate process, fresh database), and its ratio to the baseline;
- a no-change rescan; a rescan after 1,000 new messages;
- the peak RSS of each followup process, at N and at N/5 (memory must be flat in N).

    .venv/bin/python bench/scan.py [--messages 100000] [--batch 500]

Figures are printed, never asserted: see the README for measured numbers.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the test kit: tests.mailgen, tests.servers

from agent.headers.meta import HEADER_FIELDS  # noqa: E402
from tests.mailgen import realistic  # noqa: E402
from tests.servers.account import ImapAccount  # noqa: E402
from tests.servers.dovecot import Dovecot  # noqa: E402
from tests.servers.tls import make_self_signed_cert  # noqa: E402

NOW = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
ME = "me@example.org"


def seed(account: ImapAccount, n: int, seed_value: int, start: int = 0) -> float:
    started = time.perf_counter()
    account.append_many(realistic(seed_value, n, now=NOW, me=ME, start=start))
    return time.perf_counter() - started


def baseline(account: ImapAccount, batch: int) -> tuple[float, int]:
    """Bare imapclient header FETCH of every folder followup would scan."""
    fields = "BODY.PEEK[HEADER.FIELDS (" + " ".join(f.upper() for f in HEADER_FIELDS) + ")]"
    started = time.perf_counter()
    count = 0
    with account.client() as client:
        for folder in ("INBOX", account.sent_folder):
            client.select_folder(folder, readonly=True)
            uids = sorted(client.search(["UID", "1:*"]))
            for i in range(0, len(uids), batch):
                response = client.fetch(uids[i:i + batch], ["INTERNALDATE", "FLAGS", fields])
                count += len(response)
    return time.perf_counter() - started, count


def write_config(account: ImapAccount, directory: Path, batch: int) -> Path:
    path = directory / "config.toml"
    path.write_text(f"""
[account]
email = "{ME}"
[imap]
host = "127.0.0.1"
port = {account.port}
security = "none"
username = "{account.username}"
batch_size = {batch}
[storage]
path = "{directory / 'followup.db'}"
""")
    path.chmod(0o600)
    return path


def followup_scan(config: Path, password: str, *extra: str) -> tuple[float, float, int]:
    """Run `followup scan` in its own process: (wall s, scan s as it reports, peak RSS KiB)."""
    env = {**os.environ, "FOLLOWUP_CONFIG": str(config), "FOLLOWUP_IMAP_PASSWORD": password,
           "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}
    with tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "agent", "scan", *extra], env=env,
                                   stdout=out, stderr=subprocess.STDOUT, text=True)
        # wait4 gives this child's own peak RSS (ru_maxrss, KiB on Linux).
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        text = out.read()
    if process.returncode != 0:
        raise SystemExit(f"followup scan failed:\n{text}")
    match = re.search(r"in ([\d.]+) s", text)
    reported = float(match[1]) if match else wall
    return wall, reported, usage.ru_maxrss


def run(messages: int, batch: int) -> None:
    small = max(messages // 5, 1000)
    with tempfile.TemporaryDirectory(prefix="fu-bench-") as tmp:
        work = Path(tmp)
        tls = make_self_signed_cert(work)
        with Dovecot(tls) as server:
            print(f"Dovecot on 127.0.0.1:{server.port}; generating mailboxes "
                  f"({small} and {messages} messages)…", flush=True)
            accounts = {}
            for size in (small, messages):
                account = server.new_account()
                took = seed(account, size, seed_value=size)
                print(f"  seeded {size} messages in {took:.1f} s", flush=True)
                accounts[size] = account

            results = {}
            for size, account in accounts.items():
                directory = work / f"run-{size}"
                directory.mkdir()
                config = write_config(account, directory, batch)
                base, fetched = baseline(account, batch)
                base2, _ = baseline(account, batch)  # warm: same conditions as the scan
                base = min(base, base2)
                wall, scan_s, rss = followup_scan(config, account.password)
                rescan_wall, rescan_s, rss2 = followup_scan(config, account.password)
                seed(account, 1000, seed_value=size + 1, start=size)
                new_wall, new_s, rss3 = followup_scan(config, account.password)
                results[size] = (fetched, base, wall, scan_s, rescan_wall, rescan_s,
                                 new_wall, new_s, max(rss, rss2, rss3))

    print()
    print(f"{'messages':>9} {'baseline s':>10} {'scan s':>8} {'ratio':>6} {'scan wall':>9} "
          f"{'no-change s':>11} {'(wall)':>7} {'+1000 s':>8} {'(wall)':>7} {'peak RSS':>9}")
    for fetched, base, wall, scan_s, rw, rs, nw, ns, rss in results.values():
        print(f"{fetched:>9} {base:>10.2f} {scan_s:>8.2f} {scan_s / base:>6.2f} {wall:>9.2f} "
              f"{rs:>11.3f} {rw:>7.2f} {ns:>8.2f} {nw:>7.2f} {rss / 1024:>7.0f}MB")
    print()
    print("baseline: imapclient UID FETCH (INTERNALDATE FLAGS BODY.PEEK[HEADER.FIELDS (...)]),")
    print(f"  batches of {batch}, same folders; best of two warm runs.")
    print("scan s: followup's own timing of the scan (connect to ledger written); wall adds")
    print("  interpreter start-up. Peak RSS: the largest of the three followup processes.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    run(args.messages, args.batch)


if __name__ == "__main__":
    main()
