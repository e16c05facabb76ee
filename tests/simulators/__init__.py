"""Local simulators of outside systems' protocols, served over real HTTP inside the test event loop.

Each one implements its peer's wire protocol independently of our adapter (its own signing and checks), so an adapter
test exercises the protocol rather than the adapter agreeing with itself.
"""
