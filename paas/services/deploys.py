"""Pushes and deploys: a push queues a build; the worker builds the pushed revision,
releases it and waits until it serves, the build's output going to its log stream."""

from __future__ import annotations

import logging
from dataclasses import replace

from paas.errors import PaasError
from paas.services.apps import Apps
from paas.services.base import _Output
from paas.state.store import Build

log = logging.getLogger(__name__)

INTERRUPTED = (
    "The platform's worker stopped while this build ran, and nothing was released. "
    "Push again."
)


class Deploys(Apps):
    # --- pushes and deploys ---------------------------------------------------------------------

    def push_received(self, app: str, rev: str, actor: str = "git") -> Build:
        self.ensure_app(app)
        build = self.store.new_build(app, rev, actor)
        self.logs.append(build.id, f"Build {build.id} queued for {rev[:7]}")
        self.queue.enqueue_deploy(build.id)
        return build

    def fail_interrupted_builds(self) -> list[str]:
        """Fail the builds that a stopped worker left running: their pushes end with a word
        now rather than after the log's idle timeout, and a late redelivery of their task
        does nothing (``deploy`` skips a failed build). Called as the worker starts, before
        it takes a task (a platform runs one worker); returns the builds failed."""
        failed = []
        for app in self.store.app_names():
            for build in self.store.builds(app):
                if build.status == "running":
                    self.store.save_build(replace(build, status="failed", message=INTERRUPTED))
                    self.logs.finish(build.id, False, INTERRUPTED)
                    failed.append(build.id)
        return failed

    def deploy(self, build_id: str) -> None:
        """Build the pushed revision, release it and wait until it serves (worker side)."""
        worker = self._worker()
        build = self.store.get_build(build_id)
        if build.status in ("succeeded", "failed"):
            return  # a redelivered task: the build already ran
        out = _Output(self.logs, build_id)
        try:
            with self.store.app_lock(build.app):
                self.store.save_build(replace(build, status="running"))
                release = worker.build_and_release(self, build, out)
            self.store.save_build(replace(build, status="succeeded", release=release.version))
            self.events.emit(build.app, "deploy", f"{release.name} by {build.actor}")
            url = self.app_info(build.app).web_url
            self.logs.finish(build_id, True, f"Released {release.name}: {url}", keep=True)
        except PaasError as exc:
            self.store.save_build(replace(build, status="failed", message=exc.message))
            self.logs.finish(build_id, False, exc.message)
        except Exception as exc:
            log.exception("deploy of %s failed", build_id)
            self.store.save_build(replace(build, status="failed", message=str(exc)))
            self.logs.finish(build_id, False, f"Internal error: {exc}. See the worker's log.")
            raise
