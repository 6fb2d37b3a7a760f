"""Secrets: each app's credentials, sealed with the server's key and kept in the store.

- `keyring`: the server's secrets key (or keys, while one is rotated out): where it comes from, its id,
  the file made on a first start;
- `sealing`: AES-256-GCM over one value, bound to its app and name (pure);
- `store`: `SecretStore`, the sealed records in the store's key-value part: set, list, remove, read a
  function's declared secrets, reseal after a rotation.

See docs/security.md (what is protected from whom) and docs/functions.md (declaring secrets).
"""
