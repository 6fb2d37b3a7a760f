"""Lambda's stream semantics over the store's log: partitions, batches, retries, checkpoints (docs/streams.md)."""
