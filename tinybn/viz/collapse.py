"""Fold the repeated per-sample structure of a graph into a few samples and a summary.

A batch-norm graph over N samples repeats the same chain x → x − μ → (x − μ)² / x̂ →
γ·x̂ → y once per sample and feature; only μ and σ² (one per feature) tie the samples
together. Drawing 3 samples per feature shows the whole idea; the other N − 3 become
one "× (N − 3) more samples" node per feature and stage (x̂[·,0], γ·x̂[·,0], ...), drawn
in that stage's column beside the samples it stands for, so Graphviz lays out a few
hundred nodes instead of thousands (its layout time grows much faster than the node count)
and the picture still reads left to right like the formula.

Which sample a node belongs to is read from labels: an element labelled "role[i,j]"
belongs to sample i when nodes of that role exist for several i (so μ[0,j], one per
feature, is never folded). Unlabelled nodes (constants, products in a loss) take the
sample of their neighbours when all of those agree. A node used only by the nodes of one
sample (a per-sample loss weight "w[i]") belongs to that sample too; when it serves
several features it is folded into a summary of its own, "[·]".
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tinybn.viz.nodes import _INDEX, op_symbol, parameter_kind, stage

Lane = tuple[int, tuple[int, ...]]  # (sample, rest of the index: the feature)
GroupKey = tuple[tuple[int, ...], str]  # (feature, stage)


@dataclass
class HiddenGroup:
    """The folded samples of one feature at one stage (e.g. x̂[3,0] ... x̂[63,0])."""

    feature: tuple[int, ...]
    stage: str  # the stage's name ("x̂"), or for unlabelled nodes what made them ("× results")
    role: str | None = None  # the normalization role of the nodes folded ("xhat"), if any
    samples: set[int] = field(default_factory=set)
    nodes: int = 0

    @property
    def text(self) -> str:
        where = ",".join(["·", *map(str, self.feature)])
        text = f"{self.stage} [{where}]\\n× {len(self.samples)} more samples"
        if self.nodes != len(self.samples):
            text += f"\\n({self.nodes} nodes not drawn)"
        return text


@dataclass
class Folded:
    """The result: which nodes to draw, and the summary nodes with their edges."""

    shown: list[Any]
    groups: dict[GroupKey, HiddenGroup]
    # edges visible parent → summary: (parent id, group)
    into_summary: set[tuple[int, GroupKey]]
    # edges out of a summary, to a visible consumer (its id) or to another summary (its
    # key) → the hidden nodes of the first summary that the edge stands for
    out_of_summary: dict[tuple[GroupKey, int | GroupKey], list[Any]]
    # group → a drawn node of the same stage (and feature, if one is drawn): the summary is
    # drawn in its rank, i.e. in the column of the value boxes it continues
    beside: dict[GroupKey, Any] = field(default_factory=dict)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a pass that makes no cycles.

    Finding the lanes of a 138k-node graph allocates ~500k small tuples and dicts; each
    burst of allocations triggers a collection that walks every node of the graph again
    (measured: draw's refusal 1.2 s with the collector, 0.65 s without).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def stage_of(node: Any) -> str:
    """The column a hidden node is folded into: its stage, else the op that made it."""
    if node.label:
        return stage(node)
    return f"{op_symbol(node.op)} results" if node.op else "leaves"


def sample_lanes(
    order: list[Any],
    consumers: dict[int, list[tuple[Any, int]]] | None = None,
    stages: dict[int, str] | None = None,
) -> dict[int, Lane]:
    """Node id → (sample, feature) for every node that belongs to one sample.

    ``consumers`` (from ``nodes.consumers_of``) may be None when ``order`` is the whole
    graph: then only the users of the nodes that need them are collected (much cheaper on
    a graph of 100k nodes, most of which are labelled "role[i,j]"). A ``stages`` dict is
    filled with node id → role for the labels parsed here (what ``stage_of`` would say).
    """
    # each label is parsed once: (role, index) of the indexed nodes that are not γ/β
    indexed: dict[int, tuple[str, tuple[int, ...]]] = {}
    not_parameter: dict[str, bool] = {}  # role → not γ/β (it depends on the role only)
    for node in order:
        match = _INDEX.match(node.label) if node.label else None
        if match is not None and "," in match["index"]:
            name = match["role"]
            if name not in not_parameter:
                not_parameter[name] = parameter_kind(node) is None
            if not_parameter[name]:
                indexed[id(node)] = (name, tuple(map(int, match["index"].split(","))))
    first_indices: dict[str, set[int]] = {}
    for name, idx in indexed.values():
        first_indices.setdefault(name, set()).add(idx[0])
    batched = {name for name, firsts in first_indices.items() if len(firsts) > 1}

    lanes: dict[int, Lane] = {
        key: (idx[0], idx[1:]) for key, (name, idx) in indexed.items() if name in batched
    }
    if stages is not None:
        stages.update((key, name) for key, (name, _) in indexed.items())
    if consumers is None:
        consumers = _users_of_unplaced(order, lanes)
    # unlabelled nodes inherit a lane their neighbours agree on: parents first, then users
    for node in order:
        if not node.label and id(node) not in lanes:
            agreed = _agreed({lanes.get(id(p)) for p in node.parents})
            if agreed is not None:
                lanes[id(node)] = agreed
    for node in reversed(order):
        if not node.label and id(node) not in lanes:
            agreed = _agreed({lanes.get(id(user)) for user, _ in consumers[id(node)]})
            if agreed is not None:
                lanes[id(node)] = agreed
    # a node used only inside one sample, across its features (a per-sample loss weight
    # "w[i]", a row sum), belongs to that sample as a whole: feature ()
    for node in reversed(order):
        if id(node) not in lanes and parameter_kind(node) is None:
            users = [id(user) for user, _ in consumers[id(node)]]
            if users and all(user in lanes for user in users):
                used_by = {lanes[user] for user in users}
                if len({lane[0] for lane in used_by}) == 1:
                    lanes[id(node)] = used_by.pop() if len(used_by) == 1 else (used_by.pop()[0], ())
    return lanes


def _users_of_unplaced(order: list[Any], lanes: dict[int, Lane]) -> dict[int, list]:
    """``consumers_of(order)``, restricted to the nodes that have no lane yet."""
    users: dict[int, list[tuple[Any, int]]] = {
        id(node): [] for node in order if id(node) not in lanes
    }
    for node in order:
        for position, parent in enumerate(node.parents):
            found = users.get(id(parent))
            if found is not None:
                found.append((node, position))
    return users


def _agreed(found: set[Lane | None]) -> Lane | None:
    found.discard(None)
    return found.pop() if len(found) == 1 else None


def _kept_samples(lanes: dict[int, Lane], keep: int) -> set[int]:
    return set(sorted({sample for sample, _ in lanes.values()})[:keep])


def folded_size(
    order: list[Any], lanes: dict[int, Lane], keep: int, stages: dict[int, str] | None = None
) -> int:
    """How many nodes ``fold_samples`` would leave to draw: value boxes, op ellipses and
    summaries. Cheap (no edges, no layout), so ``draw`` can refuse a huge graph quickly.
    ``stages``: the roles ``sample_lanes`` found, so labels are not parsed twice."""
    kept = _kept_samples(lanes, keep)
    stages = stages or {}
    drawn, groups = 0, set()
    for node in order:
        lane = lanes.get(id(node))
        if lane is None or lane[0] in kept:
            drawn += 2 if node.parents else 1  # the box, and the op ellipse in front of it
        else:
            groups.add((lane[1], stages.get(id(node)) or stage_of(node)))
    return drawn + len(groups)


def fold_samples(
    order: list[Any],
    consumers: dict[int, list[tuple[Any, int]]],
    keep: int,
    lanes: dict[int, Lane] | None = None,
) -> Folded:
    """Keep the first ``keep`` samples of every feature; summarize the rest.

    Args:
        order: the nodes to consider, parents before children.
        consumers: node id → (consumer, position) pairs, from ``nodes.consumers_of``.
        keep: how many samples per feature to draw (>= 1).
        lanes: ``sample_lanes(order, consumers)``, if already computed.
    """
    if lanes is None:
        lanes = sample_lanes(order, consumers)
    kept = _kept_samples(lanes, keep)
    in_order = {id(node) for node in order}

    def hidden(node: Any) -> bool:
        lane = lanes.get(id(node))
        return lane is not None and lane[0] not in kept

    def group_key(node: Any) -> GroupKey:
        return (lanes[id(node)][1], stage_of(node))

    shown: list[Any] = []
    groups: dict[GroupKey, HiddenGroup] = {}
    into: set[tuple[int, GroupKey]] = set()
    out: dict[Any, list[Any]] = {}
    for node in order:
        if not hidden(node):
            shown.append(node)
            continue
        key = group_key(node)
        group = groups.setdefault(key, HiddenGroup(*key, role=node.role))
        group.samples.add(lanes[id(node)][0])
        group.nodes += 1
        for parent in node.parents:
            if id(parent) in in_order and not hidden(parent):
                into.add((id(parent), key))
        for user, _ in consumers[id(node)]:
            if id(user) not in in_order:
                continue
            target = group_key(user) if hidden(user) else id(user)
            if target != key:  # edges inside one summary are not drawn
                out.setdefault((key, target), []).append(node)
    beside: dict[GroupKey, Any] = {}
    groups_of_stage: dict[str, list[GroupKey]] = {}
    for key in groups:
        groups_of_stage.setdefault(key[1], []).append(key)
    for node in shown:
        if id(node) in lanes:
            feature, stage = group_key(node)
            beside.setdefault((feature, stage), node)
            for key in groups_of_stage.get(stage, []):
                beside.setdefault(key, node)
    return Folded(shown, groups, into, out, beside)
