"""Build logs: an app's builds and the output of one, named by build id or by release."""

from __future__ import annotations

from dataclasses import dataclass

from paas.errors import NotFound
from paas.state.logstream import LogStreams
from paas.state.store import Build, Store


@dataclass(frozen=True)
class BuildOutput:
    build: Build
    lines: tuple[str, ...]
    expired: bool  # the log is gone (a failed build's log is kept for a week)


@dataclass(frozen=True)
class BuildLogs:
    store: Store
    streams: LogStreams

    def builds(self, app: str) -> list[Build]:
        """The app's builds, newest first."""
        self.store.get_app(app)
        return self.store.builds(app)

    def build_output(self, app: str, ref: str) -> BuildOutput:
        """The log of a build named by its id, or by a release (``v4``): the build that made
        it, or for a release that reused an image (config change, rollback) the build that
        made that image."""
        if ref[:1] == "v" and ref[1:].isdecimal():
            build = self._build_of_release(app, int(ref[1:]))
        else:
            build = self._build(app, ref)
        events = self.streams.read(build.id)
        lines = tuple(e.text for e in events if e.kind == "line" or e.text)
        return BuildOutput(build=build, lines=lines, expired=not events)

    def _build_of_release(self, app: str, version: int) -> Build:
        builds = self.builds(app)
        releases = {r.version: r for r in self.store.releases(app)}
        if version not in releases:
            raise NotFound(f"{app} has no release v{version}. Run paas releases {app}.")
        image = releases[version].image_id
        made = [b for b in builds if b.release == version] + [
            b for b in builds if b.release in releases and releases[b.release].image_id == image
        ]
        if not made:
            raise NotFound(f"No build of {app} made the image of v{version}.")
        return made[0]

    def _build(self, app: str, build_id: str) -> Build:
        self.store.get_app(app)
        missing = NotFound(f"No build {build_id} of {app}. Run paas builds {app}.")
        try:
            build = self.store.get_build(build_id)
        except NotFound:
            raise missing from None
        if build.app != app:
            raise missing
        return build
