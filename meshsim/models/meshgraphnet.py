"""MeshGraphNet (Pfaff et al., ICLR 2021) as a configuration of EncodeProcessDecode."""

from __future__ import annotations

from meshsim.models.encode_process_decode import EncodeProcessDecode


class MeshGraphNet(EncodeProcessDecode):
    """The paper's network: latent 128, MLPs with 2 hidden layers and LayerNorm
    (none on the decoder), one stage of 15 message-passing steps with unshared
    weights over every edge set of the graph (`mesh`, and `world` when present),
    sum aggregation, ReLU, decoded on the `mesh` node set. Every field of
    `EncodeProcessDecode` can be overridden, keyword-only:
    `MeshGraphNet(output_size=2, latent_size=64)`.
    """


def meshgraphnet_param_count(
    *,
    node_input: int,
    edge_inputs: dict[str, int],
    output_size: int,
    latent: int = 128,
    hidden_layers: int = 2,
    steps: int = 15,
) -> int:
    """Closed-form parameter count of `MeshGraphNet` (weights + biases + LayerNorm)."""

    def mlp(n_in: int, n_out: int, layer_norm: bool) -> int:
        widths = [n_in] + [latent] * hidden_layers + [n_out]
        dense = sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))
        return dense + (2 * n_out if layer_norm else 0)

    k = len(edge_inputs)
    encoder = mlp(node_input, latent, True) + sum(
        mlp(f, latent, True) for f in edge_inputs.values()
    )
    block = k * mlp(3 * latent, latent, True) + mlp((1 + k) * latent, latent, True)
    decoder = mlp(latent, output_size, False)
    return encoder + steps * block + decoder
