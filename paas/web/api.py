"""The JSON API (``/api/v1``). Errors map to JSON bodies and statuses here, in one place."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import Blueprint, Flask, current_app, g, jsonify, request, send_file
from werkzeug.exceptions import HTTPException

from paas.appjson import HealthCheck
from paas.errors import InvalidInput, PaasError, Unauthorized
from paas.model import CrashState, Release, Replica, StorageMount, validate_app_name
from paas.services import AppInfo, Services
from paas.settings import Limits
from paas.web.api_run import api_run
from paas.web.extensions import host

api = Blueprint("api", __name__, url_prefix="/api/v1")
api.register_blueprint(api_run)  # nested: same token check and error answers



def _services() -> Services:
    services: Services = current_app.extensions["paas.services"]
    return services


def request_token() -> str | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:].strip()
    if request.authorization is not None and request.authorization.password:
        return request.authorization.password
    return None


SSH_RELAY = "ssh"  # the token owner of SSH commands, which name the key that ran them


@api.before_request
def _authenticate() -> None:
    owner = _services().token_owner(request_token())
    if owner is None:
        raise Unauthorized("Missing or wrong API token. Run paas auth:token on the platform host.")
    g.actor = owner
    if owner == SSH_RELAY:
        g.actor = request.headers.get("X-Paas-Actor", SSH_RELAY)[:64] or SSH_RELAY


def _actor() -> str:
    return str(g.actor)


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InvalidInput("Send a JSON object as the request body.")
    return data


def _app_json(info: AppInfo) -> dict[str, Any]:
    release = info.release
    return {
        "name": info.app.name,
        "created_at": info.app.created_at,
        "release": None if release is None else release.name,
        "git_rev": None if release is None else release.git_rev,
        "processes": {} if release is None else dict(release.processes),
        "formation": dict(info.formation),
        "web_url": info.web_url,
        "git_remotes": {"http": info.git_http, "ssh": info.git_ssh},
        "domains": list(info.domains),
    }


def _release_json(release: Release, current: int | None) -> dict[str, Any]:
    return {
        "version": release.version,
        "name": release.name,
        "description": release.description,
        "git_rev": release.git_rev,
        "created_at": release.created_at,
        "created_by": release.created_by,
        "current": release.version == current,
    }


def _replica_json(replica: Replica, crash: CrashState | None = None) -> dict[str, Any]:
    """A replica; ``crash``: its slot's crash record (restarts in a row, next restart)."""
    return {
        "restarts": crash.count if crash else 0,
        "restart_at": crash.restart_at if crash else None,
        "id": replica.container_id,
        "dyno": replica.key.dyno,
        "process_type": replica.key.process_type,
        "release": f"v{replica.release}",
        "state": replica.state.value,
        "address": replica.address,
        "started_at": replica.started_at,
        "exit_code": replica.exit_code,
        "reason": replica.reason,
    }


@api.get("/apps")
def list_apps() -> Any:
    return {"apps": [asdict(app) for app in _services().list_apps()]}


@api.post("/apps")
def create_app() -> Any:
    name = _body().get("name")
    if not isinstance(name, str):
        raise InvalidInput('Give the app a name: {"name": "hello"}.')
    services = _services()
    services.create_app(name)
    return _app_json(services.app_info(name)), 201


@api.get("/apps/<name>")
def app_info(name: str) -> Any:
    return _app_json(_services().app_info(validate_app_name(name)))


@api.delete("/apps/<name>")
def destroy_app(name: str) -> Any:
    _services().destroy_app(validate_app_name(name), request.args.get("confirm"), _actor())
    return {"destroyed": name}


@api.get("/apps/<name>/config")
def get_config(name: str) -> Any:
    return {"config": _services().config(validate_app_name(name))}


@api.patch("/apps/<name>/config")
def set_config(name: str) -> Any:
    body = _body()
    values = body.get("set", {})
    unset = body.get("unset", [])
    restart = body.get("restart", True)
    if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
        raise InvalidInput('"set" must be an object of text values: {"set": {"K": "V"}}.')
    if not isinstance(unset, list) or not all(isinstance(k, str) for k in unset):
        raise InvalidInput('"unset" must be a list of keys: {"unset": ["K"]}.')
    if not isinstance(restart, bool):
        raise InvalidInput('"restart" must be true or false.')
    services = _services()
    release = services.set_config(validate_app_name(name), values, unset, restart, _actor())
    return {"config": services.config(name), "release": release}


@api.get("/apps/<name>/releases")
def releases(name: str) -> Any:
    services = _services()
    listed = services.releases(validate_app_name(name))
    current = listed[0].version if listed else None
    return {"releases": [_release_json(r, current) for r in listed]}


@api.post("/apps/<name>/rollback")
def rollback(name: str) -> Any:
    version = _body().get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InvalidInput('Give the release to roll back to: {"version": 3}.')
    services = _services()
    services.rollback(validate_app_name(name), version, _actor())
    release = services.releases(name)[0]
    return {"release": release.name, "description": release.description}


