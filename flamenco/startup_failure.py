"""Start-up failures: one line naming the setting on standard error, then exit status 1.

Used for what the configuration points at but the machine does not provide: a port already
in use, TLS files missing or not matching, a database that cannot be opened. systemd's
`Restart=on-failure` does the retrying; no traceback is printed for these expected cases.
"""

from __future__ import annotations

import os
import sys

from twisted.application.service import Service
from twisted.internet import ssl
from twisted.internet.error import CannotListenError

from flamenco.config import Config

PROGRAM = "flamenco-manager"


class StartupFailure(Exception):
    """The Manager cannot start; the message is one line naming the setting."""


def exit_with(message: str, reactor) -> None:
    """Print `flamenco-manager: message` to the real standard error and end with status 1.

    twistd itself exits with 0 after a reactor stop and has redirected `sys.stderr` into the
    log, hence `sys.__stderr__` and `os._exit` once the reactor has shut down.
    """
    print(f"{PROGRAM}: {message}", file=sys.__stderr__, flush=True)
    if sys.__stdout__ is not None:  # None without a console (pythonw)
        sys.__stdout__.flush()
    if reactor.running:
        reactor.addSystemEventTrigger("after", "shutdown", os._exit, 1)
        reactor.stop()
    else:
        os._exit(1)


def _read(setting: str, path: str) -> bytes:
    try:
        with open(path, "rb") as stream:
            return stream.read()
    except OSError as error:
        raise StartupFailure(f"{setting}: cannot read {path}: {error.strerror}") from None


def tls_options(config: Config) -> ssl.CertificateOptions:
    """The TLS context of the Worker port, with every problem of the two files as one line.

    `tlscert` may hold the certificate followed by its intermediate certificates.
    """
    from OpenSSL import SSL, crypto

    key_pem = _read("tlskey", config.tlskey)
    cert_pem = _read("tlscert", config.tlscert)
    try:
        key = crypto.load_privatekey(crypto.FILETYPE_PEM, key_pem)
    except crypto.Error:
        raise StartupFailure(f"tlskey: {config.tlskey} is not a PEM private key "
                             "(or it is encrypted)") from None
    marker = b"-----BEGIN CERTIFICATE-----"
    blocks = [marker + block for block in cert_pem.split(marker)[1:]]
    try:
        certificates = [crypto.load_certificate(crypto.FILETYPE_PEM, block) for block in blocks]
    except crypto.Error:
        certificates = []
    if not certificates:
        raise StartupFailure(f"tlscert: {config.tlscert} is not a PEM certificate")
    options = ssl.CertificateOptions(privateKey=key, certificate=certificates[0],
                                     extraCertChain=certificates[1:])
    try:
        options.getContext().check_privatekey()
    except SSL.Error:
        raise StartupFailure(f"tlskey/tlscert: the key in {config.tlskey} does not match "
                             f"the certificate in {config.tlscert}") from None
    return options


class ListeningService(Service):
    """The Workers' port, opened before twistd drops privileges; a port that cannot be
    opened (in use, privileged) ends start-up with one line naming `listen`."""

    def __init__(self, reactor, config: Config, factory, tls: ssl.CertificateOptions | None):
        self.reactor = reactor
        self.config = config
        self.factory = factory
        self.tls = tls
        self.port = None

    def privilegedStartService(self):
        super().privilegedStartService()
        listen = self.config.listen
        try:
            if self.tls is not None:
                self.port = self.reactor.listenSSL(listen.port, self.factory, self.tls,
                                                   interface=listen.host)
            else:
                self.port = self.reactor.listenTCP(listen.port, self.factory,
                                                   interface=listen.host)
        except CannotListenError as error:
            reason = getattr(error.socketError, "strerror", None) or str(error.socketError)
            exit_with(f"listen: cannot listen on {_address(listen)}: {reason}", self.reactor)

    def stopService(self):
        super().stopService()
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()


def _address(listen) -> str:
    host = f"[{listen.host}]" if ":" in listen.host else listen.host
    return f"{host}:{listen.port}"
