"""The operator's REST routes, one module per endpoint group (SPEC 10.3)."""