@api.post("/apps/<name>/ps/restart")
def restart(name: str) -> Any:
    body = request.get_json(silent=True) or {}
    ptype = body.get("process_type") if isinstance(body, dict) else None
    if ptype is not None and not isinstance(ptype, str):
        raise InvalidInput('"process_type" must be a process type name, e.g. "web".')
    _services().restart(validate_app_name(name), ptype, _actor())
    return {"ok": True}


@api.post("/apps/<name>/ps/stop")
def stop(name: str) -> Any:
    _services().stop(validate_app_name(name), _actor())
    return {"ok": True}


@api.post("/apps/<name>/ps/start")
def start(name: str) -> Any:
    _services().start(validate_app_name(name), _actor())
    return {"ok": True}


@api.get("/apps/<name>/domains")
def domains(name: str) -> Any:
    return {"domains": _services().domains(validate_app_name(name))}


@api.post("/apps/<name>/domains")
def add_domain(name: str) -> Any:
    domain = _body().get("domain")
    if not isinstance(domain, str):
        raise InvalidInput('Give the domain: {"domain": "www.example.test"}.')
    services = _services()
    services.add_domain(validate_app_name(name), domain, _actor())
    return {"domains": services.domains(name)}, 201


@api.delete("/apps/<name>/domains/<domain>")
def remove_domain(name: str, domain: str) -> Any:
    services = _services()
    services.remove_domain(validate_app_name(name), domain, _actor())
    return {"domains": services.domains(name)}


def _checks_json(checks: dict[str, tuple[str, tuple[HealthCheck, ...]]]) -> dict[str, Any]:
    return {
        ptype: {"mode": mode, "checks": [asdict(c) for c in listed]}
        for ptype, (mode, listed) in checks.items()
    }


@api.get("/apps/<name>/checks")
def checks(name: str) -> Any:
    return {"checks": _checks_json(_services().checks(validate_app_name(name)))}


@api.patch("/apps/<name>/checks")
def set_checks(name: str) -> Any:
    body = _body()
    mode, types = body.get("mode"), body.get("process_types", [])
    if not isinstance(mode, str):
        raise InvalidInput('Give the mode: {"mode": "enabled" | "skipped" | "disabled"}.')
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        raise InvalidInput('"process_types" must be a list of process type names.')
    result = _services().set_check_mode(validate_app_name(name), types, mode, _actor())
    return {"checks": _checks_json(result)}


@api.get("/apps/<name>/image")
def export_image(name: str) -> Any:
    """The OCI image layout tar of a release (``?release=vN``; default: the current one)."""
    raw = request.args.get("release", "")
    if raw and not (raw[:1] == "v" and raw[1:].isdecimal() and 0 < int(raw[1:]) < 10**9):
        raise InvalidInput("release must be a release name such as v3.")
    version, handle = host().export_image(validate_app_name(name), int(raw[1:]) if raw else None)
    release = _services().store.release(name, version)
    response = send_file(handle, mimetype="application/x-tar", as_attachment=True,
                         download_name=f"{name}-{release.name}.oci.tar")
    return response


def _storage_json(mounts: list[StorageMount]) -> dict[str, Any]:
    return {"storage": [str(m) for m in mounts]}


@api.get("/apps/<name>/storage")
def storage(name: str) -> Any:
    return _storage_json(_services().storage(validate_app_name(name)))


@api.post("/apps/<name>/storage")
def mount_storage(name: str) -> Any:
    mount = _body().get("mount")
    if not isinstance(mount, str):
        raise InvalidInput('Give the mount: {"mount": "/var/lib/paas/storage/APP:/data"}.')
    return _storage_json(_services().mount_storage(validate_app_name(name), mount, _actor())), 201


@api.delete("/apps/<name>/storage")
def unmount_storage(name: str) -> Any:
    mount = request.args.get("mount", "")
    return _storage_json(_services().unmount_storage(validate_app_name(name), mount, _actor()))


@api.get("/apps/<name>/ports")
def ports(name: str) -> Any:
    return {"ports": [str(p) for p in _services().ports(validate_app_name(name))]}


@api.put("/apps/<name>/ports")
def set_ports(name: str) -> Any:
    mappings = _body().get("ports")
    if not isinstance(mappings, list) or not all(isinstance(m, str) for m in mappings):
        raise InvalidInput('Give the mappings: {"ports": ["http:8080:5000"]} ([] clears).')
    result = _services().set_ports(validate_app_name(name), mappings, _actor())
    return {"ports": [str(p) for p in result]}


def _limits_json(limits: dict[str, Limits]) -> dict[str, Any]:
    return {"limits": {t: asdict(lim) for t, lim in limits.items()}}


@api.get("/apps/<name>/limits")
def limits(name: str) -> Any:
    return _limits_json(_services().limits(validate_app_name(name)))


