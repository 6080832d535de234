"""What the tests share, in one place (test files do not import from each other's conftest.py).

- `paths`: the repository, the test data and the model cache.
- `settings`: `fake_settings` (the deterministic fakes) and `real_settings` (the real models).
- `chunks`: `policy_chunk` and `seed`, a passage into a TestClient app's store and indexes.
- `shopdesk`: ShopDesk as its own process: its environment, the CLI, one chat turn over HTTP.
- `servers`: real server processes on free loopback ports (ShopDesk, chroma, PostgreSQL,
  llama_cpp.server), each stopped on exit.

Helpers only: no module here is named `test_*`, and none holds a test or a fixture.
"""
