"""What reading a signature costs: the ledger's UID against a Message-ID SEARCH, on Dovecot.

Builds an INBOX of N realistic messages in a private Dovecot (needs root and
dovecot-imapd, like the tests), then for 50 of them, over one connection:

- the text part by the UID the ledger keeps: SELECT, FETCH BODYSTRUCTURE, FETCH the part
  (what agent.signature_sync does);
- the same after finding the UID with ``UID SEARCH HEADER Message-ID`` first (what it does
  only when the ledger has no UID), and the SEARCH alone.

    .venv/bin/python bench/signatures.py [--messages 20000]

Figures are printed, never asserted: see the README for measured numbers.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the test kit: tests.mailgen, tests.servers

from agent.mailbox.client import Mailbox  # noqa: E402
from tests.mailgen import realistic  # noqa: E402
from tests.servers.dovecot import Dovecot  # noqa: E402
from tests.servers.tls import make_self_signed_cert  # noqa: E402

SAMPLE = 50
NOW = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def run(messages: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with Dovecot(make_self_signed_cert(work)) as server:
            account = server.new_account()
            print(f"Dovecot on 127.0.0.1:{server.port}; appending {messages} messages …")
            account.append_many(item for item in realistic(7, messages, now=NOW)
                                if item[0] == "INBOX")
            with account.client() as client:
                client.select_folder("INBOX", readonly=True)
                uids = sorted(client.search("ALL"))
                sample = random.Random(7).sample(uids, min(SAMPLE, len(uids)))
                headers = client.fetch(sample, ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
            ids = {uid: next(v for k, v in data.items() if k.startswith(b"BODY["))
                   .decode().split(":", 1)[1].strip() for uid, data in headers.items()}
            with Mailbox.open(account.host, account.port, "none", account.username,
                              account.password) as mailbox:
                by_uid, by_search, search = [], [], []
                for uid in sample:
                    started = time.perf_counter()
                    mailbox.fetch_text_part("INBOX", uid)
                    by_uid.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    found = mailbox.search("INBOX", ["HEADER", "Message-ID", ids[uid]])
                    search.append(time.perf_counter() - started)
                    mailbox.fetch_text_part("INBOX", found[-1])
                    by_search.append(time.perf_counter() - started)
            print(f"INBOX of {len(uids)} messages, {len(sample)} signatures read "
                  "(median per message):")
            for name, values in (("by the ledger's UID", by_uid),
                                 ("Message-ID SEARCH, then the same", by_search),
                                 ("the SEARCH alone", search)):
                print(f"  {name:34} {statistics.median(values) * 1000:7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    run(parser.parse_args().messages)


if __name__ == "__main__":
    main()
