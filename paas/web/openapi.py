"""The OpenAPI 3.1 document of the JSON API (``/api/v1``), as data, and the blueprint that
serves it at ``GET /api/v1/openapi.json`` without a token.

The document is written by hand next to the routes. Two tests hold it to the code:
``tests/unit/test_openapi.py`` (valid OpenAPI 3.1; the same paths and methods as the Flask
routes) and ``tests/integration/test_api_fuzz.py`` (every answer has a documented status and
matches the documented schema).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from paas.model import CHECK_MODES
from paas.services import MAX_SCALE

JSON = "application/json"

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(required: dict[str, Schema], optional: dict[str, Schema] | None = None) -> Schema:
    """An object with these properties (other properties are allowed and ignored)."""
    return {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": list(required),
    }


def _array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def _map(values: Schema) -> Schema:
    return {"type": "object", "additionalProperties": values}


STRING: Schema = {"type": "string"}
TIME: Schema = {"type": "number", "description": "Unix time in seconds."}
OK: Schema = _object({"ok": {"const": True}})
DOMAINS: Schema = _object({"domains": _array(STRING)})
FORMATION: Schema = _object({"formation": _ref("Formation")})
CHECKS: Schema = _object({"checks": _ref("Checks")})
PORTS: Schema = _object({"ports": _array(STRING)})
PS_SETTINGS: Schema = _object({"settings": _object({"stop_timeout": {"type": "number"}})})
BUILDER: Schema = _object({"builder": _object({
    "stack": STRING, "stack_from": STRING, "memory_bytes": {"type": "integer"},
})})
STORAGE: Schema = _object({"storage": _array(STRING)})
LIMITS: Schema = _object({"limits": {
    "type": "object",
    "description": "Process type -> its limits.",
    "additionalProperties": _object(
        {"memory_bytes": {"type": "integer"}, "cpu": {"type": "number"},
         "pids": {"type": "integer"}}
    ),
}})


def _nullable(schema: Schema) -> Schema:
    return {"oneOf": [schema, {"type": "null"}]}


ERRORS = {
    "400": ("BadRequest", "The input is invalid; the message says what to send instead."),
    "401": ("Unauthorized", "Missing or wrong API token (run paas auth:token on the host)."),
    "404": ("NotFound", "No such app (or domain, release, build); the message names it."),
    "409": (
        "Conflict",
        "The request clashes with the current state (a name or domain is taken, nothing is "
        "deployed to run yet); the message says what to do instead.",
    ),
    "422": (
        "Failed",
        "The worker could not carry out the change; the app runs as it did before and the "
        "message says why.",
    ),
}


def _binary(operation: dict[str, Any], media: str) -> dict[str, Any]:
    """``operation`` answering a file of type ``media`` on success instead of JSON."""
    ok = operation["responses"]["200"]
    ok["content"] = {media: {"schema": {"type": "string", "format": "binary"}}}
    return operation


def _operation(
    operation_id: str,
    summary: str,
    ok: tuple[int, Schema | None],
    errors: str,
    *,
    body: Schema | None = None,
    body_required: bool = True,
    parameters: list[Schema] | None = None,
    description: str | None = None,
    other_media: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One operation: its answer on success (JSON, ``other_media`` types too, or no body for
    a schema of None), the error statuses it may give (``errors`` names them, such as
    ``"400 404"``; 401 is implied) and its JSON body, if it takes one."""
    status, schema = ok
    if schema is None:
        success: dict[str, Any] = {"description": "Switching protocols: see the description."}
    else:
        content = {JSON: {"schema": schema}, **(other_media or {})}
        success = {"description": "Done.", "content": content}
    responses: dict[str, Any] = {str(status): success}
    for code in ["401", *errors.split()]:
        responses[code] = {"$ref": f"#/components/responses/{ERRORS[code][0]}"}
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "responses": dict(sorted(responses.items())),
    }
    if description:
        operation["description"] = description
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {
            "required": body_required,
            "content": {JSON: {"schema": body}},
        }
    return operation


def _path_parameter(name: str, description: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": STRING,
    }


def _query(name: str, description: str, schema: Schema) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def _header(name: str, value: str) -> Schema:
    return {"name": name, "in": "header", "required": True, "schema": {"const": value}}


APP = {"$ref": "#/components/parameters/App"}

