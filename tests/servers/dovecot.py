"""A private Dovecot 2.3 on loopback for the tests, in any of the mailbox personalities."""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from tests.servers.account import ImapAccount, rebuild_folder
from tests.servers.base import LOOPBACK, MasterProcessServer, free_port, make_private_dir
from tests.servers.personalities import REAL_PREFIX, STANDARD, Personality
from tests.servers.tls import TlsFiles


def real_clock_environment() -> dict[str, str]:
    """This process's environment without libfaketime, for a Dovecot on the real clock.

    Under `faketime` (the suite is run at other dates), Dovecot cannot share the fake
    clock: its master clears its environment, so its children run on the real clock from
    the start, and the master itself falls back to it once libfaketime re-reads FAKETIME
    (every 10 s): "Time moved backwards by 7536175 seconds", and no new process for 180 s.
    Keeping libfaketime in every Dovecot process (import_environment) breaks INTERNALDATE
    instead: maildir keeps it as the file's mtime, which utime() sets as given but
    libfaketime's stat() shifts by the offset. So the test Dovecot runs on the real clock,
    like a server whose clock is not the client's.
    """
    environ = dict(os.environ)
    preload = [lib for lib in environ.pop("LD_PRELOAD", "").replace(":", " ").split()
               if "faketime" not in lib]
    if preload:
        environ["LD_PRELOAD"] = " ".join(preload)
    return {key: value for key, value in environ.items() if not key.startswith("FAKETIME")}


def find_dovecot() -> str | None:
    """Path of the dovecot binary, or None when it is not installed."""
    if os.access("/usr/sbin/dovecot", os.X_OK):
        return "/usr/sbin/dovecot"
    return shutil.which("dovecot")


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _mailbox_section(name: str, lines: Sequence[str], indent: str = "  ") -> str:
    inner = "\n".join(f"{indent}  {line}" for line in lines)
    return f"{indent}mailbox {_quote(name)} {{\n{inner}\n{indent}}}"


def _personality_settings(personality: Personality) -> list[str]:
    """Config beyond the inbox namespace: capability list, views and their hidden store."""
    settings: list[str] = []
    if personality.capability:
        settings.append(f"imap_capability = {personality.capability}")
    if not personality.views:
        return settings
    prefix = personality.views_prefix
    views: list[str] = []
    for folder in personality.views:
        if not folder.name.startswith(prefix):
            raise ValueError(f"view {folder.name!r} is outside its namespace prefix {prefix!r}")
        if folder.special_use:
            leaf = folder.name[len(prefix) :]
            views.append(_mailbox_section(leaf, [f"special_use = {folder.special_use}"]))
    hidden = [_mailbox_section(name, ["auto = create"]) for name in personality.hidden_folders]
    body, hidden_body = "\n".join(views), "\n".join(hidden)
    settings.append(f"""\
mail_plugins = $mail_plugins virtual
# The views: one directory with a dovecot-virtual file each, written by add_user().
namespace views {{
  prefix = {prefix}
  separator = {personality.separator}
  location = virtual:~/views
  list = yes
  subscriptions = no
{body}
}}
# Where the views store what is APPENDed to them; invisible to clients.
namespace real {{
  prefix = {REAL_PREFIX}
  separator = {personality.separator}
  location = maildir:~/real
  hidden = yes
  list = no
  subscriptions = no
{hidden_body}
}}""")
    return settings


