"""The pure part of reconciling: desired replicas from a release and a formation, and the
plan that turns observed replicas into desired ones. No I/O here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass

from paas.model import RELEASE_PHASE, DesiredReplica, Replica, ReplicaKey, ReplicaState


@dataclass(frozen=True)
class Plan:
    remove: tuple[str, ...]  # dead containers to clean up (stopped, crashed, unknown)
    start: tuple[DesiredReplica, ...]  # replicas to start
    retire: tuple[str, ...]  # running containers to stop once the started ones serve

    @property
    def empty(self) -> bool:
        return not (self.remove or self.start or self.retire)


def desired_replicas(
    app: str,
    release: int,
    formation: Mapping[str, int],
    processes: Iterable[str],
    generations: Mapping[str, int] | None = None,
) -> list[DesiredReplica]:
    """One desired replica per slot of each process type the release defines."""
    known = set(processes) - {RELEASE_PHASE}
    gens = generations or {}
    return [
        DesiredReplica(ReplicaKey(app, ptype, index), release, gens.get(ptype, 0))
        for ptype, count in sorted(formation.items())
        if ptype in known
        for index in range(1, count + 1)
    ]


def plan(
    desired: Iterable[DesiredReplica],
    observed: Iterable[Replica],
    hold: Set[ReplicaKey] = frozenset(),
) -> Plan:
    """Which containers to remove, start and retire.

    A slot is satisfied by a live (starting or running) container of the desired release and
    generation; other live containers, or those of slots no longer desired, are retired; dead
    containers are removed, except in the slots of ``hold`` (crashed replicas waiting for
    their restart time): those start nothing and keep their dead container; a second live
    container for one slot is retired.
    """
    wanted = {d.key: d for d in desired}
    remove: list[str] = []
    retire: list[str] = []
    satisfied: set[ReplicaKey] = set()
    for replica in sorted(observed, key=lambda r: (r.started_at or 0.0, r.container_id)):
        if replica.state not in (ReplicaState.RUNNING, ReplicaState.STARTING):
            if replica.key in hold and replica.key in wanted:
                satisfied.add(replica.key)  # waiting to restart: nothing to do yet
            else:
                remove.append(replica.container_id)
            continue
        target = wanted.get(replica.key)
        fits = (
            target is not None
            and target.release == replica.release
            and target.generation == replica.generation
        )
        if fits and replica.key not in satisfied:
            satisfied.add(replica.key)
        else:
            retire.append(replica.container_id)
    start = tuple(
        d for key, d in sorted(wanted.items(), key=_slot) if key not in satisfied | hold
    )
    return Plan(remove=tuple(remove), start=start, retire=tuple(retire))


def _slot(item: tuple[ReplicaKey, DesiredReplica]) -> tuple[str, str, int]:
    key = item[0]
    return (key.app, key.process_type, key.index)
