"""An SMTP server (aiosmtpd) with AUTH and optional TLS that keeps what it receives."""

from __future__ import annotations

import email
import email.policy
import ssl
import threading
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.services import ReceivedMail, free_port


@dataclass
class AuthSmtpServer:
    """`security`: none (plain, AUTH allowed), starttls, or tls (implicit)."""

    users: dict[str, str]
    security: str = "none"
    tls_context: ssl.SSLContext | None = None
    host: str = "127.0.0.1"
    port: int = 0
    messages: list[ReceivedMail] = field(default_factory=list)
    reject: dict[str, str] = field(default_factory=dict)  # recipient → "550 …" reply
    _controller: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> AuthSmtpServer:
        server = self

        class Handler:
            async def handle_RCPT(
                self, _server: Any, _session: Any, envelope: Any, address: str, _opts: Any
            ) -> str:
                if address in server.reject:
                    return server.reject[address]
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
                message = email.message_from_bytes(envelope.content, policy=email.policy.default)
                with server._lock:
                    server.messages.append(
                        ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), message)
                    )
                return "250 OK"

        def authenticator(_server: Any, _session: Any, _env: Any, mechanism: str, data: Any) -> Any:
            if isinstance(data, LoginPassword):
                user, password = data.login.decode(), data.password.decode()
                if server.users.get(user) == password:
                    return AuthResult(success=True, auth_data=data)
            return AuthResult(success=False, handled=False)

        self.port = free_port()
        kwargs: dict[str, Any] = {
            "hostname": self.host,
            "port": self.port,
            "authenticator": authenticator,
            # Implicit TLS is not seen by aiosmtpd's check, which only knows STARTTLS.
            "auth_require_tls": self.security == "starttls",
            "auth_required": self.security != "none",
        }
        if self.security == "starttls":
            kwargs.update(tls_context=self.tls_context, require_starttls=True)
        elif self.security == "tls":
            kwargs.update(ssl_context=self.tls_context)
        self._controller = Controller(Handler(), **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()

    def to(self, address: str) -> list[ReceivedMail]:
        with self._lock:
            return [m for m in self.messages if address in m.rcpt_tos]