def dovecot_config(
    *,
    root: Path,
    port: int,
    tls_port: int,
    tls: TlsFiles,
    personality: Personality,
    mail_uid: int,
    mail_gid: int,
    oauth2: bool = False,
    mechanisms: str = "plain login",
) -> str:
    """A complete Dovecot 2.3 config that keeps everything under `root`.

    With `oauth2`, tokens log in too (XOAUTH2, OAUTHBEARER): a second passdb asks the
    introspection endpoint named in `root`/oauth2.conf.ext (see notes/dovecot-oauth2.md);
    `mechanisms` is what the server offers."""
    mailboxes: list[str] = []
    for name, special_use in personality.folders:
        # Mailbox sections name the mailbox inside the namespace, without its prefix.
        if not name.startswith(personality.prefix):
            raise ValueError(f"{name!r} is outside namespace prefix {personality.prefix!r}")
        lines = ["    auto = subscribe"]
        if special_use:
            lines.append(f"    special_use = {special_use}")
        inner = "\n".join(lines)
        mailboxes.append(f"  mailbox {_quote(name[len(personality.prefix) :])} {{\n{inner}\n  }}")
    extra = "\n".join([*_personality_settings(personality), *personality.extra_config])
    namespace_body = "\n".join(mailboxes)
    # Each passdb only for its own mechanisms: else a wrong password is sent to the
    # introspection endpoint as a token, and a password passes as an XOAUTH2 token.
    password_mechanisms = "\n  mechanisms = plain login" if oauth2 else ""
    oauth2_passdb = f"""
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/oauth2.conf.ext
}}""" if oauth2 else ""
    return f"""\
# Generated by tests/servers/dovecot.py for a throwaway test server ({personality.name}).
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = imap
listen = {LOOPBACK}
shutdown_clients = yes

default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = {mail_uid}
last_valid_uid = {mail_uid}
first_valid_gid = {mail_gid}
last_valid_gid = {mail_gid}

ssl = yes
ssl_cert = <{tls.cert_file}
ssl_key = <{tls.key_file}

disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
# A failed login still takes up to 0.5 s (Dovecot checks its failure queue twice a
# second), not the default 2 s.
auth_failure_delay = 0
mail_max_userip_connections = 1000

mail_location = maildir:~/Maildir
# A test server: durability does not matter, seeding speed does.
mail_fsync = never

# One passwd-file per user: a file Dovecot has never looked at is read at once. A
# single shared file is re-stat()ed at most once per second, so a user added right
# after another login would be unknown for up to a second.
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users/%u{password_mechanisms}
}}{oauth2_passdb}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/users/%u
}}

service imap-login {{
  inet_listener imap {{
    address = {LOOPBACK}
    port = {port}
  }}
  inet_listener imaps {{
    address = {LOOPBACK}
    port = {tls_port}
    ssl = yes
  }}
}}
# No growing delay for an IP after failed logins: tests log in wrongly on purpose.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}

namespace inbox {{
  inbox = yes
  separator = {personality.separator}
  prefix = {personality.prefix}
{namespace_body}
}}
{extra}
"""