@api.patch("/apps/<name>/limits")
def set_limits(name: str) -> Any:
    body = _body()
    ptype, memory, cpu, pids = (body.get(k) for k in ("process_type", "memory", "cpu", "pids"))
    if ptype is not None and not isinstance(ptype, str):
        raise InvalidInput('"process_type" must be a process type name, e.g. "web".')
    if memory is not None and not isinstance(memory, str):
        raise InvalidInput('"memory" must be a size such as "256m".')
    if cpu is not None and (isinstance(cpu, bool) or not isinstance(cpu, int | float)):
        raise InvalidInput('"cpu" must be a number of CPUs such as 0.5.')
    if pids is not None and (isinstance(pids, bool) or not isinstance(pids, int)):
        raise InvalidInput('"pids" must be a whole number.')
    result = _services().set_limits(validate_app_name(name), ptype, memory, cpu, pids, _actor())
    return _limits_json(result)


@api.delete("/apps/<name>/limits")
def clear_limits(name: str) -> Any:
    ptype = request.args.get("process_type") or None
    return _limits_json(_services().clear_limits(validate_app_name(name), ptype, _actor()))


@api.get("/apps/<name>/ps/settings")
def process_settings(name: str) -> Any:
    return {"settings": _services().process_settings(validate_app_name(name))}


@api.patch("/apps/<name>/ps/settings")
def set_process_setting(name: str) -> Any:
    body = _body()
    key, value = body.get("key"), body.get("value")
    if not isinstance(key, str) or not isinstance(value, str):
        raise InvalidInput('Send {"key": "stop-timeout", "value": "30"}.')
    result = _services().set_process_setting(validate_app_name(name), key, value, _actor())
    return {"settings": result}


@api.get("/apps/<name>/builder")
def builder_settings(name: str) -> Any:
    return {"builder": _services().builder_settings(validate_app_name(name))}


@api.patch("/apps/<name>/builder")
def set_builder_setting(name: str) -> Any:
    body = _body()
    key, value = body.get("key"), body.get("value")
    if not isinstance(key, str) or not isinstance(value, str):
        raise InvalidInput('Send {"key": "stack", "value": "bookworm"}.')
    app = validate_app_name(name)
    result = _services().set_builder_setting(app, key, value, _actor(), host().stacks())
    return {"builder": result}


@api.get("/stacks")
def stacks() -> Any:
    return {"stacks": [
        {"name": name, "layers": record.get("layers", []), "packages": record.get("packages", []),
         "built_at": record.get("built_at")}
        for name, record in host().stacks().items()
    ]}


@api.post("/stacks/<stack>/build")
def build_stack(stack: str) -> Any:
    """Rebuild a stack (minutes: debootstrap and apt); answers with the build's output."""
    lines: list[str] = []
    layers = host().build_stack(stack, lines.append)
    return {"name": stack, "layers": list(layers), "output": lines}


@api.post("/images/gc")
def collect_garbage() -> Any:
    return {"removed": host().collect_garbage()}


@api.get("/apps/<name>/ps")
def ps(name: str) -> Any:
    services = _services()
    replicas = sorted(
        host().observe(validate_app_name(name)),
        key=lambda r: (r.key.process_type, r.key.index, r.release),
    )
    crashes, retiring = services.store.crashes(name), services.store.retiring()
    return {"replicas": [
        {**_replica_json(r, crashes.get(r.key.dyno)), "retiring": r.container_id in retiring}
        for r in replicas
    ]}


@api.get("/apps/<name>/formation")
def formation(name: str) -> Any:
    return {"formation": dict(_services().app_info(validate_app_name(name)).formation)}


@api.patch("/apps/<name>/formation")
def scale(name: str) -> Any:
    body = _body()
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in body.values()):
        raise InvalidInput('Give counts as integers: {"web": 3}.')
    return {"formation": _services().scale(validate_app_name(name), body)}


@api.get("/ssh-keys")
def ssh_keys() -> Any:
    return {"keys": [{"name": n, "fingerprint": f} for n, f in _services().ssh_keys().items()]}


@api.post("/ssh-keys")
def add_ssh_key() -> Any:
    body = _body()
    name, key = body.get("name"), body.get("key")
    if not isinstance(name, str) or not isinstance(key, str):
        raise InvalidInput('Send {"name": "alice@laptop", "key": "ssh-ed25519 AAAA..."}.')
    fingerprint = _services().add_ssh_key(name, key)
    host().write_authorized_keys()
    return {"name": name, "fingerprint": fingerprint}, 201


def register_errors(app: Flask) -> None:
    """The one mapping from errors to HTTP answers."""

    @app.errorhandler(PaasError)
    def _paas_error(exc: PaasError) -> Any:
        response = jsonify({"error": exc.kind, "message": exc.message})
        response.status_code = exc.http_status
        if exc.http_status == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="paas"'
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        kind = exc.name.lower().replace(" ", "_")
        response = jsonify({"error": kind, "message": exc.description})
        response.status_code = exc.code or 500
        return response
