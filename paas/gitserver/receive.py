"""receive-pack whose pre-receive hook runs after the pack is in and streams its output live.

dulwich 1.2.21 runs ``hooks/pre-receive`` *before* reading the pack (so the hook cannot see
the pushed commit), buffers its output until it exits, and treats any stderr as failure.
git's semantics, which this handler restores, are: receive the pack, run the hook with the
"old new ref" lines on stdin, relay its stdout and stderr to the client as ``remote:``
lines while it runs, and update refs only if it exits 0; otherwise every ref is reported
``ng <ref> pre-receive hook declined``.

It overrides two private methods of ``dulwich.server.ReceivePackHandler`` (hence the pin
of dulwich in pyproject.toml): ``_on_pre_receive`` and ``_apply_pack``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Generator, Iterator, Mapping, Sequence
from typing import IO

from dulwich.errors import GitProtocolError
from dulwich.objects import ObjectID
from dulwich.protocol import CAPABILITY_SIDE_BAND_64K, SIDE_BAND_CHANNEL_PROGRESS, Protocol
from dulwich.refs import Ref
from dulwich.server import Backend, ReceivePackHandler

HOOK_DECLINED = b"pre-receive hook declined"
DEFAULT_HOOK_TIMEOUT = 3600.0

RefUpdate = tuple[ObjectID, ObjectID, Ref]  # (old sha, new sha, ref name)


class StreamingReceivePackHandler(ReceivePackHandler):
    """``ReceivePackHandler`` running ``<repo>/hooks/pre-receive`` between pack and refs.

    ``hook_env`` is added to the hook's environment (``GIT_DIR`` is always set). A hook
    still running after ``hook_timeout`` seconds is killed, which declines the push.
    """

    def __init__(
        self,
        backend: Backend,
        args: Sequence[str],
        proto: Protocol,
        stateless_rpc: bool = False,
        advertise_refs: bool = False,
        *,
        hook_env: Mapping[str, str] | None = None,
        hook_timeout: float = DEFAULT_HOOK_TIMEOUT,
    ) -> None:
        super().__init__(
            backend, args, proto, stateless_rpc=stateless_rpc, advertise_refs=advertise_refs
        )
        self.hook_env = dict(hook_env or {})
        self.hook_timeout = hook_timeout
        self._client_gone = False

    # Overrides ReceivePackHandler._on_pre_receive: dulwich calls it before the pack is read.
    # The hook runs from _apply_pack below instead.
    def _on_pre_receive(self, client_refs: list[RefUpdate]) -> None:
        return None

    # Overrides ReceivePackHandler._apply_pack, a generator: its first item comes after the
    # pack is stored, the ref updates happen only as the rest is consumed.
    def _apply_pack(self, refs: list[RefUpdate]) -> Iterator[tuple[bytes, bytes]]:
        stock = super()._apply_pack(refs)
        assert isinstance(stock, Generator)
        unpack = next(stock)
        yield unpack
        if unpack[1] != b"ok":
            return
        if self.run_pre_receive(refs) != 0:
            stock.close()
            for _old, _new, ref in refs:
                yield (ref, HOOK_DECLINED)
            return
        yield from stock

    def run_pre_receive(self, refs: Sequence[RefUpdate]) -> int:
        """Run the hook, relaying each output line as it comes; return its exit status."""
        git_dir = str(self.repo.controldir())  # type: ignore[attr-defined]  # a dulwich Repo
        hook = os.path.join(git_dir, "hooks", "pre-receive")
        if not os.path.exists(hook):
            return 0
        env = {**os.environ, **self.hook_env, "GIT_DIR": git_dir}
        env.setdefault("PYTHONUNBUFFERED", "1")
        stdin = b"".join(b"%s %s %s\n" % ref for ref in refs)
        try:
            proc = subprocess.Popen(
                [hook],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=git_dir,
                start_new_session=True,
            )
        except OSError as exc:
            self._progress(f"pre-receive hook could not start: {exc}\n".encode())
            return 127
        assert proc.stdin is not None and proc.stdout is not None
        timed_out = threading.Event()

        def kill_on_timeout() -> None:
            timed_out.set()
            _kill_group(proc)

        watchdog = threading.Timer(self.hook_timeout, kill_on_timeout)
        watchdog.daemon = True
        watchdog.start()
        try:
            feeder = threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True)
            feeder.start()
            for line in iter(proc.stdout.readline, b""):
                self._progress(line)
            feeder.join()
            status = proc.wait()
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                _kill_group(proc)
                proc.wait()
            proc.stdout.close()
        if timed_out.is_set():
            self._progress(b"pre-receive hook timed out after %ds\n" % int(self.hook_timeout))
        elif status < 0:
            self._progress(b"pre-receive hook was killed by signal %d\n" % -status)
        return status

    def _progress(self, data: bytes) -> None:
        """Send ``data`` as ``remote:`` output; a vanished client does not stop the hook."""
        if self._client_gone or not self.has_capability(CAPABILITY_SIDE_BAND_64K):
            return
        try:
            self.proto.write_sideband(SIDE_BAND_CHANNEL_PROGRESS, data)
        except (OSError, GitProtocolError):  # dulwich wraps write errors in GitProtocolError
            self._client_gone = True


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _feed(pipe: IO[bytes], data: bytes) -> None:
    """Write the ref lines to the hook; a hook that does not read them is fine."""
    try:
        pipe.write(data)
    except BrokenPipeError:
        pass
    finally:
        with contextlib.suppress(BrokenPipeError):
            pipe.close()
