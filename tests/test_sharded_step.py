"""The unchanged train_step runs with its batch axis sharded across devices.

Runs in a subprocess because the number of simulated CPU devices must be set
before jax is imported.
"""

import textwrap

from tests.conftest import run_on_cpu_devices

SCRIPT = textwrap.dedent(
    """
    import jax, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    import meshsim
    from meshsim.config import OptimizerConfig
    from meshsim.training.batches import dataset_budget, iter_batches
    from meshsim.tasks import cfd_task
    from meshsim.training.step import init_train_state, make_optimizer, make_train_step
    from tests.conftest import synthetic_cfd_trajectory

    assert jax.device_count() == 4, jax.devices()
    task = cfd_task()
    trajs = [synthetic_cfd_trajectory(seed=i) for i in range(4)]
    batch = next(iter_batches(trajs, task, batch_size=4, budget=dataset_budget(trajs, task)))
    model = meshsim.MeshGraphNet(output_size=2, latent_size=16, num_message_passing_steps=2)
    sim = meshsim.Simulator(model, task)
    tx = make_optimizer(OptimizerConfig(learning_rate=1e-3))
    step = make_train_step(sim, tx)
    key = jax.random.key(1)

    def run(batch):
        state = init_train_state(sim, tx, jax.random.key(0))
        state, m = step(state, batch, key)
        return state, m

    ref_state, ref = run(jax.device_put(batch, jax.devices()[0]))
    mesh = Mesh(np.array(jax.devices()), ("batch",))
    sharded = jax.device_put(batch, NamedSharding(mesh, P("batch")))
    assert len(sharded.fields["velocity"].sharding.device_set) == 4
    state, m = run(sharded)
    np.testing.assert_allclose(m["loss"], ref["loss"], rtol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(state.params),
                    jax.tree_util.tree_leaves(ref_state.params)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    print("SHARDED_OK", float(m["loss"]))
    """
)


def test_train_step_with_batch_sharded_over_four_devices():
    assert "SHARDED_OK" in run_on_cpu_devices(SCRIPT, 4)
