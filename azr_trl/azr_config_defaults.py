"""Defaults of `AZRConfig` that lighter modules share: the seed loop and `azr-trl seed` read them without importing
TRL.
"""

# The reference refuses to start self-play with fewer seed tasks than one batch (data_len = 64): `seed_min_tasks`
# defaults to min(this, seed_num_tasks).
REFERENCE_SEED_MINIMUM = 64
# Seeding never loops forever: at most this many rounds per seed file (`seed_max_rounds`), and it stops sooner when this
# many rounds in a row bring no new valid task (`seed_patience`; a model that cannot write the format at all shows it
# within a few rounds).
DEFAULT_SEED_MAX_ROUNDS = 100
DEFAULT_SEED_PATIENCE = 2
