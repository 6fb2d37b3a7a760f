"""Sources outside the platform: brokers whose messages become durable stream records (docs/streams.md)."""
