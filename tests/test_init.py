"""`followup init` against the Dovecot fixture: config written 0600, password only in keyring."""

from __future__ import annotations

import io
import re
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import keyring
import keyring.backends.fail
import pytest

from agent.config import load_config
from agent.errors import LoginRefused, MailboxError, TransientMailboxError, UsageError
from agent.init import InitOptions, config_text, run_init
from agent.providers import (
    PROVIDERS,
    provider_by_key,
    provider_for_address,
    provider_table_markdown,
)
from tests.kit import ME, run_cli
from tests.servers.account import ImapAccount
from tests.servers.keyring import MemoryKeyring

README = Path(__file__).resolve().parent.parent / "README.md"


def init_args(account: ImapAccount, *extra: str) -> list[str]:
    return ["init", "--email", ME, "--name", "Mia Example", "--imap-host", "127.0.0.1",
            "--imap-port", str(account.port), "--security", "none",
            "--username", account.username, "--language", "en",
            "--timezone", "Europe/Berlin", "--yes", *extra]


def with_stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))


def test_non_interactive_init_writes_private_config_and_keyring(
        dovecot_account: ImapAccount, tmp_path: Path, memory_keyring: MemoryKeyring,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "conf" / "config.toml"
    with_stdin(monkeypatch, dovecot_account.password + "\n")
    code, out, err = run_cli(["--config", str(path), *init_args(dovecot_account,
                                                                "--password-stdin")], capsys)
    assert code == 0, out + err
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert dovecot_account.password not in text
    assert dovecot_account.password not in out + err
    assert MemoryKeyring.contents() == {("followup", dovecot_account.username):
                                        dovecot_account.password}
    # The folders the server has, with the roles found by their SPECIAL-USE flags.
    assert re.search(r"Sent\s+← sent \(found by flag\)", out)
    assert re.search(r"Drafts\s+← drafts \(found by flag\)", out)
    assert "scan  INBOX" in out
    assert not list(path.parent.glob(".config.toml.*"))  # no temp file left behind

    config = load_config(path)
    assert config.warnings == ()
    assert config.account.email == ME and config.account.name == "Mia Example"
    assert (config.imap.host, config.imap.port, config.imap.security) == (
        "127.0.0.1", dovecot_account.port, "none")
    assert config.imap.username == dovecot_account.username
    assert config.imap.password_command is None
    assert (config.digest.language, config.digest.timezone) == ("en", "Europe/Berlin")
    assert config.digest.time.strftime("%H:%M") == "07:30"

    # The written config works as it is: doctor logs in with the keyring's password.
    code, out, err = run_cli(["--config", str(path), "doctor"], capsys)
    assert code == 0, out + err


def test_init_refuses_to_overwrite_without_force(
        dovecot_account: ImapAccount, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.toml"
    path.write_text("# mine\n")
    with_stdin(monkeypatch, dovecot_account.password + "\n")
    code, _, err = run_cli(["--config", str(path), *init_args(dovecot_account,
                                                                "--password-stdin")], capsys)
    assert code == 2
    assert "already exists; use --force" in err
    assert path.read_text() == "# mine\n"

    with_stdin(monkeypatch, dovecot_account.password + "\n")
    code, out, err = run_cli(["--config", str(path), *init_args(
        dovecot_account, "--password-stdin", "--force")], capsys)
    assert code == 0, out + err
    assert "[imap]" in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_wrong_password_writes_nothing(
        dovecot_account: ImapAccount, tmp_path: Path, memory_keyring: MemoryKeyring,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.toml"
    with_stdin(monkeypatch, "Wr0ng-Pa55word-xyz\n")
    code, out, err = run_cli(["--config", str(path), *init_args(dovecot_account,
                                                                "--password-stdin")], capsys)
    assert code == 1
    assert "login as" in err and "failed" in err
    assert "Wr0ng-Pa55word-xyz" not in out + err
    assert not path.exists()
    assert MemoryKeyring.contents() == {}


def test_password_command_is_written_and_nothing_stored(
        dovecot_account: ImapAccount, tmp_path: Path, memory_keyring: MemoryKeyring,
        capsys: pytest.CaptureFixture[str]) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(dovecot_account.password + "\n")
    command = f"cat {secret_file}"
    path = tmp_path / "config.toml"
    code, out, err = run_cli(["--config", str(path), *init_args(
        dovecot_account, "--password-command", command)], capsys)
    assert code == 0, out + err
    assert load_config(path).imap.password_command == command
    assert dovecot_account.password not in path.read_text()
    assert MemoryKeyring.contents() == {}


def test_without_a_keyring_init_explains_password_command(
        dovecot_account: ImapAccount, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    keyring.set_keyring(keyring.backends.fail.Keyring())
    path = tmp_path / "config.toml"
    with_stdin(monkeypatch, dovecot_account.password + "\n")
    code, out, err = run_cli(["--config", str(path), *init_args(dovecot_account,
                                                                "--password-stdin")], capsys)
    assert code == 0, out + err
    assert "no keyring is available" in out
    assert "password_command" in out and "FOLLOWUP_IMAP_PASSWORD" in out
    text = path.read_text()
    assert '# password_command = "pass show mail/imap"' in text
    assert dovecot_account.password not in text
    assert load_config(path).imap.password_command is None  # commented out: still loads


def test_missing_answer_without_terminal_names_the_flag(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    with_stdin(monkeypatch, "")
    code, _, err = run_cli(["--config", str(tmp_path / "c.toml"), "init", "--yes"], capsys)
    assert code == 2
    assert "--email" in err
    code, _, err = run_cli(["--config", str(tmp_path / "c.toml"), "init", "--yes",
                            "--email", "not-an-address"], capsys)
    assert code == 2
    assert "--email" in err and "not an email address" in err
    code, _, err = run_cli(["--config", str(tmp_path / "c.toml"), "init", "--yes",
                            "--email", ME, "--imap-host", "127.0.0.1", "--security", "none",
                            "--imap-port", "143"], capsys)
    assert code == 2
    assert "--password-stdin or --password-command" in err
    assert not (tmp_path / "c.toml").exists()


# --------------------------------------------------------------------------- the dialogue


@dataclass
class Script:
    """A user at a terminal, answering from a list (questions matched by a word in them)."""

    answers: list[tuple[str, str]]
    confirms: dict[str, bool] = field(default_factory=dict)
    said: list[str] = field(default_factory=list)
    asked: list[str] = field(default_factory=list)

    @property
    def interactive(self) -> bool:
        return True

    def ask(self, question: str, *, flag: str, default: str | None = None,
            hide: bool = False, check: Callable[[str], str] | None = None) -> str:
        self.asked.append(question)
        word, answer = self.answers.pop(0)
        assert word in question, (word, question)
        answer = default if answer == "" and default is not None else answer
        return check(answer) if check else answer

    def confirm(self, question: str, *, default: bool) -> bool:
        return self.confirms.get(question, default)

    def say(self, text: str) -> None:
        self.said.append(text)


def test_interactive_init_asks_again_after_a_wrong_password(
        dovecot_account: ImapAccount, tmp_path: Path, memory_keyring: MemoryKeyring) -> None:
    script = Script(answers=[
        ("email", ME),
        ("provider", "other"),
        ("security", "none"),
        ("IMAP server", "127.0.0.1"),
        ("port", str(dovecot_account.port)),
        ("Login", dovecot_account.username),
        ("name", ""),
        ("Language", "de"),
        ("time zone", "Europe/Vienna"),
        ("digest", "06:45"),
        ("Password", "Wr0ng-Pa55word-xyz"),
        ("Password", dovecot_account.password),
    ])
    result = run_init(InitOptions(), tmp_path / "config.toml", script)
    assert not script.answers
    assert any("failed" in line and "Try again" in line for line in script.said)
    config = load_config(result.path)
    assert config.digest.timezone == "Europe/Vienna"
    assert config.digest.time.strftime("%H:%M") == "06:45"
    assert config.digest.language == "de"
    assert MemoryKeyring.contents()[("followup", dovecot_account.username)] == \
        dovecot_account.password
    assert result.roles.sent == "Sent" and "INBOX" in result.scan_folders


def test_microsoft_signs_in_with_oauth2_and_asks_for_the_client_id(tmp_path: Path) -> None:
    """Microsoft 365 takes only OAuth2: init asks for the app registration's client ID
    (the sign-in itself is tested against a real server in tests/test_oauth.py)."""
    from agent.cli.setup import ClickDialogue

    ui = ClickDialogue(interactive=False, assume_yes=True)
    options = InitOptions(email="anna@outlook.com", name="Anna", language="de",
                          timezone="Europe/Berlin", digest_time="07:30")
    with pytest.raises(UsageError, match="--client-id"):
        run_init(options, tmp_path / "config.toml", ui)
    assert not (tmp_path / "config.toml").exists()


def test_known_host_is_filled_in_and_its_login_explained(tmp_path: Path) -> None:
    script = Script(answers=[("Login", ""), ("name", ""), ("Language", ""), ("time zone", ""),
                             ("digest", ""), ("app password", "secret-app-pw")])
    seen: list[tuple[object, ...]] = []

    def refuse(*args: object) -> object:
        seen.append(args)
        raise MailboxError("cannot connect to imap.gmail.com:993: no network in tests")

    with pytest.raises(MailboxError):
        run_init(InitOptions(email="jana.schmidt@googlemail.com"), tmp_path / "c.toml",
                 script, connect=refuse)  # type: ignore[arg-type]
    assert seen == [("imap.gmail.com", 993, "ssl", "jana.schmidt@googlemail.com",
                     "secret-app-pw")]
    said = "\n".join(script.said)
    assert "app password" in said and "[Gmail]" in said
    assert not any("IMAP server" in q for q in script.asked)  # taken from the table


@pytest.mark.parametrize(("error", "tries"), [
    (LoginRefused("login as jana failed (server said: no)"), 2),
    (TransientMailboxError("connection to imap.gmail.com broke during login"), 1),
], ids=["refused", "broke"])
def test_only_a_refused_login_asks_for_the_password_again(
        tmp_path: Path, error: MailboxError, tries: int) -> None:
    """The type of the error decides, not its wording: a connection that broke during the
    login says "login" too, but the password is not the problem."""
    script = Script(answers=[("Login", ""), ("name", ""), ("Language", ""), ("time zone", ""),
                             ("digest", ""), ("app password", "pw-1"), ("app password", "pw-2")])
    seen: list[object] = []

    def fail(*args: object) -> object:
        seen.append(args[4])
        if len(seen) == 2:
            raise UsageError("stop here: the second try was made")
        raise error

    with pytest.raises(UsageError if tries == 2 else type(error)):
        run_init(InitOptions(email="jana.schmidt@googlemail.com"), tmp_path / "c.toml",
                 script, connect=fail)  # type: ignore[arg-type]
    assert seen == ["pw-1", "pw-2"][:tries]


# --------------------------------------------------------------------------- the table


def test_provider_lookup() -> None:
    assert provider_for_address("X@GMX.DE") is provider_by_key("gmx")
    assert provider_for_address("a@web.de") is provider_by_key("webde")
    assert provider_for_address("a@me.com") is provider_by_key("icloud")
    assert provider_for_address("a@example.org") is None
    assert all(p.works for p in PROVIDERS)
    assert provider_by_key("microsoft").oauth == "microsoft"
    assert provider_by_key("gmail").oauth == "google"
    with pytest.raises(UsageError, match="unknown provider"):
        provider_by_key("aol")
    keys = [p.key for p in PROVIDERS]
    assert len(keys) == len(set(keys))
    domains = [d for p in PROVIDERS for d in p.domains]
    assert len(domains) == len(set(domains))


def test_every_provider_config_loads(tmp_path: Path) -> None:
    from agent.init import Answers

    for provider in PROVIDERS:
        text = config_text(Answers(
            email="a.b@example.org", name='Ä "quoted" \\ name', imap_host=provider.imap_host,
            imap_port=provider.imap_port, security=provider.imap_security,
            username="a.b@example.org", password_command=None, language="de",
            timezone="Europe/Berlin", digest_time="07:30"))
        path = tmp_path / f"{provider.key}.toml"
        path.write_text(text)
        path.chmod(0o600)
        config = load_config(path)
        assert config.imap.host == provider.imap_host
        assert config.account.name == 'Ä "quoted" \\ name'


def test_readme_provider_table_matches_the_built_in_table() -> None:
    text = README.read_text(encoding="utf-8")
    start, end = "<!-- providers:start -->", "<!-- providers:end -->"
    assert text.count(start) == 1 and text.count(end) == 1 and \
        text.index(start) < text.index(end), \
        f"README needs one provider table: paste `python -m agent.init` between {start} and {end}"
    table = text.split(start, 1)[1].split(end, 1)[0].strip() + "\n"
    assert table == provider_table_markdown(), \
        "README provider table is stale: regenerate it with `python -m agent.init`"
