"""The files other parties read at /.well-known/ to trust this domain's passkeys elsewhere: the
broker's other domains (WebAuthn Related Origin Requests), its Android apps (Digital Asset Links)
and its iOS apps (Associated Domains, webcredentials). Each exists only when its setting is set."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..config import Settings

GET_LOGIN_CREDS = "delegate_permission/common.get_login_creds"


def _settings(request: Request) -> Settings:
    return request.app.state.ctx.settings


async def webauthn(request: Request) -> Response:
    """WebAuthn L3 §5.11.1: the origins that may use this RP ID (ours and the related ones)."""
    settings = _settings(request)
    if not settings.related_origins:
        raise HTTPException(404)
    return JSONResponse({"origins": list(settings.page_origins)})


async def assetlinks(request: Request) -> Response:
    settings = _settings(request)
    if not settings.android_apps:
        raise HTTPException(404)
    return JSONResponse([{"relation": [GET_LOGIN_CREDS],
                          "target": {"namespace": "android_app", "package_name": package,
                                     "sha256_cert_fingerprints": list(fingerprints)}}
                         for package, fingerprints in settings.android_apps])


async def apple_app_site_association(request: Request) -> Response:
    settings = _settings(request)
    if not settings.apple_app_ids:
        raise HTTPException(404)
    return JSONResponse({"webcredentials": {"apps": list(settings.apple_app_ids)}})
