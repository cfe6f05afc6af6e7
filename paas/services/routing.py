"""Routing: an app's domains and host ports, stored as desired state and put into the
router by the worker (a change the router refuses is undone)."""

from __future__ import annotations

from collections.abc import Sequence

from paas.errors import Conflict, DeployFailed, InvalidInput
from paas.model import PortMap, parse_port_map
from paas.router.nginx import validate_server_name
from paas.services.base import ServicesBase


class Routing(ServicesBase):
    # --- domains --------------------------------------------------------------------------------

    def domains(self, app: str) -> list[str]:
        self.store.get_app(app)
        return self.store.domains(app)

    def add_domain(self, app: str, domain: str, actor: str) -> None:
        self.store.get_app(app)
        name = validate_server_name(domain.strip().lower())
        if name.endswith(f".{self.settings.domain}") and name != f"{app}.{self.settings.domain}":
            raise Conflict(f"{name} is under the platform's domain; it belongs to another app.")
        had = name in self.store.domains(app)
        self.store.add_domain(app, name)
        try:
            self.request(app, "route", {}, actor)
        except DeployFailed:
            if not had:
                self.store.remove_domain(app, name)  # the router never served it
            raise
        self.events.emit(app, "router", f"domain {name} added by {actor}")

    def remove_domain(self, app: str, domain: str, actor: str) -> None:
        self.store.get_app(app)
        name = domain.strip().lower()
        self.store.remove_domain(app, name)
        try:
            self.request(app, "route", {}, actor)
        except DeployFailed:
            self.store.add_domain(app, name)  # the router still serves it
            raise
        self.events.emit(app, "router", f"domain {name} removed by {actor}")

    # --- ports --------------------------------------------------------------------------------

    def ports(self, app: str) -> list[PortMap]:
        self.store.get_app(app)
        return self.store.ports(app)

    def set_ports(self, app: str, mappings: Sequence[str], actor: str) -> list[PortMap]:
        """Listen for the app on host ports (``http:8080:5000``: host 8080 to the web
        process's PORT 5000); no mappings: back to the router's port only. The web replicas
        restart onto a new container port, without downtime."""
        self.store.get_app(app)
        ports = [parse_port_map(m) for m in mappings]
        s = self.settings
        reserved = {s.http_port, s.api_port, s.ssh_port}
        for p in ports:
            if p.host in reserved:
                raise Conflict(f"Port {p.host} is the platform's own; pick another.")
        if len({p.host for p in ports}) != len(ports):
            raise InvalidInput("Each host port may appear once.")
        if len({p.container for p in ports}) > 1:
            raise InvalidInput("All mappings must lead to the same container port (the "
                               "web process's PORT).")
        before = self.store.ports(app)
        self.store.set_ports(app, ports)
        try:
            self.request(app, "ports", {"changed": _container(before) != _container(ports)},
                         actor)
        except DeployFailed:
            self.store.set_ports(app, before)
            raise
        return ports


def _container(ports: Sequence[PortMap]) -> int | None:
    return ports[0].container if ports else None