SCHEMAS: dict[str, Schema] = {
    "Error": _object(
        {
            "error": {
                "type": "string",
                "description": "What kind of error: invalid, unauthorized, not_found, "
                "conflict, deploy_failed, method_not_allowed, ...",
            },
            "message": {"type": "string", "description": "What was wrong and what to do."},
        }
    ),
    "AppName": {
        "type": "string",
        "pattern": "^[a-z]([a-z0-9-]{0,28}[a-z0-9])?$",
        "description": "1-30 lowercase letters, digits and dashes, starting with a letter "
        "and not ending with a dash.",
    },
    "AppSummary": _object({"name": _ref("AppName"), "created_at": TIME}),
    "App": _object(
        {
            "name": _ref("AppName"),
            "created_at": TIME,
            "release": _nullable(STRING),
            "git_rev": _nullable(STRING),
            "processes": _map(STRING),
            "formation": _ref("Formation"),
            "web_url": STRING,
            "git_remotes": _object({"http": STRING, "ssh": STRING}),
            "domains": _array(STRING),
        }
    ),
    "Formation": {
        **_map({"type": "integer", "minimum": 0, "maximum": MAX_SCALE}),
        "description": "How many replicas of each process type run.",
    },
    "Config": _map(STRING),
    "Release": _object(
        {
            "version": {"type": "integer", "minimum": 1},
            "name": {"type": "string", "description": "v1, v2, ..."},
            "description": STRING,
            "git_rev": STRING,
            "created_at": TIME,
            "created_by": STRING,
            "current": {"type": "boolean"},
        }
    ),
    "Replica": _object(
        {
            "id": STRING,
            "dyno": {"type": "string", "description": "web.1, worker.2, ..."},
            "process_type": STRING,
            "release": STRING,
            "state": {"enum": ["starting", "running", "crashed", "stopped"]},
            "address": _nullable(STRING),
            "started_at": _nullable(TIME),
            "exit_code": _nullable({"type": "integer"}),
            "reason": _nullable(STRING),
            "restarts": {"type": "integer", "description": "Crashes in a row of its slot."},
            "restart_at": _nullable({**TIME, "description": "When a crashed slot restarts."}),
            "retiring": {"type": "boolean", "description": "Out of the router, draining."},
        }
    ),
    "Build": _object(
        {
            "id": STRING,
            "rev": STRING,
            "status": {"enum": ["queued", "running", "succeeded", "failed"]},
            "release": _nullable(STRING),
            "created_at": TIME,
            "message": STRING,
            "actor": STRING,
        }
    ),
    "HealthCheck": _object(
        {
            "path": STRING,
            "content": {"type": "string", "description": "Text the answer must contain."},
            "timeout": {"type": "number"},
            "attempts": {"type": "integer"},
            "wait": {"type": "number"},
            "initial_delay": {"type": "number"},
            "name": STRING,
        }
    ),
    "Checks": {
        **_map(
            _object({"mode": {"enum": list(CHECK_MODES)}, "checks": _array(_ref("HealthCheck"))})
        ),
        "description": "Per process type: the check mode and the current release's health "
        "checks (from its app.json).",
    },
    "SshKey": _object({"name": STRING, "fingerprint": STRING}),
}

