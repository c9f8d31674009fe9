"""Generated from protos/dedup/v1 by `make proto`; do not edit."""
