"""One network configuration for both legs of a connection: the Web API and the WebSocket.

A client talks to Slack twice: over HTTPS (``rtm.connect``, ``apps.connections.open``, every
Web API call) and over the WebSocket. Left to themselves, requests and websocket-client
disagree: requests trusts certifi's bundle (or ``REQUESTS_CA_BUNDLE``) while websocket-client
trusts the system store (or ``WEBSOCKET_CLIENT_CA_BUNDLE``), and they read proxy variables
differently (websocket-client ignores ``ALL_PROXY`` and takes a ``socks5://`` value for an HTTP
proxy). A corporate CA or proxy then works for one leg and not the other. Here both legs get
their trust store and their proxy from the same functions:

* :func:`trust_context`: one :class:`ssl.SSLContext` for both legs.
* :func:`parse_proxy` / :func:`environ_proxy`: one :class:`ProxyConfig` per URL, explicit or
  from ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` minus ``NO_PROXY``.
* :func:`require_socks`: a clear error naming the ``socks`` extra when a SOCKS proxy is asked
  for and its libraries are missing.

Pure configuration: no sockets, no threads.
"""

from __future__ import annotations

import functools
import os
import ssl
from typing import NamedTuple, Optional, Tuple
from urllib.parse import unquote, urlsplit

import requests

#: Proxy schemes both legs support. ``socks5h`` resolves host names on the proxy.
PROXY_SCHEMES = ("http", "socks5", "socks5h")
_DEFAULT_PORTS = {"http": 80, "https": 443, "socks5": 1080, "socks5h": 1080}
#: Environment variables naming a CA bundle, in the order they are read.
CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")
SOCKS_EXTRA_HINT = "pip install 'slackrtm[socks]'"


