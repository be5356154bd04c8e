"""Static shapes for typed graphs: padding budgets, padding, batching. Host side.

A dataset of variable-size meshes is padded to a small ladder of sizes
(`PaddingBudget`), per node set and per edge set, so only a few shapes are
ever compiled. Padding follows the jraph convention: one extra *padding graph*
at the end owns every padded node and edge; a padded edge joins the last
(padding) node of its sender set to the last (padding) node of its receiver
set, so it can never send a message to a real node. Masks mark what is real.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np

from meshsim.graph.typed import MultiGraph, NodeSet
from meshsim.validation import check_int


def bucket_size(n: int, *, multiple: int = 64, steps_per_octave: int = 4) -> int:
    """Smallest size on a geometric ladder (≤ 2^(1/steps_per_octave) waste) that is ≥ n.

    Ladder values are rounded up to `multiple`, so sizes are friendly to vector units;
    a dataset whose mesh sizes vary by 4x compiles at most 2*steps_per_octave+1 shapes.
    """
    n = check_int("n", n, minimum=0)
    multiple = check_int("multiple", multiple, minimum=1, expected="a positive int")
    steps_per_octave = check_int(
        "steps_per_octave", steps_per_octave, minimum=1, expected="a positive int"
    )
    if n <= multiple:
        return multiple
    exponent = math.ceil(math.log2(n) * steps_per_octave - 1e-9) / steps_per_octave
    size = math.ceil(2.0**exponent)
    return int(math.ceil(max(size, n) / multiple) * multiple)


def _check_graph(name: str, graph) -> None:
    if not isinstance(graph, MultiGraph):
        raise TypeError(f"{name}: expected a MultiGraph, got {type(graph).__name__}")


@dataclasses.dataclass(frozen=True)
class PaddingBudget:
    """Static sizes a graph (batch) is padded to.

    Fields:
      n_node:  {node set name: total nodes after padding, ≥ 1 padding node included}.
      n_edge:  {edge set name: total edges after padding}.
      n_graph: graphs after padding, the padding graph included.
    """

    n_node: Mapping[str, int]
    n_edge: Mapping[str, int]
    n_graph: int

    def __post_init__(self):
        for field in ("n_node", "n_edge"):
            value = getattr(self, field)
            if not isinstance(value, Mapping):
                raise TypeError(
                    f"PaddingBudget.{field}: expected a mapping {{name: size}}, "
                    f"got {type(value).__name__}"
                )
            sizes = {
                k: check_int(
                    f"PaddingBudget.{field}[{k!r}]", v, minimum=1, expected="a positive int"
                )
                for k, v in value.items()
            }
            object.__setattr__(self, field, sizes)
        if not self.n_node:
            raise ValueError("PaddingBudget.n_node: expected at least one node set, got {}")
        n_graph = check_int(
            "PaddingBudget.n_graph", self.n_graph, minimum=1, expected="a positive int"
        )
        object.__setattr__(self, "n_graph", n_graph)

    def at_least(self, other: PaddingBudget | None) -> PaddingBudget:
        """This budget grown to hold `other` too: every size the larger of the two
        (`other` None: this budget). Both must name the same node and edge sets."""
        if other is None:
            return self
        if not isinstance(other, PaddingBudget):
            raise TypeError(f"other: expected a PaddingBudget, got {type(other).__name__}")
        mine = (sorted(self.n_node), sorted(self.n_edge))
        theirs = (sorted(other.n_node), sorted(other.n_edge))
        if mine != theirs:
            raise ValueError(f"other: expected node and edge sets {mine}, got {theirs}")
        return PaddingBudget(
            n_node={s: max(n, other.n_node[s]) for s, n in self.n_node.items()},
            n_edge={e: max(n, other.n_edge[e]) for e, n in self.n_edge.items()},
            n_graph=max(self.n_graph, other.n_graph),
        )

    @classmethod
    def fit(
        cls,
        graph: MultiGraph,
        *,
        multiple: int = 64,
        steps_per_octave: int = 4,
        n_graph: int | None = None,
    ) -> PaddingBudget:
        """The bucket that holds `graph` (one graph or a batch) plus its padding graph."""
        _check_graph("graph", graph)
        return cls.for_dataset(
            [graph],
            graphs_per_batch=1,
            multiple=multiple,
            steps_per_octave=steps_per_octave,
            n_graph=n_graph if n_graph is not None else graph.num_graphs + 1,
        )

    @classmethod
    def for_dataset(
        cls,
        graphs: Sequence[MultiGraph],
        *,
        graphs_per_batch: int = 1,
        multiple: int = 64,
        steps_per_octave: int = 4,
        n_graph: int | None = None,
    ) -> PaddingBudget:
        """One budget large enough for any `graphs_per_batch` of the sample `graphs`.

        Uses the largest sample of each node set and edge set times `graphs_per_batch`,
        then rounds up to the ladder: a single compiled shape for the whole dataset
        (the Flax ogbg example's approach).
        """
        if isinstance(graphs, MultiGraph) or not isinstance(graphs, Sequence):
            raise TypeError(
                f"graphs: expected a sequence of MultiGraphs, got {type(graphs).__name__}"
            )
        if not graphs:
            raise ValueError("graphs: expected at least one sample graph, got none")
        for i, g in enumerate(graphs):
            _check_graph(f"graphs[{i}]", g)
        graphs_per_batch = check_int(
            "graphs_per_batch", graphs_per_batch, minimum=1, expected="a positive int"
        )
        names = (sorted(graphs[0].node_sets), sorted(graphs[0].edge_sets))
        for i, g in enumerate(graphs):
            if (sorted(g.node_sets), sorted(g.edge_sets)) != names:
                raise ValueError(
                    f"graphs[{i}]: expected node sets {names[0]} and edge sets {names[1]}, "
                    f"got {sorted(g.node_sets)} and {sorted(g.edge_sets)}"
                )
        size = lambda n: bucket_size(n, multiple=multiple, steps_per_octave=steps_per_octave)
        return cls(
            n_node={
                k: size(max(g.num_nodes(k) for g in graphs) * graphs_per_batch + 1)
                for k in names[0]
            },
            n_edge={
                k: size(max(g.edge_sets[k].num_edges for g in graphs) * graphs_per_batch)
                for k in names[1]
            },
            n_graph=n_graph if n_graph is not None else graphs_per_batch + 1,
        )


def grow_edges(
    budget: PaddingBudget, needed: Mapping[str, int]
) -> tuple[PaddingBudget, dict[str, tuple[int, int]]]:
    """`budget` with room for `needed` edges ({edge set: edges}), each short edge set
    grown to `suggest_capacity` of its need; and {edge set: (old slots, new slots)} of
    those grown ({} and `budget` itself when everything fits). Host side."""
    from meshsim.graph.radius import suggest_capacity

    grown = {
        name: (budget.n_edge[name], suggest_capacity(count))
        for name, count in needed.items()
        if count > budget.n_edge[name]
    }
    if not grown:
        return budget, {}
    n_edge = {**budget.n_edge, **{name: new for name, (_, new) in grown.items()}}
    return dataclasses.replace(budget, n_edge=n_edge), grown


def _grow(a, extra: int, fill=0) -> np.ndarray:
    a = np.asarray(a)
    return np.concatenate([a, np.full((extra,) + a.shape[1:], fill, a.dtype)])


def pad(graph: MultiGraph, budget: PaddingBudget) -> MultiGraph:
    """Pads a graph (or batch) to `budget` by appending padding graphs. Host side.

    Padded nodes and edges have zero features; padded edges join the last node of
    their sender set to the last node of their receiver set (both padding), so they
    only ever touch padding. Raises ValueError naming the node or edge set that does
    not fit (each node set needs ≥ 1 padding node).
    """
    _check_graph("graph", graph)
    if not isinstance(budget, PaddingBudget):
        raise TypeError(f"budget: expected a PaddingBudget, got {type(budget).__name__}")
    if budget.n_graph < graph.num_graphs + 1:
        raise ValueError(
            f"budget.n_graph: expected ≥ num_graphs + 1 = {graph.num_graphs + 1}, "
            f"got {budget.n_graph}"
        )
    for field, have in (("n_node", graph.node_sets), ("n_edge", graph.edge_sets)):
        if sorted(getattr(budget, field)) != sorted(have):
            raise ValueError(
                f"budget.{field}: expected sets {sorted(have)}, "
                f"got {sorted(getattr(budget, field))}"
            )
    extra_graphs = budget.n_graph - graph.num_graphs

    # The first padding graph holds all padded nodes/edges; further padding graphs are empty.
    def counts(c, extra_items):
        tail = [extra_items] + [0] * (extra_graphs - 1)
        return np.concatenate([np.asarray(c), np.array(tail, np.int32)])

    node_sets = {}
    for name, ns in graph.node_sets.items():
        if budget.n_node[name] < ns.num_nodes + 1:
            raise ValueError(
                f"budget.n_node[{name!r}]: expected ≥ num_nodes + 1 = {ns.num_nodes + 1}, "
                f"got {budget.n_node[name]}"
            )
        extra = budget.n_node[name] - ns.num_nodes
        node_sets[name] = NodeSet(
            features=_grow(ns.features, extra),
            n_node=counts(ns.n_node, extra),
            mask=_grow(ns.mask, extra, False),
        )
    edge_sets = {}
    for name, es in graph.edge_sets.items():
        if budget.n_edge[name] < es.num_edges:
            raise ValueError(
                f"budget.n_edge[{name!r}]: expected ≥ {es.num_edges}, got {budget.n_edge[name]}"
            )
        extra = budget.n_edge[name] - es.num_edges
        edge_sets[name] = es.replace(
            features=_grow(es.features, extra),
            senders=_grow(es.senders, extra, budget.n_node[es.sender] - 1),
            receivers=_grow(es.receivers, extra, budget.n_node[es.receiver] - 1),
            n_edge=counts(es.n_edge, extra),
            mask=_grow(es.mask, extra, False),
        )
    return MultiGraph(
        node_sets=node_sets,
        edge_sets=edge_sets,
        graph_mask=_grow(graph.graph_mask, extra_graphs, False),
    )


def batch(graphs: Sequence[MultiGraph]) -> MultiGraph:
    """Concatenates graphs into one graph whose counts list each. Host side.

    Edge indices are offset by the node counts of their own sender / receiver set in
    the graphs before them. All graphs must have the same node and edge sets.
    """
    if not graphs:
        raise ValueError("graphs: expected at least one graph, got an empty sequence")
    for i, g in enumerate(graphs):
        _check_graph(f"graphs[{i}]", g)
    node_names, edge_names = sorted(graphs[0].node_sets), sorted(graphs[0].edge_sets)
    for i, g in enumerate(graphs):
        if sorted(g.node_sets) != node_names or sorted(g.edge_sets) != edge_names:
            raise ValueError(
                f"graphs[{i}]: expected node sets {node_names} and edge sets {edge_names}, "
                f"got {sorted(g.node_sets)} and {sorted(g.edge_sets)}"
            )
    cat = lambda arrays: np.concatenate([np.asarray(a) for a in arrays])
    offsets = {k: np.cumsum([0] + [g.num_nodes(k) for g in graphs[:-1]]) for k in node_names}
    node_sets = {
        k: NodeSet(
            features=cat(g.node_sets[k].features for g in graphs),
            n_node=cat(g.node_sets[k].n_node for g in graphs),
            mask=cat(g.node_sets[k].mask for g in graphs),
        )
        for k in node_names
    }
    edge_sets = {}
    for k in edge_names:
        sets = [g.edge_sets[k] for g in graphs]
        first = sets[0]

        def shift(field, end, sets=sets):
            moved = [np.asarray(getattr(s, field)) + o for s, o in zip(sets, offsets[end])]
            return np.concatenate(moved).astype(np.int32)

        edge_sets[k] = first.replace(
            features=cat(s.features for s in sets),
            senders=shift("senders", first.sender),
            receivers=shift("receivers", first.receiver),
            n_edge=cat(s.n_edge for s in sets),
            mask=cat(s.mask for s in sets),
        )
    return MultiGraph(
        node_sets=node_sets,
        edge_sets=edge_sets,
        graph_mask=cat(g.graph_mask for g in graphs),
    )


def unbatch(graph: MultiGraph, *, drop_padding: bool = True) -> list[MultiGraph]:
    """Splits a batched graph back into one graph per entry of its counts. Host side.

    Padding graphs (graph_mask False) are dropped unless `drop_padding=False`.
    """
    _check_graph("graph", graph)
    bounds = lambda counts: np.concatenate([[0], np.cumsum(np.asarray(counts))])
    node_off = {k: bounds(v.n_node) for k, v in graph.node_sets.items()}
    edge_off = {k: bounds(v.n_edge) for k, v in graph.edge_sets.items()}
    graph_mask = np.asarray(graph.graph_mask)
    out = []
    for g in range(graph.num_graphs):
        if drop_padding and not bool(graph_mask[g]):
            continue
        node_sets = {}
        for k, ns in graph.node_sets.items():
            n0, n1 = node_off[k][g], node_off[k][g + 1]
            node_sets[k] = NodeSet(
                features=np.asarray(ns.features)[n0:n1],
                n_node=np.array([n1 - n0], np.int32),
                mask=np.asarray(ns.mask)[n0:n1],
            )
        edge_sets = {}
        for k, es in graph.edge_sets.items():
            e0, e1 = edge_off[k][g], edge_off[k][g + 1]
            edge_sets[k] = es.replace(
                features=np.asarray(es.features)[e0:e1],
                senders=(np.asarray(es.senders)[e0:e1] - node_off[es.sender][g]).astype(np.int32),
                receivers=(np.asarray(es.receivers)[e0:e1] - node_off[es.receiver][g]).astype(
                    np.int32
                ),
                n_edge=np.array([e1 - e0], np.int32),
                mask=np.asarray(es.mask)[e0:e1],
            )
        out.append(
            MultiGraph(node_sets=node_sets, edge_sets=edge_sets, graph_mask=graph_mask[g : g + 1])
        )
    return out