class Dovecot(MasterProcessServer):
    """A private Dovecot 2.3 on loopback with one mailbox layout and many users.

    Everything (config, sockets, state, log, passwd-file, mail) lives in a short temp dir
    under /tmp that is removed on stop. Users are added at runtime: Dovecot's passwd-file
    driver re-reads the file when its mtime/inode change, so no reload is needed.
    Needs root: Dovecot switches to dovenull/dovecot for its own processes and to the
    system user `mail` for mail access.
    """

    kind = "dovecot"
    user_prefix = "t"
    log_files: ClassVar[tuple[str, ...]] = ("stderr.log", "dovecot.log")
    mail_dir: ClassVar[str] = "home"
    own_files: ClassVar[tuple[str, ...]] = ("dovecot",)

    def __init__(
        self,
        tls: TlsFiles,
        personality: Personality = STANDARD,
        *,
        binary: str | None = None,
        mail_user: str = "mail",
        introspection_url: str | None = None,
        mechanisms: str = "plain login",
    ) -> None:
        super().__init__()
        self.tls = tls
        self.personality = personality
        self.introspection_url = introspection_url  # tokens log in too (oauth2 passdb)
        self.mechanisms = mechanisms
        self.binary = binary or find_dovecot() or "/usr/sbin/dovecot"
        self.tls_port = 0
        self.mail_uid = pwd.getpwnam(mail_user).pw_uid
        self.mail_gid = grp.getgrnam(mail_user).gr_gid
        self._users: dict[str, str] = {}

    @classmethod
    def unavailable(cls) -> str | None:
        if find_dovecot() is None:
            return "dovecot is not installed (Debian: apt-get install dovecot-imapd)"
        if os.geteuid() != 0:
            return "the Dovecot test server needs root (it runs as dovenull/dovecot/mail)"
        return None

    # paths --------------------------------------------------------------

    @property
    def config_file(self) -> Path:
        return self._path("dovecot.conf")

    @property
    def log_file(self) -> Path:
        return self._path("dovecot.log")

    def passwd_file(self, username: str) -> Path:
        return self._path("users", username)

    # lifecycle ----------------------------------------------------------

    def _start_once(self, timeout: float) -> None:
        self.root = root = make_private_dir("fu-")
        for sub in ("run", "state", "home", "users"):
            (root / sub).mkdir(mode=0o755)
        self.port, self.tls_port = free_port(), free_port()
        while self.tls_port == self.port:
            self.tls_port = free_port()
        self.config_file.write_text(
            dovecot_config(
                root=root,
                port=self.port,
                tls_port=self.tls_port,
                tls=self.tls,
                personality=self.personality,
                mail_uid=self.mail_uid,
                mail_gid=self.mail_gid,
                oauth2=self.introspection_url is not None,
                mechanisms=self.mechanisms,
            ),
            encoding="utf-8",
        )
        if self.introspection_url is not None:
            # The auth cache stays off (the default): a revoked token must fail at once.
            self._path("oauth2.conf.ext").write_text(
                f"introspection_url = {self.introspection_url}\n"
                "introspection_mode = post\nusername_attribute = username\n"
                "active_attribute = active\nactive_value = true\ntimeout_msecs = 2000\n",
                encoding="utf-8")
        # -F: the master stays in the foreground, so our child is the master itself.
        self._spawn([self.binary, "-F", "-c", str(self.config_file)], "stderr.log", timeout,
                    env=real_clock_environment())

    def _stop(self, timeout: float) -> None:
        super()._stop(timeout)
        self._users.clear()

    # users --------------------------------------------------------------

    def add_user(self, username: str | None = None, password: str | None = None) -> tuple[str, str]:
        """Add a user with an empty home owned by the mail uid; return (username, password).

        The user's passwd-file ({PLAIN} password) is complete before it becomes visible
        (write, then rename), so a login right after this call succeeds.
        """
        username = self._new_username(username)
        with self._lock:
            if username in self._users:
                raise ValueError(f"duplicate username {username!r}")
            self._users[username] = password = password or secrets.token_urlsafe(12)
        home = self._path("home", username)
        home.mkdir(mode=0o700)
        os.chown(home, self.mail_uid, self.mail_gid)
        self._write_views(home)
        line = f"{username}:{{PLAIN}}{password}:{self.mail_uid}:{self.mail_gid}::{home}::\n"
        target = self.passwd_file(username)
        tmp = target.with_name(f".{username}.tmp")
        tmp.write_text(line, encoding="utf-8")
        tmp.chmod(0o644)
        os.replace(tmp, target)
        return username, password

    def _write_views(self, home: Path) -> None:
        # Dovecot cannot CREATE a virtual folder: each view is a directory with its
        # dovecot-virtual file, there before the user's first login.
        prefix = self.personality.views_prefix
        for view in self.personality.views:
            path = home
            for part in ["views", *view.name[len(prefix) :].split(self.personality.separator)]:
                path = path / part
                path.mkdir(mode=0o700, exist_ok=True)
                os.chown(path, self.mail_uid, self.mail_gid)
            rules = path / "dovecot-virtual"
            rules.write_text(view.rules, encoding="utf-8")
            os.chown(rules, self.mail_uid, self.mail_gid)

    def account(self, username: str, password: str) -> ImapAccount:
        p = self.personality
        return ImapAccount(
            kind="dovecot",
            host=self.host,
            port=self.port,
            tls_port=self.tls_port,
            username=username,
            password=password,
            ca_file=str(self.tls.cert_file),
            sent_folder=p.sent,
            drafts_folder=p.drafts,
            trash_folder=p.trash,
            junk_folder=p.junk,
            personality=p.name,
            uidvalidity_changer=self._change_uidvalidity,
            all_folder=p.all_mail,
        )

    def _change_uidvalidity(self, account: ImapAccount, folder: str) -> None:
        def renew_empty_inbox() -> None:
            # Dovecot cannot RENAME INBOX; its own admin tool can set a new UIDVALIDITY
            # (it disconnects sessions that have the folder selected, as on a real server).
            user = account.username
            status = self.doveadm("mailbox", "status", "-u", user, "uidvalidity", "INBOX")
            current = int(status.strip().rpartition("=")[2])
            self.doveadm(
                "mailbox", "update", "-u", user, "--uid-validity", str(current + 1), "INBOX"
            )

        rebuild_folder(account, folder, renew_empty_inbox=renew_empty_inbox)

    def doveadm(self, *args: str) -> str:
        """Run `doveadm -c CONFIG ARGS...` against this instance; return stdout."""
        doveadm = shutil.which("doveadm") or "/usr/bin/doveadm"
        result = subprocess.run(
            [doveadm, "-c", str(self.config_file), *args],
            capture_output=True,
            text=True,
            check=False,
            env=real_clock_environment(),
        )
        if result.returncode != 0:
            raise RuntimeError(f"doveadm {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout
