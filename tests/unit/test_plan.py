from paas.model import DesiredReplica, Replica, ReplicaKey, ReplicaState
from paas.reconciler.plan import desired_replicas, plan


def replica(cid: str, ptype: str, index: int, release: int,
            state: ReplicaState = ReplicaState.RUNNING, started: float = 1.0) -> Replica:
    return Replica(cid, ReplicaKey("a", ptype, index), release, state, "198.18.0.2", started)


def test_desired_replicas_follow_formation_and_known_types() -> None:
    got = desired_replicas("a", 3, {"web": 2, "worker": 1, "gone": 4}, ["web", "worker"])
    assert [d.key.dyno for d in got] == ["web.1", "web.2", "worker.1"]
    assert {d.release for d in got} == {3}


def test_nothing_to_do_when_observed_matches() -> None:
    desired = desired_replicas("a", 1, {"web": 1}, ["web"])
    assert plan(desired, [replica("c1", "web", 1, 1)]).empty


def test_first_deploy_starts_everything() -> None:
    desired = desired_replicas("a", 1, {"web": 2}, ["web"])
    p = plan(desired, [])
    assert [d.key.dyno for d in p.start] == ["web.1", "web.2"]
    assert p.retire == () and p.remove == ()


def test_new_release_starts_new_then_retires_old() -> None:
    desired = desired_replicas("a", 2, {"web": 1}, ["web"])
    p = plan(desired, [replica("old", "web", 1, 1)])
    assert [(d.key.dyno, d.release) for d in p.start] == [("web.1", 2)]
    assert p.retire == ("old",)


def test_dead_replicas_are_removed_and_replaced() -> None:
    desired = desired_replicas("a", 1, {"web": 1}, ["web"])
    p = plan(desired, [replica("dead", "web", 1, 1, ReplicaState.CRASHED)])
    assert p.remove == ("dead",)
    assert [d.key.dyno for d in p.start] == ["web.1"]


def test_scale_down_retires_the_extra_slots_and_duplicates() -> None:
    desired = [DesiredReplica(ReplicaKey("a", "web", 1), 1)]
    observed = [replica("w1", "web", 1, 1, started=1.0), replica("w1b", "web", 1, 1, started=2.0),
                replica("w2", "web", 2, 1)]
    p = plan(desired, observed)
    assert p.start == ()
    assert set(p.retire) == {"w1b", "w2"}


def test_plan_is_idempotent_after_applying() -> None:
    desired = desired_replicas("a", 2, {"web": 2}, ["web"])
    first = plan(desired, [replica("old", "web", 1, 1)])
    after = [replica(f"n{d.key.index}", d.key.process_type, d.key.index, d.release)
             for d in first.start]
    assert plan(desired, after).empty


def test_restart_replaces_replicas_of_an_older_generation() -> None:
    desired = desired_replicas("a", 1, {"web": 1, "worker": 1}, ["web", "worker"], {"web": 2})
    observed = [
        Replica("w", ReplicaKey("a", "web", 1), 1, ReplicaState.RUNNING, None, 1.0, generation=1),
        Replica("k", ReplicaKey("a", "worker", 1), 1, ReplicaState.RUNNING, None, 1.0),
    ]
    p = plan(desired, observed)
    assert [(d.key.dyno, d.generation) for d in p.start] == [("web.1", 2)]
    assert p.retire == ("w",)


def test_stopped_app_retires_everything() -> None:
    p = plan([], [replica("w1", "web", 1, 1), replica("w2", "web", 2, 1)])
    assert p.start == () and set(p.retire) == {"w1", "w2"}


def test_a_held_crashed_slot_waits_for_its_restart_time() -> None:
    desired = desired_replicas("a", 1, {"web": 2}, ["web"])
    dead = replica("dead", "web", 1, 1, ReplicaState.CRASHED)
    held = plan(desired, [dead, replica("w2", "web", 2, 1)], hold={dead.key})
    assert held.empty
    due = plan(desired, [dead, replica("w2", "web", 2, 1)])
    assert due.remove == ("dead",) and [d.key.dyno for d in due.start] == ["web.1"]


def test_hold_does_not_keep_slots_that_are_no_longer_desired() -> None:
    dead = replica("dead", "web", 3, 1, ReplicaState.CRASHED)
    p = plan(desired_replicas("a", 1, {"web": 1}, ["web"]), [dead], hold={dead.key})
    assert p.remove == ("dead",)


def test_a_held_slot_without_a_container_starts_nothing() -> None:
    desired = desired_replicas("a", 1, {"web": 1}, ["web"])
    assert plan(desired, [], hold={ReplicaKey("a", "web", 1)}).empty
