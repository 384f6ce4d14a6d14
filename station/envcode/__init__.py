"""Environments as code: export an environment to a readable bundle, apply a bundle, and
promote configuration from one environment to another. Resources take part through the
kinds registry (`station.envcode.kinds`)."""
