"""A login for the web UI: one username and password from the environment, on every route.

Locust 2.47 has ``--web-login`` and nothing behind it: alone, it locks every route (answering
200 "no secret key was set") until a plugin sets a secret key, a user loader and a login route.
The kit does that when ``LOADKIT_WEB_PASSWORD`` is set (``LOADKIT_WEB_USER``, default
``loadkit``), with or without ``--web-login``; ``--web-login`` without a password is refused at
start, instead of a UI nobody can open.

* Browsers log in on Locust's own login page (``<base>/login``); the session cookie is signed
  with a key made for this process (a restart logs everyone out), HttpOnly, SameSite=Lax.
* Scripts send the same username and password as HTTP Basic (``curl -u loadkit:$PASSWORD``).
* Every other request is refused before any route runs: a page asked for by a browser is sent
  to the login page (302); anything else (JSON, CSV, POST) gets 401 with ``WWW-Authenticate``.
  Only the login page, its form's target and Locust's static assets are open.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from typing import Any, Final

from flask import jsonify, redirect, request, session, url_for
from flask_login import LoginManager, UserMixin, current_user, login_user
from locust.env import Environment

from loadkit.plugin.invalid_input import exit_invalid
from loadkit.plugin.web_routes import add_kit_route, kit_path
from loadkit.settings import Settings

logger = logging.getLogger("loadkit")

LOGIN_ROUTE: Final = "/loadkit/login"
PASSWORD_ENV: Final = "LOADKIT_WEB_PASSWORD"
USER_ENV: Final = "LOADKIT_WEB_USER"
WRONG: Final = "Wrong username or password"


class WebUser(UserMixin):
    """The one user the UI knows; its id is its name."""

    def __init__(self, name: str) -> None:
        self.id = name


def install_web_login(environment: Environment, settings: Settings) -> bool:
    """Require the login on every route of this process's web UI; True if it is on."""
    web_ui = environment.web_ui
    if web_ui is None:
        return False
    if settings.web_password is None:
        if web_ui.web_login:
            exit_invalid(
                f"--web-login needs {PASSWORD_ENV} (and {USER_ENV}, default loadkit): "
                "without them nobody could log in"
            )
        return False
    user, password = settings.web_user, settings.web_password.get_secret_value()
    app = web_ui.app
    app.secret_key = secrets.token_hex(32)
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax")
    if not web_ui.web_login:
        manager = LoginManager()
        manager.init_app(app)
        manager.login_view = "locust.login"
        web_ui.login_manager = manager
        web_ui.web_login = True
    manager = web_ui.login_manager

    def is_valid(name: str | None, given: str | None) -> bool:
        return hmac.compare_digest((name or "").encode(), user.encode()) & hmac.compare_digest(
            (given or "").encode(), password.encode()
        )

    @manager.user_loader
    def _load_user(user_id: str) -> WebUser | None:
        return WebUser(user_id) if user_id == user else None

    @manager.request_loader
    def _from_basic_auth(req: Any) -> WebUser | None:
        auth = req.authorization
        if auth is not None and auth.type == "basic" and is_valid(auth.username, auth.password):
            return WebUser(user)
        return None

    manager.unauthorized_handler(lambda: refusal(web_ui))

    def login_submit() -> Any:
        if is_valid(request.form.get("username"), request.form.get("password")):
            login_user(WebUser(user))
            session["auth_error"] = None
            return redirect(url_for("locust.index"))
        logger.warning("loadkit: web UI login refused (wrong username or password)")
        session["auth_error"] = WRONG
        return redirect(url_for("locust.login"))

    submit = add_kit_route(
        web_ui, LOGIN_ROUTE, "loadkit_login", login_submit, methods=("POST",), login=False
    )
    web_ui.auth_args = {**web_ui.auth_args, "username_password_callback": submit}
    open_paths = {kit_path(web_ui, "/login"), submit}
    assets = kit_path(web_ui, "/assets/")

    @app.before_request
    def _require_login() -> Any:
        if request.path in open_paths or request.path.startswith(assets):
            return None
        if current_user.is_authenticated:
            return None
        return refusal(web_ui)

    logger.info("loadkit: the web UI asks for a login (user %s)", user)
    return True


def refusal(web_ui: Any) -> Any:
    """A browser's page request goes to the login page; everything else is a 401."""
    # Browsers name text/html when they navigate; scripts send */* or JSON types.
    asks_for_page = any(value == "text/html" for value, _ in request.accept_mimetypes)
    if request.method == "GET" and asks_for_page:
        return redirect(kit_path(web_ui, "/login"))
    response = jsonify({"success": False, "message": "loadkit: log in first (see /login)"})
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Basic realm="loadkit web UI"'
    return response