class ProxyConfig(NamedTuple):
    """A proxy: ``scheme://[user:pass@]host:port`` parsed and checked."""

    url: str
    host: str
    port: int
    auth: Optional[Tuple[str, str]]
    scheme: str = "http"

    @property
    def display(self) -> str:
        """The proxy without its credentials, fit for logs and reprs."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def is_socks(self) -> bool:
        """Whether this is a SOCKS proxy (``socks5://`` or ``socks5h://``)."""
        return self.scheme.startswith("socks")


def parse_proxy(proxy: str, *, strict: bool = True) -> ProxyConfig:
    """Check a proxy URL: ``http://``, ``socks5://`` or ``socks5h://`` with a host and port.

    ``strict`` (an explicit ``proxy=``) requires a scheme and a port; otherwise (a value from
    the environment) a bare ``host:port`` means ``http://`` and the scheme's port is the
    default. Anything else is a :class:`ValueError`. Error messages never repeat the URL: it
    may carry a password.
    """
    if not isinstance(proxy, str):
        raise ValueError(f"proxy must be a str like http://[user:pass@]host:port, "
                         f"got {type(proxy).__name__}")
    text = proxy.strip()
    if not strict and "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if not strict and scheme == "https":
        scheme = "http"  # an https:// proxy variable names an HTTP proxy reached over TCP
    if scheme not in PROXY_SCHEMES:
        raise ValueError("proxy must look like http://[user:pass@]host:port, socks5://... or "
                         f"socks5h://... (supported schemes: {', '.join(PROXY_SCHEMES)}), "
                         f"got scheme {parts.scheme or '(none)'!r}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None and not strict:
        port = _DEFAULT_PORTS.get(parts.scheme.lower(), 80)
    if not parts.hostname or port is None:
        raise ValueError(f"proxy must look like {scheme}://[user:pass@]host:port: "
                         "a host and a numeric port are required")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"proxy must look like {scheme}://[user:pass@]host:port: "
                         "no path, query or fragment")
    auth = None
    if parts.username is not None:
        auth = (unquote(parts.username), unquote(parts.password or ""))
    if scheme != parts.scheme.lower():
        text = scheme + text[len(parts.scheme):]
    return ProxyConfig(text, parts.hostname, port, auth, scheme)


def http_url(url: str) -> str:
    """The http(s) URL a WebSocket URL corresponds to, for proxy selection."""
    lower = url.lower()
    if lower.startswith("wss://"):
        return "https://" + url[6:]
    if lower.startswith("ws://"):
        return "http://" + url[5:]
    return url


def environ_proxy(url: str) -> Optional[ProxyConfig]:
    """The proxy the environment names for ``url`` (http, https, ws or wss), or None.

    Reads ``HTTPS_PROXY`` (https, wss), ``HTTP_PROXY`` (http, ws), then ``ALL_PROXY``,
    in either case, and ``NO_PROXY`` (host names, domains, IP addresses and CIDR ranges),
    exactly as requests does for the Web API leg, so both legs agree.
    """
    target = http_url(url)
    proxies = requests.utils.get_environ_proxies(target)
    chosen = requests.utils.select_proxy(target, proxies)
    if not chosen:
        return None
    return parse_proxy(chosen, strict=False)


def proxy_for(explicit: Optional[ProxyConfig], url: str) -> Optional[ProxyConfig]:
    """The proxy for ``url``: the explicit one (for every host), else the environment's."""
    return explicit if explicit is not None else environ_proxy(url)


def _missing_socks(leg: str) -> Optional[str]:
    """The package a leg's SOCKS support needs, when it cannot be imported."""
    try:
        if leg == "web":
            import socks  # noqa: F401  (PySocks: requests' SOCKS support)
        else:
            import python_socks  # noqa: F401  (websocket-client's SOCKS support)
    except ImportError:
        return "PySocks" if leg == "web" else "python-socks"
    return None


def require_socks(proxy: Optional[ProxyConfig], *, legs: Tuple[str, ...] = ("web", "ws"),
                  origin: str = "proxy") -> None:
    """Raise :class:`ImportError` naming the ``socks`` extra when ``proxy`` is a SOCKS proxy
    and a library it needs is missing (PySocks for the Web API, python-socks for the
    WebSocket). ``origin`` says where the proxy came from, for the message."""
    if proxy is None or not proxy.is_socks:
        return
    missing = [name for name in (_missing_socks(leg) for leg in legs) if name]
    if missing:
        raise ImportError(
            f"{origin} {proxy.display} is a SOCKS proxy, which needs {' and '.join(missing)}: "
            f"{SOCKS_EXTRA_HINT}")


def ca_bundle_from_environment() -> Optional[str]:
    """The CA bundle an environment variable names (see :data:`CA_BUNDLE_VARIABLES`)."""
    for name in CA_BUNDLE_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def trust_context(ssl_context: Optional[ssl.SSLContext] = None) -> ssl.SSLContext:
    """The one SSLContext both legs use.

    ``ssl_context`` when given, as is. Else a context that trusts the CA bundle named by
    ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE`` or ``SSL_CERT_FILE`` (the first one set; a
    directory works too) and nothing else, as requests does. Else the default: the system's
    store plus certifi's bundle (requests' own default), so that what one leg trusted before
    both legs trust now. Contexts are built once per distinct environment and shared: an
    SSLContext is safe to share between threads.
    """
    if ssl_context is not None:
        return ssl_context
    return _cached_context(ca_bundle_from_environment(),
                           os.environ.get("SSL_CERT_DIR", "").strip() or None)


@functools.lru_cache(maxsize=8)
def _cached_context(bundle: Optional[str], cert_dir: Optional[str]) -> ssl.SSLContext:
    if bundle is not None:
        if os.path.isdir(bundle):
            return ssl.create_default_context(capath=bundle)
        if not os.path.isfile(bundle):
            raise ValueError(f"the CA bundle named by the environment does not exist: {bundle}")
        return ssl.create_default_context(cafile=bundle)
    context = ssl.create_default_context()
    if cert_dir is not None and os.path.isdir(cert_dir):
        context.load_verify_locations(capath=cert_dir)
    try:
        import certifi
    except ImportError:  # requests depends on it, but it may be absent in odd installs
        return context
    context.load_verify_locations(cafile=certifi.where())
    return context
