"""Builds the object graph from ``Settings``: the one place that names concrete classes."""

from __future__ import annotations

import pwd
from collections.abc import Callable
from pathlib import Path

import redis

from paas.agent.client import AgentClient
from paas.agent.server import Agent
from paas.applogs import AppLogs
from paas.build.buildpack import BuildpackBuilder
from paas.build.docker_builder import DockerfileBuilder
from paas.errors import NotFound
from paas.gitserver import hook, ssh
from paas.gitserver.repos import RepoStore
from paas.gitserver.ssh_commands import ssh_dispatcher
from paas.host import LocalHost
from paas.images.layer_index import LayerIndex
from paas.images.layers import LayerStore
from paas.images.stack import StackBuilder
from paas.images.store import ImageStore
from paas.model import APP_NAME_RE
from paas.monitor import Monitor
from paas.network import Network
from paas.oneoff import OneOffs
from paas.reconciler.reconciler import Collaborators, Reconciler
from paas.router.nginx import Router
from paas.runtime.runtime import Runtime, systemd_runs_host
from paas.services import Services, TaskQueue, WorkerParts
from paas.settings import Settings
from paas.state.events import Events
from paas.state.logstream import LogStreams
from paas.state.store import Store
from paas.tasks.celery_app import CeleryQueue, create_celery

PROJECT_DIR = Path(__file__).resolve().parent.parent


def redis_client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(
        settings.effective_redis_url, socket_connect_timeout=5, socket_timeout=30
    )


def repo_owner(settings: Settings) -> tuple[int, int] | None:
    """The uid/gid that owns app repos: the SSH user, which pushes over SSH run as."""
    try:
        entry = pwd.getpwnam(settings.ssh_user)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def router(settings: Settings) -> Router:
    return Router(settings.nginx_dir, settings.http_port, settings.bind)


def network(settings: Settings) -> Network:
    return Network(
        settings.bridge, settings.subnet, settings.instance, settings.network_dir,
        settings.http_port,
    )  # fmt: skip


def runtime(settings: Settings) -> Runtime:
    """The runtime of the platform's containers; under systemd their shims get scopes in a
    slice of the platform's own (``paas-INSTANCE.slice``)."""
    return Runtime(
        settings.runc_root, settings.containers_dir, settings.cgroup_parent,
        log_rotation=settings.log_rotation,
        systemd_slice=f"{settings.cgroup_parent}.slice" if systemd_runs_host() else None,
    )  # fmt: skip


def local_host(wired: Services) -> LocalHost:
    """What only root may see or do, in this process (the agent's side of ``paas.host``):
    the replicas' output files, one-off runs (runc and netns), stacks, layers."""
    worker = wired.worker
    assert worker is not None, "local_host needs worker_services"
    applogs = AppLogs(wired.store, wired.events, worker.runtime)
    oneoffs = OneOffs(
        wired.store, worker.images, worker.layers, worker.runtime, network(wired.settings),
        wired.settings.default_limits,
    )  # fmt: skip
    return LocalHost(wired, applogs, oneoffs)


def agent(settings: Settings, web_uid: int, web_gid: int) -> Agent:
    """The agent's server: ``local_host`` on its socket, for root and the API's user."""
    host = local_host(worker_services(settings))
    return Agent(host, settings.agent_socket, {0, web_uid}, web_gid)


def agent_client(settings: Settings) -> AgentClient:
    """``paas.host.Host`` for the API (unprivileged): it asks the agent."""
    return AgentClient(settings.agent_socket)


def services(settings: Settings, queue: TaskQueue | None = None) -> Services:
    """What edges that only record desired state need (API, git hooks, SSH commands)."""
    client = redis_client(settings)
    return Services(
        settings=settings,
        store=Store(client, settings.instance),
        logs=LogStreams(client, settings.instance),
        events=Events(client, settings.instance),
        repos=RepoStore(settings.repos_dir, PROJECT_DIR / "hooks", repo_owner(settings)),
        queue=queue or CeleryQueue(create_celery(settings)),
        storage_dirs=agent_client(settings).prepare_storage_dir,
    )


def monitor(settings: Settings) -> Monitor:
    wired = worker_services(settings)
    assert wired.worker is not None
    reconciler = wired.worker.reconciler
    return Monitor(wired.store, wired.events, reconciler, wired.queue.enqueue_reconcile)


def hook_main() -> int:
    """``paas-hook``: git's pre-receive hook (see ``paas.gitserver.hook``)."""
    return hook.main(services)


def ssh_main() -> int:
    """``paas-ssh KEYNAME``: sshd's forced command; a push to a new app creates it, and
    other commands run the paas CLI against the local API."""
    return ssh.main(
        make_on_push_to_missing=lambda s: services(s).ensure_app,
        make_dispatcher=ssh_dispatcher,
    )


def release_images(store: Store) -> Callable[[str], str | None]:
    """Dockerfile ``FROM APP`` or ``FROM APP:vN``: the image of that app's (current) release."""

    def image_of(ref: str) -> str | None:
        app, _, version = ref.partition(":")
        if not APP_NAME_RE.fullmatch(app) or not store.app_exists(app):
            return None
        try:
            release = (store.release(app, int(version[1:])) if version[:1] == "v"
                       and version[1:].isdecimal() else store.current_release(app))
        except NotFound:
            return None
        return None if release is None else release.image_id

    return image_of


def worker_services(settings: Settings) -> Services:
    """Everything, including what drives runc, netns, mounts and nginx (root only)."""
    base = services(settings)
    layers = LayerStore(settings.layers_dir)
    images = ImageStore(settings.images_dir)
    rt = runtime(settings)
    stacks = StackBuilder(settings.stacks_dir, layers, rt)
    reconciler = Reconciler(
        Collaborators(
            settings=settings,
            store=base.store,
            images=images,
            layers=layers,
            runtime=rt,
            network=network(settings),
            router=router(settings),
            events=base.events,
            schedule_retire=base.queue.enqueue_retire,
            schedule_reconcile=base.queue.enqueue_reconcile,
        )
    )
    worker = WorkerParts(
        stacks=stacks,
        builder=BuildpackBuilder(
            rt, layers, PROJECT_DIR / "buildpacks",
            dependencies=LayerIndex(settings.cache_dir / ".dependencies", layers),
        ),
        docker=DockerfileBuilder(
            rt, layers, stacks, images, settings.cache_dir / "dockerfile",
            stack_names=(settings.stack,), image_refs=release_images(base.store),
        ),
        layers=layers,
        images=images,
        runtime=rt,
        reconciler=reconciler,
    )
    return Services(
        settings=settings,
        store=base.store,
        logs=base.logs,
        events=base.events,
        repos=base.repos,
        queue=base.queue,
        worker=worker,
    )
