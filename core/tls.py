"""TLS for every hop, with the standard library only (the host agent's install has no more):
contexts for servers and for clients that trust one CA, and the rule that a secret never goes
to a plain http:// URL unless the operator asked for plain HTTP."""
from __future__ import annotations

import ssl
from dataclasses import dataclass


class PlainRefused(ValueError):
    pass


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_file, key_file)
    return ctx


def client_context(ca_file: str) -> ssl.SSLContext:
    """Trusts `ca_file` only (not the system's roots): a certificate from any other CA fails."""
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def verify(ca_file: str) -> ssl.SSLContext | bool:
    """httpx's `verify=`: the CA when there is one; with none, the system's roots."""
    return client_context(ca_file) if ca_file else True


def check_url(url: str, what: str, plain_ok: bool) -> str:
    """`url`, if a secret may be sent to it: https://, or http:// when plain HTTP was asked for."""
    if url.startswith("https://") or (plain_ok and url.startswith("http://")):
        return url
    if url.startswith("http://"):
        raise PlainRefused(f"{what} {url} is plain HTTP: a token sent there can be read on the way. "
                           "Use https://, or pass --insecure-plain-http to accept that")
    raise PlainRefused(f"{what} {url}: an https:// URL is required")


@dataclass(frozen=True)
class HostTLS:
    """A host agent's TLS files; no CA means plain HTTP (--insecure-plain-http)."""
    ca: str = ""
    cert: str = ""   # its peer server's certificate and key
    key: str = ""

    @property
    def scheme(self) -> str:
        return "https" if self.ca else "http"

    def client(self) -> ssl.SSLContext | bool:
        """For the API, the coordinator's endpoint and peers: the stack's CA only."""
        return verify(self.ca)

    def store_client(self) -> ssl.SSLContext | bool:
        """For the region's store: the system's roots (a cloud store) and the stack's CA (a local one)."""
        if not self.ca:
            return True
        ctx = ssl.create_default_context()
        ctx.load_verify_locations(self.ca)
        return ctx

    def server(self) -> ssl.SSLContext | None:
        return server_context(self.cert, self.key) if self.cert else None
