"""Account administration: setup and teardown, doctor, inventory and the IAM policy."""
