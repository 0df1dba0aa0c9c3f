"""Debian's Dovecot as a throw-away IMAP server on 127.0.0.1 for the tests.

Installs nothing (scripts/install-test-services.sh does): when `dovecot` is missing the
fixtures call `require()`, which skips locally and fails in CI. Each server gets a small
generated configuration in a temporary folder: passwd-file users, Maildir under that folder,
plain IMAP (and, with certificates, IMAPS plus STARTTLS). Stopped by its pid.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from tests.email.certs import CertBundle
from tests.support.services import free_port, port_open

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"


def dovecot_available() -> bool:
    return Path(DOVECOT).exists()


class Dovecot:
    """One Dovecot master process; `add_user`, `deliver` (straight into Maildir)."""

    def __init__(self, root: Path, certs: CertBundle | None = None) -> None:
        self.root = root
        self.certs = certs
        self.port = free_port()
        self.tls_port = free_port() if certs else 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._seq = 0
        if os.geteuid() == 0:
            self.login_user, self.internal_user, self.mail_user = "dovenull", "dovecot", "mail"
        else:
            me = pwd.getpwuid(os.geteuid()).pw_name
            self.login_user = self.internal_user = self.mail_user = me

    @property
    def config(self) -> Path:
        return self.root / "dovecot.conf"

    def _write_config(self) -> None:
        for name in ("run", "state", "mail", "users"):
            (self.root / name).mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        mail = pwd.getpwnam(self.mail_user)
        os.chown(self.root / "mail", mail.pw_uid, mail.pw_gid)
        if self.certs:
            tls = (
                "ssl = yes\n"
                f"ssl_cert = <{self.certs.cert_file}\n"
                f"ssl_key = <{self.certs.key_file}\n"
                "ssl_min_protocol = TLSv1.2\n"
            )
        else:
            tls = "ssl = no\n"
        self.config.write_text(
            f"""base_dir = {self.root}/run
state_dir = {self.root}/state
log_path = {self.root}/dovecot.log
protocols = imap
listen = 127.0.0.1
{tls}disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:{self.root}/mail/%u
default_login_user = {self.login_user}
default_internal_user = {self.internal_user}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.root}/users/%u
}}
userdb {{
  driver = static
  args = uid={mail.pw_uid} gid={mail.pw_gid} home={self.root}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.tls_port}
  }}
}}
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""
        )

    def start(self, timeout: float = 15) -> Dovecot:
        self._write_config()
        self.proc = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while not port_open("127.0.0.1", self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"dovecot did not start: {self.log()}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def add_user(self, name: str | None = None, password: str | None = None) -> tuple[str, str]:
        """A new mail user; returns (user, password).

        One passwd-file per user: Dovecot re-reads a changed file at most once a second,
        a new file it reads at once.
        """
        name = name or f"u{uuid.uuid4().hex[:10]}"
        password = password or uuid.uuid4().hex
        (self.root / "users" / name).write_text(f"{name}:{{PLAIN}}{password}::::::\n")
        return name, password

    def maildir(self, user: str, folder: str = "INBOX") -> Path:
        base = self.root / "mail" / user
        return base if folder == "INBOX" else base / f".{folder}"

    def deliver(self, user: str, raw: bytes, folder: str = "INBOX") -> Path:
        """Drop a message into the user's Maildir `new/`, as a local delivery agent would."""
        box = self.maildir(user, folder)
        for sub in ("tmp", "new", "cur"):
            (box / sub).mkdir(parents=True, exist_ok=True)
        self._seq += 1
        name = f"{time.time_ns()}.P{os.getpid()}Q{self._seq}.enque-test"
        tmp = box / "tmp" / name
        tmp.write_bytes(raw)
        final = box / "new" / name
        tmp.rename(final)
        mail = pwd.getpwnam(self.mail_user)
        for path in (self.root / "mail" / user, box, box / "tmp", box / "new", box / "cur", final):
            os.chown(path, mail.pw_uid, mail.pw_gid)
        return final

    def seen_flags(self, user: str, folder: str = "INBOX") -> list[str]:
        """Maildir info flags of every message (`S` = read)."""
        box = self.maildir(user, folder)
        names = [p.name for sub in ("new", "cur") for p in (box / sub).glob("*")]
        return [n.split(":2,", 1)[1] if ":2," in n else "" for n in names]

    def reset_uidvalidity(self, user: str, value: int, folder: str = "INBOX") -> None:
        subprocess.run(
            [
                DOVEADM,
                "-c",
                str(self.config),
                "mailbox",
                "update",
                "-u",
                user,
                "--uid-validity",
                str(value),
                folder,
            ],
            check=True,
            capture_output=True,
        )
