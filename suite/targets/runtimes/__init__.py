"""Runtime targets: run an exported artifact with numpy and the runtime only (no torch, tensorflow or jax)."""
