from __future__ import annotations

import hmac
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_safe
from prometheus_client.exposition import choose_encoder

from .metrics import scrape_registry


@lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple[IPv4Network | IPv6Network, ...]:
    return tuple(ip_network(cidr, strict=False) for cidr in cidrs)


def _from_allowed_network(request: HttpRequest) -> bool:
    """The connection's peer is in FINOPS_METRICS_ALLOWED_NETWORKS. A request that came
    through a proxy (it carries X-Forwarded-For, which the proxy adds) has the proxy's
    address as its peer, which says nothing of the client's: it needs the token."""
    if "HTTP_X_FORWARDED_FOR" in request.META:
        return False
    try:
        address = ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    networks = _networks(tuple(settings.FINOPS_METRICS_ALLOWED_NETWORKS))
    return any(address in network for network in networks)


def _has_token(request: HttpRequest) -> bool:
    """`Authorization: Bearer <FINOPS_METRICS_TOKEN>` (never, when the token is empty)."""
    token = settings.FINOPS_METRICS_TOKEN
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), token.encode())


@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus's scrape. For a client neither on an allowed network nor holding the
    token, there is no such page: 404, as for any unknown path."""
    if not (_from_allowed_network(request) or _has_token(request)):
        raise Http404
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = HttpResponse(encoder(scrape_registry()), content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response
