"""Deploying apps: bundles of an app directory, and installing their dependencies."""
