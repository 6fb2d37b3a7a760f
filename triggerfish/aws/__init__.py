"""The AWS wire protocols at `/-/aws`: SigV4, the router, and the services over the platform (docs/aws.md)."""