PATHS: dict[str, Any] = {
    "/openapi.json": {
        "get": {
            "operationId": "getOpenApi",
            "summary": "This document.",
            "security": [],
            "responses": {
                "200": {
                    "description": "The OpenAPI document.",
                    "content": {JSON: {"schema": {"type": "object"}}},
                }
            },
        }
    },
    "/apps": {
        "get": _operation(
            "listApps", "List the apps.", (200, _object({"apps": _array(_ref("AppSummary"))})), ""
        ),
        "post": _operation(
            "createApp",
            "Create an app.",
            (201, _ref("App")),
            "400 409",
            body=_object({"name": _ref("AppName")}),
        ),
    },
    "/apps/{name}": {
        "parameters": [APP],
        "get": _operation("getApp", "Show an app.", (200, _ref("App")), "400 404"),
        "delete": _operation(
            "destroyApp",
            "Destroy an app: its replicas, routes, repository, releases and config.",
            (200, _object({"destroyed": _ref("AppName")})),
            "400 404 422",
            parameters=[{**_query("confirm", "The app's name again.", STRING), "required": True}],
        ),
    },
    "/apps/{name}/config": {
        "parameters": [APP],
        "get": _operation(
            "getConfig",
            "The app's config vars.",
            (200, _object({"config": _ref("Config")})),
            "400 404",
        ),
        "patch": _operation(
            "setConfig",
            "Set and unset config vars.",
            (200, _object({"config": _ref("Config"), "release": _nullable(STRING)})),
            "400 404 422",
            body={
                **_object(
                    {},
                    {
                        "set": _ref("Config"),
                        "unset": _array(STRING),
                        "restart": {"type": "boolean", "default": True},
                    },
                ),
                "description": "At least one key to set or unset. Keys are letters, digits "
                "and '_', not starting with a digit. With restart (the default) and a "
                "release, a new release runs the new config; release is its name.",
            },
        ),
    },
    "/apps/{name}/releases": {
        "parameters": [APP],
        "get": _operation(
            "listReleases",
            "The app's releases, newest first.",
            (200, _object({"releases": _array(_ref("Release"))})),
            "400 404",
        ),
    },
    "/apps/{name}/rollback": {
        "parameters": [APP],
        "post": _operation(
            "rollback",
            "Release an earlier release's image and config again, as a new release.",
            (200, _object({"release": STRING, "description": STRING})),
            "400 404 422",
            body=_object({"version": {"type": "integer", "minimum": 1}}),
        ),
    },
    "/apps/{name}/checks": {
        "parameters": [APP],
        "get": _operation("getChecks", "Health checks and their modes.", (200, CHECKS), "400 404"),
        "patch": _operation(
            "setCheckMode",
            "Enable, skip or disable the health checks of some or all process types.",
            (200, CHECKS),
            "400 404",
            body=_object(
                {"mode": {"enum": list(CHECK_MODES)}},
                {"process_types": {**_array(STRING), "description": "Default: all."}},
            ),
            description="skipped: no checks, still zero-downtime. disabled: no "
            "zero-downtime either: old replicas stop before new ones start.",
        ),
    },
    "/apps/{name}/storage": {
        "parameters": [APP],
        "get": _operation("getStorage", "Host dirs mounted into the app's replicas.",
                          (200, STORAGE), "400 404"),
        "post": _operation(
            "mountStorage",
            "Mount a host dir (below a storage dir) into every replica: HOST:CONTAINER.",
            (201, STORAGE),
            "400 404 409 422",
            body=_object({"mount": STRING}),
            description="The data stays on the host across deploys and restarts; the "
            "replicas are replaced without downtime to get the mount.",
        ),
        "delete": _operation(
            "unmountStorage",
            "Stop mounting a host dir (its data stays on the host).",
            (200, STORAGE),
            "400 404 422",
            parameters=[_query("mount", "The mount, HOST:CONTAINER.", STRING)],
        ),
    },
    "/apps/{name}/ports": {
        "parameters": [APP],
        "get": _operation("getPorts", "The app's own host ports.", (200, PORTS), "400 404"),
        "put": _operation(
            "setPorts",
            "Listen for the app on host ports: http:HOST_PORT:CONTAINER_PORT ([] clears).",
            (200, PORTS),
            "400 404 409 422",
            body=_object({"ports": _array(STRING)}),
            description="The router also answers any host on each HOST_PORT for the app; "
            "its web process listens on CONTAINER_PORT (its PORT), and its replicas are "
            "replaced without downtime when that changes.",
        ),
    },
    "/apps/{name}/limits": {
        "parameters": [APP],
        "get": _operation("getLimits", "The limits of each process type.", (200, LIMITS),
                          "400 404"),
        "patch": _operation(
            "setLimits",
            "Change some limits of one process type, or of the whole app.",
            (200, LIMITS),
            "400 404 422",
            body=_object({}, {
                "process_type": _nullable(STRING),
                "memory": _nullable({"type": "string", "description": "A size: 256m, 1g."}),
                "cpu": _nullable({"type": "number", "description": "CPUs: 0.5 is half."}),
                "pids": _nullable({"type": "integer"}),
            }),
            description="Running replicas get the new limits in place (runc update); those "
            "the kernel will not update are replaced by a rolling restart.",
        ),
        "delete": _operation(
            "clearLimits",
            "Go back to the platform's default limits.",
            (200, LIMITS),
            "400 404 422",
            parameters=[_query("process_type", "Only this process type's own limits.",
                               STRING)],
        ),
    },
    "/apps/{name}/ps": {
        "parameters": [APP],
        "get": _operation(
            "listReplicas",
            "The app's replicas as they are now.",
            (200, _object({"replicas": _array(_ref("Replica"))})),
            "400 404",
        ),
    },
    "/apps/{name}/ps/restart": {
        "parameters": [APP],
        "post": _operation(
            "restart",
            "Replace the replicas of one process type, or of all.",
            (200, OK),
            "400 404 422",
            body=_object({}, {"process_type": STRING}),
            body_required=False,
        ),
    },
    "/apps/{name}/ps/stop": {
        "parameters": [APP],
        "post": _operation("stop", "Stop every replica.", (200, OK), "400 404 422"),
    },
    "/apps/{name}/ps/start": {
        "parameters": [APP],
        "post": _operation("start", "Start the formation again.", (200, OK), "400 404 422"),
    },
    "/apps/{name}/formation": {
        "parameters": [APP],
        "get": _operation("getFormation", "Replica counts.", (200, FORMATION), "400 404"),
        "patch": _operation(
            "scale",
            "Set replica counts of process types (others keep theirs).",
            (200, FORMATION),
            "400 404",
            body=_ref("Formation"),
        ),
    },
    "/apps/{name}/domains": {
        "parameters": [APP],
        "get": _operation("listDomains", "The app's extra host names.", (200, DOMAINS), "400 404"),
        "post": _operation(
            "addDomain",
            "Route a host name to the app.",
            (201, DOMAINS),
            "400 404 409 422",
            body=_object({"domain": STRING}),
        ),
    },
    "/apps/{name}/domains/{domain}": {
        "parameters": [APP, _path_parameter("domain", "A host name of the app.")],
        "delete": _operation(
            "removeDomain",
            "Stop routing a host name to the app.",
            (200, DOMAINS),
            "400 404 422",
        ),
    },
    "/apps/{name}/image": {
        "parameters": [APP],
        "get": _binary(
            _operation(
                "exportImage",
                "A release's image as an OCI image layout tar (skopeo, podman, umoci read it).",
                (200, STRING),
                "400 404 409",
                parameters=[_query("release", "The release, such as v3 (default: the current "
                                   "one).", STRING)],
                description="Config vars are not part of the image: they may be secret.",
            ),
            "application/x-tar",
        ),
    },
    "/apps/{name}/logs": {
        "parameters": [APP],
        "get": _operation(
            "logs",
            "The app's merged log: its replicas' output and the platform's events about it.",
            (200, _object({"lines": _array(STRING)})),
            "400 404",
            parameters=[
                _query(
                    "lines",
                    "How many of the last lines (1-10000; 0-10000 when following).",
                    {"type": "integer", "minimum": 0, "maximum": 10000, "default": 100},
                ),
                _query("process", "Only this process type (web) or replica (web.1).", STRING),
                _query(
                    "follow",
                    "1 to follow: a text/event-stream, see the description.",
                    {"type": "string", "default": "0"},
                ),
            ],
            description="Each line reads app[web.1]: TEXT or paas[SOURCE]: TEXT. With "
            "follow=1 the answer is a text/event-stream instead: a 'data: LINE' event per "
            "line, the last lines first and then new ones as they come, with a ': keepalive' "
            "comment after 15 seconds without a line.",
            other_media={"text/event-stream": {"schema": STRING}},
        ),
    },
    "/apps/{name}/builds": {
        "parameters": [APP],
        "get": _operation(
            "listBuilds",
            "The app's builds, newest first.",
            (200, _object({"builds": _array(_ref("Build"))})),
            "400 404",
        ),
    },
    "/apps/{name}/builds/{ref}/output": {
        "parameters": [APP, _path_parameter("ref", "A build id, or the release it made (v4).")],
        "get": _operation(
            "buildOutput",
            "A build's output.",
            (
                200,
                _object(
                    {
                        "build": _ref("Build"),
                        "status": STRING,
                        "lines": _array(STRING),
                        "expired": {
                            "type": "boolean",
                            "description": "The log is gone (failed builds' logs are kept "
                            "for a week).",
                        },
                    }
                ),
            ),
            "400 404",
        ),
    },
    "/apps/{name}/run": {
        "parameters": [APP],
        "post": _operation(
            "run",
            "Run a one-off command in a new container of the app's current release.",
            (101, None),
            "400 404 409",
            parameters=[
                _header("Connection", "Upgrade"),
                _header("Upgrade", "paas-run"),
            ],
            body=_object(
                {"command": {**_array(STRING), "minItems": 1}},
                {
                    "tty": {"type": "boolean", "default": False},
                    "rows": {"type": "integer"},
                    "cols": {"type": "integer"},
                    "env": {**_ref("Config"), "description": "Over the app's config."},
                },
            ),
            description="Not a JSON exchange once it starts: the request must carry "
            "Connection: Upgrade and Upgrade: paas-run, and the client sends nothing more "
            "until it has read the answer. An invalid request (400), an unknown app (404) "
            "or an app without a release (409) is answered in JSON as usual. Otherwise the "
            "answer is 101 Switching Protocols and the connection carries binary frames "
            "both ways (paas.runtime.attach: the command's stdin, stdout and stderr, window "
            "size changes), until the server's last frame, EXIT with the command's exit "
            "code or ERROR with a message, after which the server closes the connection. "
            "rows and cols, given together, set the terminal's size with tty.",
        ),
    },
    "/apps/{name}/ps/settings": {
        "parameters": [APP],
        "get": _operation("getProcessSettings", "The app's process settings.",
                          (200, PS_SETTINGS), "400 404"),
        "patch": _operation(
            "setProcessSetting",
            "Set a process setting: stop-timeout (seconds from TERM to KILL; \"default\").",
            (200, PS_SETTINGS),
            "400 404",
            body=_object({"key": STRING, "value": STRING}),
        ),
    },
    "/apps/{name}/builder": {
        "parameters": [APP],
        "get": _operation("getBuilderSettings",
                          "The stack and memory limit of the app's next build.",
                          (200, BUILDER), "400 404"),
        "patch": _operation(
            "setBuilderSetting",
            "Set a builder setting: stack (a stack of GET /stacks) or memory (the build's "
            "memory limit, such as 1g); \"default\" goes back to the platform's.",
            (200, BUILDER),
            "400 404",
            body=_object({"key": STRING, "value": STRING}),
        ),
    },
    "/stacks": {
        "get": _operation(
            "listStacks",
            "The stacks (base images) built on this platform.",
            (200, _object({"stacks": _array(_object({
                "name": STRING, "layers": _array(STRING), "packages": _array(STRING),
                "built_at": _nullable(TIME),
            }))})),
            "",
        ),
    },
    "/stacks/{stack}/build": {
        "parameters": [_path_parameter("stack", "A Debian suite, such as bookworm.")],
        "post": _operation(
            "buildStack",
            "(Re)build a stack from Debian's packages: minutes; apps get it at their next "
            "deploy.",
            (200, _object({"name": STRING, "layers": _array(STRING),
                           "output": _array(STRING)})),
            "400",
        ),
    },
    "/images/gc": {
        "post": _operation(
            "collectGarbage",
            "Remove image layers that no kept release (each app's last 10) nor stack uses.",
            (200, _object({"removed": _array(STRING)})),
            "",
        ),
    },
    "/ssh-keys": {
        "get": _operation(
            "listSshKeys",
            "The keys allowed to push over SSH.",
            (200, _object({"keys": _array(_ref("SshKey"))})),
            "",
        ),
        "post": _operation(
            "addSshKey",
            "Allow a public key to push over SSH.",
            (201, _ref("SshKey")),
            "400 409",
            body=_object(
                {
                    "name": {"type": "string", "description": "1-64 letters, digits, '_.@-'."},
                    "key": {"type": "string", "description": "An OpenSSH public key line."},
                }
            ),
        ),
    },
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "paas",
        "version": "1",
        "description": "The JSON API of a git-push deployment platform. Every answer is "
        "JSON; an error is an Error object with a status of 400 (invalid input), 401 (no or "
        "wrong token), 404 (no such thing), 409 (clashes with the current state) or 422 "
        "(the change failed and the app runs as before). Changes that the worker carries "
        "out (config, rollback, restart, stop, start, domains, destroy) answer once they "
        "are done. One-off runs switch protocols: see that operation.",
    },
    "servers": [{"url": "/api/v1"}],
    "security": [{"bearer": []}, {"basic": []}],
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "parameters": {"App": _path_parameter("name", "The app's name.")},
        "responses": {
            name: {"description": text, "content": {JSON: {"schema": _ref("Error")}}}
            for name, text in ERRORS.values()
        },
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "The API token."},
            "basic": {
                "type": "http",
                "scheme": "basic",
                "description": "Any user name, the API token as password (as git sends it).",
            },
        },
    },
}

openapi = Blueprint("openapi", __name__, url_prefix="/api/v1")


@openapi.get("/openapi.json")
def document() -> dict[str, Any]:
    return DOCUMENT
