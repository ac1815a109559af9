"""AWS access: configured clients, IAM propagation retries and API rate pacing."""
