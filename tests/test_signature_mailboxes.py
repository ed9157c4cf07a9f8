"""Signatures with several mailboxes (issue 15 on [[mailbox]]): each newest message is read
on the connection of the mailbox it is in, once."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keyring
import pytest

from agent.mailbox.client import Mailbox
from tests.kit import run_cli, write_config
from tests.servers.account import ImapAccount
from tests.signature_mail import NOW, PEOPLE, items

PRIVATE = "mia@private.example"


@pytest.mark.integration
def test_each_signature_is_read_in_its_own_mailbox(
        make_account: Callable[[str], ImapAccount], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    work, private = make_account("standard"), make_account("standard")
    dana, oliver = (next(p for p in PEOPLE if p.key == k) for k in ("dana", "oliver"))
    work.append_many(items(work.sent_folder, (oliver,)))
    private.append_many(items(private.sent_folder, (dana,)))
    entry = (f'\n[[mailbox]]\nname = "private"\nemail = "{PRIVATE}"\nhost = "127.0.0.1"\n'
             f'port = {private.port}\nsecurity = "none"\nusername = "{private.username}"\n')
    write_config(monkeypatch, work, tmp_path, password="keyring", extra=entry)
    keyring.set_password("followup", private.username, private.password)

    read: Counter[tuple[str, str, int]] = Counter()
    real: Callable[..., bytes | None] = Mailbox.fetch_text_part

    def counting(self: Mailbox, folder: str, uid: int, *args: Any, **kwargs: Any) -> bytes | None:
        found = real(self, folder, uid, *args, **kwargs)
        if found is not None:
            read[(self._client.socket().getsockname()[1], folder, uid)] += 1  # by connection
        return found

    monkeypatch.setattr(Mailbox, "fetch_text_part", counting)
    code, out, err = run_cli(["--now", NOW.isoformat(), "run", "--once"], capsys)
    assert code == 0, out + err
    assert "2 message(s) read" in out, out
    code, out, err = run_cli(["--now", NOW.isoformat(), "due", "--json"], capsys)
    phones = {r["email"]: [p["number"] for p in r["phones"]] for r in json.loads(out)}
    assert phones == {dana.address: ["+14155550134"], oliver.address: ["+447700900123"]}
    # Two connections (both users live on one test Dovecot), one message read on each.
    assert sum(read.values()) == 2 and set(read.values()) == {1}
    assert len({connection for connection, _, _ in read}) == 2
